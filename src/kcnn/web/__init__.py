"""The web page of `kcnn serve`: drop a song, see its genre, similar songs and place on the map.

`kcnn.web.app.create_app` builds the application; `page.html` and `map.js` are its page.
"""

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Largest upload the page accepts by default (bytes)."""

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names (Host header) the page answers to by default: this machine's own."""

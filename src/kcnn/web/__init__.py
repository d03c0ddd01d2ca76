"""The web page of `kcnn serve`: drop a song, see its genre, similar songs and place on the map.

`kcnn.web.app.create_app` builds the application; `page.html` and `map.js` are its page.
"""

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Largest upload the page accepts by default (bytes)."""

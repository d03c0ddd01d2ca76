"""A FastAPI application: a single page, and POST /api/analyse that takes one audio file.

The upload is limited in size (Content-Length, checked before anything is read, and the
body's bytes counted as they arrive) and in type (an audio file name extension, then
decoding); a rejected upload gets JSON {"error": "one line"} with a 4xx status, which the
page shows as it is. The file is written to a temporary folder that is removed whatever
happens. Requests whose Host header names another server (as a page of another site
reaching this one through DNS rebinding would send) are refused with 421.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Collection
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kcnn.audio import MAX_DURATION
from kcnn.config import DEFAULT_CLASSIFIER
from kcnn.dataset import AUDIO_EXTENSIONS, is_audio
from kcnn.errors import AudioError, printable
from kcnn.extraction import extract_file
from kcnn.index import SongIndex
from kcnn.maps import PLACE_NEIGHBOURS, map_data, place
from kcnn.model import MusicModel
from kcnn.web import LOCAL_HOSTS, MAX_UPLOAD_BYTES

NEIGHBOURS = 10


def error(status: int, message: str) -> JSONResponse:
    """A 4xx answer that ends the connection, so that no unread rest of a body is taken in."""
    return JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})


def host_name(host: str) -> str:
    """The name or address in a Host header: no port, brackets, final dot or capitals."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0].rstrip(".")


class HostCheck:
    """Answers 421 to a request whose Host header is not one of `hosts`."""

    def __init__(self, app: ASGIApp, hosts: Collection[str]) -> None:
        self.app = app
        self.hosts = {host_name(h) for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if host_name(host) not in self.hosts:
                refusal = error(421, f"This server does not answer to the host {host!r}.")
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """More bytes of a request body arrived than it may hold."""


def limited(request: Request, limit: int) -> Request:
    """`request`, whose body raises BodyTooLarge once more than `limit` bytes have arrived."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise BodyTooLarge
        return message

    return Request(request.scope, receive)


class Analyser:
    """Genre, neighbours and map position of one audio file; one file at a time."""

    def __init__(
        self, model: MusicModel, index: SongIndex | None, classifier: str, max_duration: float
    ) -> None:
        self.model = model
        self.index = index
        self.classifier = classifier
        self.max_duration = max_duration
        self._lock = threading.Lock()

    def __call__(self, path: Path, name: str) -> dict:
        with self._lock:
            features = [
                extract_file(
                    path,
                    self.model.feature_settings,
                    self.model.min_frames,
                    max_duration=self.max_duration,
                )
            ]
            proba = self.model.predict_proba(features, self.classifier)[0]
            vector = self.model.embed(features) if self.index is not None else None
        ranked = sorted(zip(self.model.classes, proba, strict=True), key=lambda cp: -cp[1])
        result: dict = {
            "name": name,
            "label": str(ranked[0][0]),
            "probabilities": [{"label": str(c), "p": round(float(p), 4)} for c, p in ranked],
            "neighbours": [],
            "position": None,
        }
        if self.index is not None and len(self.index):
            found = self.index.search(vector, NEIGHBOURS)[0]
            result["neighbours"] = [
                {"path": printable(n.path), "label": n.label, "similarity": round(n.similarity, 4)}
                for n in found
            ]
            near = found[:PLACE_NEIGHBOURS]
            rows, similarities = [n.row for n in near], [n.similarity for n in near]
            x, y = place(self.index.positions, rows, similarities)
            result["position"] = [round(float(x), 5), round(float(y), 5)]
        return result


def create_app(
    model: MusicModel,
    index: SongIndex | None = None,
    classifier: str = DEFAULT_CLASSIFIER,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_duration: float = MAX_DURATION,
    hosts: Collection[str] = LOCAL_HOSTS,
) -> FastAPI:
    """The web application for `model` and, if given, the index of a collection.

    Uploads of more than `max_upload_bytes` or `max_duration` seconds of audio are refused;
    so are requests whose Host header is not one of `hosts`.
    """
    app = FastAPI(title="kcnn", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(HostCheck, hosts=hosts)
    analyse_file = Analyser(model, index, classifier, max_duration)
    page = (files("kcnn.web") / "page.html").read_text(encoding="utf-8")
    script = (files("kcnn.web") / "map.js").read_text(encoding="utf-8")
    collection_map = None
    if index is not None and len(index):
        title = f"{len(index)} songs of the index"
        collection_map = map_data(
            index.positions, index.labels, [printable(s.path) for s in index.songs], title
        )
    limit_mb = f"{max_upload_bytes / 2**20:.0f} MB"

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        return page

    @app.get("/map.js")
    def map_js() -> Response:
        return Response(script, media_type="text/javascript")

    @app.get("/api/info")
    def info() -> dict:
        return {
            "classes": [str(c) for c in model.classes],
            "songs": len(index) if index is not None else 0,
            "map": collection_map,
            "max_upload": limit_mb,
            "extensions": sorted(AUDIO_EXTENSIONS),
        }

    @app.post("/api/analyse")
    async def analyse(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return error(411, "The upload must state its size (Content-Length).")
        if int(length) > max_upload_bytes:
            message = f"The file is {int(length) / 2**20:.1f} MB; the limit is {limit_mb}."
            return error(413, message)
        try:
            async with limited(request, int(length)).form(max_files=1, max_fields=4) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile) or not upload.filename:
                    return error(400, "No file was uploaded (expected the form field 'file').")
                name = Path(upload.filename).name
                if not is_audio(Path(name)):
                    kinds = ", ".join(sorted(AUDIO_EXTENSIONS))
                    return error(415, f"{name}: not an audio file; kcnn reads {kinds} files.")
                with tempfile.TemporaryDirectory(prefix="kcnn-upload-") as tmp:
                    path = Path(tmp) / f"upload{Path(name).suffix.lower()}"
                    with path.open("wb") as out:
                        shutil.copyfileobj(upload.file, out)
                    try:
                        return JSONResponse(await run_in_threadpool(analyse_file, path, name))
                    except AudioError as err:
                        return error(422, f"{name}: {err.cause}")
        except HTTPException as err:  # how Starlette reports a malformed form
            return error(400, f"The upload could not be read: {err.detail}")
        except BodyTooLarge:
            return error(413, "The upload is larger than its stated size (Content-Length).")

    return app

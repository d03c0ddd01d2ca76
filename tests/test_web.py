"""The page of `kcnn serve` in a real headless browser: Debian's chromium, driven by Playwright.

Chromium must be installed (.ci/run installs it); without it these tests fail.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from shared_data import GTZAN_MINI, TINY_MODEL

from kcnn.cli.main import main
from kcnn.index import SongIndex
from kcnn.model import MusicModel
from kcnn.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
GENRES = ("classical", "metal", "reggae")
LIMIT_MB = 2
WAIT_MS = 60_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`kcnn serve` of a model and index of 3 clips of 3 genres, on a free local port."""
    work = tmp_path_factory.mktemp("web")
    for genre in GENRES:
        (work / "music" / genre).mkdir(parents=True)
        for n in range(3):
            shutil.copy(GTZAN_MINI / genre / f"{genre}.{n:05d}.wav", work / "music" / genre)
    model, index = work / "model", work / "idx"
    with redirect_stdout(io.StringIO()):
        assert main([
            "train", str(work / "music"), "--out", str(model), *map(str, TINY_MODEL),
        ]) == 0  # fmt: skip
        assert main(["index", str(model), str(work / "music"), "--out", str(index), "-q"]) == 0
    app = create_app(MusicModel.load(model), SongIndex.load(index), "svm", LIMIT_MB * 2**20)
    port = free_port()
    uvicorn_server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", work
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(server, browser: Browser):
    url, _ = server
    opened = browser.new_page(viewport={"width": 1200, "height": 1400})
    opened.goto(url)
    expect(opened.locator("#map circle.song")).to_have_count(9, timeout=WAIT_MS)
    yield opened
    opened.close()


def test_an_uploaded_song_shows_its_genre_neighbours_and_place_on_the_map(page: Page, tmp_path):
    page.set_input_files("#file", str(GTZAN_MINI / "metal" / "metal.00007.wav"))
    expect(page.locator("#map .query")).to_have_count(1, timeout=WAIT_MS)
    assert page.inner_text("#genre") in GENRES
    expect(page.locator("#bars .bar")).to_have_count(3)
    percentages = [float(t.split()[0]) for t in page.locator("#bars .value").all_inner_texts()]
    assert sum(percentages) == pytest.approx(100, abs=0.5) and percentages == sorted(
        percentages, reverse=True
    )
    rows = page.locator("#neighbours tbody tr")
    expect(rows).to_have_count(9)
    assert rows.first.locator("td").nth(1).inner_text().endswith(".wav")
    assert "metal.00007.wav" in page.locator("#map .query").text_content()
    expect(page.locator("#error")).to_be_hidden()
    page.locator("#map circle.song").first.hover()
    assert page.inner_text("#map-info").endswith(".wav (classical)")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"some notes, not music", "notes.txt: not an audio file"),
        ("fake.wav", b"RIFF but not really a wave file", "fake.wav: "),
        ("huge.wav", b"\0" * (LIMIT_MB * 2**20 + 1), f"the limit is {LIMIT_MB} MB"),
    ],
)
def test_a_bad_upload_shows_a_readable_message(page: Page, tmp_path, name, content, message):
    page.set_input_files("#file", str(GTZAN_MINI / "reggae" / "reggae.00005.wav"))
    expect(page.locator("#genre-section")).to_be_visible(timeout=WAIT_MS)
    (tmp_path / name).write_bytes(content)
    page.set_input_files("#file", str(tmp_path / name))
    expect(page.locator("#error")).to_be_visible(timeout=WAIT_MS)
    assert message in page.inner_text("#error")
    expect(page.locator("#genre-section")).to_be_hidden()
    expect(page.locator("#map .query")).to_have_count(0)


def post(url: str, name: str, data: bytes) -> tuple[int, dict]:
    boundary = "kcnn-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}/api/analyse",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_uploads_leave_no_temporary_files(server, tmp_path, monkeypatch):
    url, _ = server
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    clip = (GTZAN_MINI / "classical" / "classical.00008.wav").read_bytes()
    status, result = post(url, "classical.00008.wav", clip)
    assert status == 200 and result["label"] in GENRES and len(result["neighbours"]) == 9
    assert post(url, "broken.wav", clip[:60])[0] == 422
    assert post(url, "notes.txt", b"text")[0] == 415
    assert list(tmp_path.iterdir()) == []


def test_an_upload_without_a_stated_size_is_refused(server):
    url, _ = server
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.putrequest("POST", "/api/analyse")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.load(response)["error"]
    connection.close()


def test_a_body_longer_than_its_stated_size_is_refused(server):
    url, _ = server
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.putrequest("POST", "/api/analyse")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", "100")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    chunk = b"\0" * 2**16
    started = time.monotonic()
    with contextlib.suppress(OSError):  # the server closes the connection once it answers
        for _ in range(LIMIT_MB * 2**20 // len(chunk) + 1):
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    response = connection.getresponse()
    assert response.status == 413 and "stated size" in json.load(response)["error"]
    assert time.monotonic() - started < 2
    connection.close()


def test_the_page_answers_only_to_this_machine(server, browser: Browser):
    url, _ = server
    port = url.rsplit(":", 1)[1]
    opened = browser.new_page()
    opened.goto(f"http://localhost:{port}/")
    expect(opened.locator("#map circle.song")).to_have_count(9, timeout=WAIT_MS)
    opened.close()
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    connection.request("GET", "/api/info", headers={"Host": f"rebound.example:{port}"})
    response = connection.getresponse()
    assert response.status == 421 and "rebound.example" in json.load(response)["error"]
    connection.close()

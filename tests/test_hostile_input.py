"""Hostile and odd input: files that decode to too much audio, odd file names and kinds,
out-of-range options, and uploads to `kcnn serve` that lie about their size or host.

Uploads go to a real `kcnn serve` process on a free local port, whose peak memory is read
from /proc; every bad request must be answered with a 4xx within 2 s.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from shared_data import GTZAN_MINI
from sklearn.utils._param_validation import InvalidParameterError

from kcnn.audio import SAMPLE_RATE, load_audio
from kcnn.cli.main import main
from kcnn.errors import AudioError
from kcnn.extraction import FeatureExtractor
from kcnn.svm import SVMClassifier
from kcnn.words import AudioWords

ANSWER_SECONDS = 2.0
MB = 2**20


def measured(call: Callable[[], object]) -> tuple[BaseException | None, float, int]:
    """The exception `call` raises (or None), its seconds and peak traced memory (bytes)."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        call()
    except Exception as err:
        raised: BaseException | None = err
    else:
        raised = None
    seconds = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return raised, seconds, peak


def noise(seconds: float, sr: int, channels: int) -> np.ndarray:
    """Quiet random audio, float32 (frames, channels)."""
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((round(seconds * sr), channels))).astype(np.float32)


# Decoding limits


def wav_at_1_hz(path: Path) -> None:
    """10 KB of samples at 1 Hz: 83 minutes, 110 million samples once resampled."""
    sf.write(path, noise(5000, 1, 1), 1, subtype="PCM_16")


def flac_declaring_3_hours(path: Path) -> None:
    """A fifth of a second of FLAC whose STREAMINFO claims 3 hours (bytes 18-25: rate, channels,
    bits per sample and, in the low 36 bits, the total number of samples)."""
    sf.write(path, noise(0.2, SAMPLE_RATE, 1), SAMPLE_RATE, format="FLAC")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    field = int.from_bytes(data[18:26], "big") & ~(2**36 - 1) | 3 * 3600 * SAMPLE_RATE
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(data)


def wav_at_500_khz(path: Path) -> None:
    sf.write(path, noise(0.01, 500_000, 1), 500_000, subtype="PCM_16")


@pytest.mark.parametrize(
    ("name", "make", "cause"),
    [
        ("slow.wav", wav_at_1_hz, "sample rate 1 Hz is outside"),
        ("long.flac", flac_declaring_3_hours, "too long: 180.0 min, the limit is 30 min"),
        ("fast.wav", wav_at_500_khz, "sample rate 500000 Hz is outside"),
    ],
)
def test_a_small_file_declaring_too_much_audio_is_refused_before_decoding(
    tmp_path: Path, name: str, make: Callable[[Path], None], cause: str
) -> None:
    path = tmp_path / name
    make(path)
    assert path.stat().st_size < 20_000
    raised, seconds, peak = measured(lambda: load_audio(path))
    assert isinstance(raised, AudioError) and cause in raised.cause
    assert seconds < 0.5 and peak < 2 * MB


def test_the_duration_limit_can_be_changed(tmp_path: Path) -> None:
    path = tmp_path / "minute.flac"
    sf.write(path, noise(60, 8000, 1), 8000, format="FLAC")
    with pytest.raises(AudioError, match=r"too long: 1\.0 min, the limit is 0\.5 min"):
        load_audio(path, max_duration=30)
    assert len(load_audio(path, max_duration=61)) == pytest.approx(60 * SAMPLE_RATE, abs=2)


@pytest.mark.parametrize(("sr", "channels"), [(44100, 2), (SAMPLE_RATE, 3)])
def test_decoding_in_blocks_gives_the_samples_of_decoding_whole(
    tmp_path: Path, sr: int, channels: int
) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, noise(12, sr, channels), sr, subtype="FLOAT")
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = whole.mean(axis=1, dtype=np.float32)
    if sr != SAMPLE_RATE:
        expected = soxr.resample(expected, sr, SAMPLE_RATE, quality="HQ")
    np.testing.assert_allclose(load_audio(path), expected, atol=1e-5)


def test_memory_stays_bounded_by_the_result_whatever_the_channels(tmp_path: Path) -> None:
    """90 s of 8-channel 48 kHz audio: 138 MB decoded whole, 8 MB as the mono result."""
    path = tmp_path / "surround.flac"
    with sf.SoundFile(path, "w", 48_000, 8, format="FLAC") as out:
        block = (noise(1, 48_000, 8) * 0.01).astype(np.float32)
        for _ in range(90):
            out.write(block)
    raised, _, peak = measured(lambda: load_audio(path))
    assert raised is None
    assert peak < 24 * MB


def test_kinds_of_files_that_are_not_audio_say_what_they_are(tmp_path: Path, monkeypatch) -> None:
    pipe = tmp_path / "pipe.wav"
    os.mkfifo(pipe)
    with pytest.raises(AudioError, match="a named pipe, not a regular file"):
        load_audio(pipe)
    random_mp3 = tmp_path / "random.mp3"
    random_mp3.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioError, match="not an audio file"):
        load_audio(random_mp3)
    locked = tmp_path / "locked.wav"
    sf.write(locked, noise(1, SAMPLE_RATE, 1), SAMPLE_RATE)
    if os.geteuid() == 0:  # root reads any file: let the open fail as it would for a user

        def refuse(*args: object) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "open", refuse)
    else:
        locked.chmod(0)
    with pytest.raises(AudioError) as info:
        load_audio(locked)
    assert str(info.value) == f"{locked}: permission denied"


# Batches of files, by the real command


def kcnn(*args: str | bytes, cwd: Path) -> subprocess.Popen:
    """Start the kcnn command in a UTF-8 locale, whose output must then be valid UTF-8."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "kcnn.cli.main", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    """Wait for a command started by `kcnn`: its exit code, standard output and error."""
    out, err = process.communicate(timeout=120)
    return process.returncode, out.decode("utf-8"), err.decode("utf-8")


def test_a_batch_skips_what_it_cannot_read_and_predicts_the_rest(tiny_model, tmp_path):
    model = str(tiny_model[1])
    shutil.copy(GTZAN_MINI / "blues" / "blues.00005.wav", tmp_path / "good.wav")
    odd_name = os.fsencode(tmp_path) + b"/caf\xe9.wav"  # Latin-1 "café", not UTF-8
    shutil.copy(GTZAN_MINI / "metal" / "metal.00005.wav", odd_name)
    os.mkfifo(tmp_path / "pipe.wav")
    predict = kcnn(
        "predict", model, "good.wav", b"caf\xe9.wav", "missing.wav", "pipe.wav",
        "--format", "csv", "-q", cwd=tmp_path,
    )  # fmt: skip
    index = kcnn("index", model, ".", "--out", "idx", "-q", cwd=tmp_path)  # at the same time
    code, out, err = finish(predict)
    assert code == 0, err
    assert [row.split(",")[0] for row in out.splitlines()] == ["path", "good.wav", "caf\\xe9.wav"]
    assert err.splitlines() == [
        "skipped 2 file(s):",
        "  missing.wav: file does not exist",
        "  pipe.wav: a named pipe, not a regular file",
    ]
    code, out, err = finish(index)
    assert code == 0, err
    assert out.startswith("2 songs embedded")
    assert "pipe.wav: a named pipe" in err


def test_a_batch_of_nothing_usable_fails_in_one_line(tiny_model, tmp_path, capsys):
    missing = tmp_path / "missing.wav"
    assert main(["predict", str(tiny_model[1]), str(missing), "-q"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "skipped 1 file(s):",
        f"  {missing}: file does not exist",
        "kcnn: error: none of the 1 files could be used",
    ]


# Options


TRAIN = ["train", "data", "--out", "m"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        ([*TRAIN, "--words", "0"], "--words"),
        ([*TRAIN, "--k", "0"], "--k"),
        ([*TRAIN, "--k", "-1"], "--k"),
        ([*TRAIN, "--segment-frames", "0"], "--segment-frames"),
        ([*TRAIN, "--components", "0"], "--components"),
        ([*TRAIN, "--svm-c", "-1"], "--svm-c"),
        ([*TRAIN, "--learning-rate", "nan"], "--learning-rate"),
        ([*TRAIN, "--learning-rate", "inf"], "--learning-rate"),
        ([*TRAIN, "--hidden-units", "10", "0"], "--hidden-units"),
        ([*TRAIN, "--conv-units", "0"], "--conv-units"),
        ([*TRAIN, "--epochs", "-1"], "--epochs"),
        ([*TRAIN, "--epochs", "two"], "--epochs"),
        ([*TRAIN, "--test-size", "1"], "--test-size"),
        ([*TRAIN, "--test-size", "-0.1"], "--test-size"),
        ([*TRAIN, "--n-mels", "0"], "--n-mels"),
        (["cluster", "idx", "--clusters", "0"], "--clusters"),
        (["similar", "idx", "song.wav", "-n", "-5"], "-n"),
        (["predict", "model", "song.wav", "--max-duration", "0"], "--max-duration"),
        (["serve", "model", "--max-upload-mb", "0"], "--max-upload-mb"),
    ],
)
def test_an_out_of_range_option_is_a_one_line_error(args, option, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"kcnn {args[0]}: error: argument {option}: expected ")


@pytest.mark.parametrize(
    ("estimator", "fit_args"),
    [
        (AudioWords(n_words=0), ([],)),
        (AudioWords(segment_frames=-1), ([],)),
        (SVMClassifier(C=-1.0), (np.zeros((4, 2)), [0, 0, 1, 1])),
        (SVMClassifier(gamma="sometimes"), (np.zeros((4, 2)), [0, 0, 1, 1])),
        (FeatureExtractor(n_mels=0), ([],)),
        (FeatureExtractor(max_duration=float("nan")), ([],)),
    ],
)
def test_estimators_check_their_parameters_when_fitted(estimator, fit_args):
    with pytest.raises(InvalidParameterError):
        estimator.fit(*fit_args)


# The page's server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory) -> Iterator[tuple[int, int]]:
    """`kcnn serve` of the tiny model in its own process: (port, process id)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    model = str(tiny_model[1])
    command = [sys.executable, "-m", "kcnn.cli.main", "serve", model, "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=10)


def peak_memory(pid: int) -> int:
    """Peak resident memory of process `pid` so far (bytes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def exchange(port: int, head: bytes, body: Iterable[bytes]) -> tuple[int, bytes, float]:
    """Send a request head, then body pieces until the server answers: status, body, seconds."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS) as sock:
        sock.sendall(head)
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server stopped reading, or closed the connection
                break
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = response.read()
    return response.status, answer, time.monotonic() - start


def upload_head(port: int, headers: str, host: str | None = None) -> bytes:
    return (
        f"POST /api/analyse HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\n{headers}\r\n"
    ).encode()


def sized(body: bytes) -> str:
    """The Content-Length header of `body`."""
    return f"Content-Length: {len(body)}\r\n"


def chunked(total: int, piece: int = MB) -> Iterator[bytes]:
    """`total` bytes of zeros in HTTP/1.1 chunks of `piece` bytes."""
    for _ in range(total // piece):
        yield b"%x\r\n" % piece + bytes(piece) + b"\r\n"
    yield b"0\r\n\r\n"


def multipart(name: str, data: bytes) -> bytes:
    return (
        f'--b\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
        + data
        + b"\r\n--b--\r\n"
    )


def test_bad_uploads_are_answered_at_once_and_take_little_memory(served, tmp_path):
    port, pid = served
    good = multipart("good.wav", (GTZAN_MINI / "blues" / "blues.00009.wav").read_bytes())
    status, _, _ = exchange(port, upload_head(port, sized(good)), [good])
    assert status == 200
    before = peak_memory(pid)
    wav_at_1_hz(tmp_path / "slow.wav")
    slow = multipart("slow.wav", (tmp_path / "slow.wav").read_bytes())
    flac_declaring_3_hours(tmp_path / "long.flac")
    long = multipart("long.flac", (tmp_path / "long.flac").read_bytes())
    random = multipart("random.mp3", np.random.default_rng(0).bytes(5000))
    fields = (
        b"".join(
            f'--b\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\n{n}\r\n'.encode()
            for n in range(5)
        )
        + b"--b--\r\n"
    )
    lying, over = "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n", 60 * MB
    cases = [
        # a chunked body far larger than the size it states
        (lying, chunked(101 * MB), None, 413, "larger than its stated size"),
        # a body over the 50 MB limit
        (f"Content-Length: {over}\r\n", (bytes(MB) for _ in range(60)), None, 413, "limit"),
        # a chunked body that does not state its size
        ("Transfer-Encoding: chunked\r\n", chunked(101 * MB), None, 411, "state its size"),
        # addressed to another host, as a DNS-rebinding page would
        (sized(random), [random], "rebound.example:80", 421, "rebound.example"),
        # small files that would decode to hours of audio, and random bytes
        (sized(slow), [slow], None, 422, "slow.wav: sample rate 1 Hz"),
        (sized(long), [long], None, 422, "long.flac: too long"),
        (sized(random), [random], None, 422, "random.mp3: not an audio file"),
        # a form of more fields than the page reads
        (sized(fields), [fields], None, 400, "could not be read: Too many fields"),
    ]
    for headers, body, host, expected, message in cases:
        status, answer, seconds = exchange(port, upload_head(port, headers, host), body)
        assert (status, seconds < ANSWER_SECONDS) == (expected, True), (headers, answer)
        assert message in json.loads(answer)["error"]
    assert peak_memory(pid) - before < 30 * MB


def test_the_collection_is_not_shown_to_other_hosts(served):
    port, _ = served
    for host, expected in [
        ("rebound.example", 421),
        (f"attacker.example:{port}", 421),
        (f"localhost:{port}", 200),
        (f"127.0.0.1:{port}", 200),
        (f"LOCALHOST.:{port}", 200),
        (socket.gethostname(), 200),
    ]:
        head = f"GET /api/info HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        status, _, seconds = exchange(port, head.encode(), [])
        assert (host, status) == (host, expected) and seconds < ANSWER_SECONDS


def test_settings_that_do_not_fit_together_are_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "m"
    code = main(
        ["train", str(tmp_path), "--out", str(out), "--segment-frames", "2", "--phases", "3"]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert "phases (3)" in err and "segment_frames (2)" in err
    assert not out.exists()

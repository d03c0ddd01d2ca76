"""Extraction spread over worker processes: the same features, files and reports as one process."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from distributed import Client
from shared_data import GTZAN_MINI, clips_numbered
from worker_faults import KillOn, KillOnce

from kcnn import workers
from kcnn.cache import FeatureCache
from kcnn.cli.main import main
from kcnn.errors import KcnnError
from kcnn.extraction import BatchResult, extract_batch
from kcnn.features import FeatureSettings
from kcnn.workers import BYTES_PER_PROCESS, Workers

SETTINGS = FeatureSettings()


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    """8 clips and 5 files that cannot be used, one of them with a name that is not UTF-8."""
    folder = tmp_path_factory.mktemp("music")
    for clip in clips_numbered(range(1))[:8]:
        shutil.copy(clip, folder)
    (folder / "notes.wav").write_text("not audio at all")
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "short.wav", np.random.default_rng(0).normal(0, 0.1, 1500), 22050)
    os.mkfifo(folder / "pipe.wav")
    (Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.wav"))).write_bytes(b"RIFF0000")
    return folder


def paths_of(folder: Path) -> list[Path]:
    return [*sorted(folder.iterdir()), folder / "missing.wav"]


def assert_same(a: BatchResult, b: BatchResult) -> None:
    assert a.kept == b.kept
    assert [str(e) for e in a.skipped] == [str(e) for e in b.skipped]
    assert [(e.path, e.cause) for e in a.skipped] == [(e.path, e.cause) for e in b.skipped]
    for x, y in zip(a.features, b.features, strict=True):
        assert list(x) == list(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_two_worker_processes_give_the_features_of_one_process(dask_cluster, music, tmp_path):
    paths = paths_of(music)
    alone = extract_batch(paths, SETTINGS, 4, progress=False)
    cache = FeatureCache(tmp_path / "cache", SETTINGS)
    spread = Workers(scheduler=dask_cluster.scheduler_address)
    shared = extract_batch(paths, SETTINGS, 4, cache, progress=False, workers=spread)
    assert_same(alone, shared)
    assert len(alone.kept) == 8 and len(alone.skipped) == 6
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 8  # written by the workers
    again = extract_batch(paths, SETTINGS, 4, cache, progress=False, workers=spread)
    assert_same(alone, again)


def test_a_killed_worker_loses_no_file(dask_cluster, music, tmp_path):
    paths = paths_of(music)
    alone = extract_batch(paths, SETTINGS, 4, progress=False)
    marker = tmp_path / "kill-the-next-worker"
    marker.touch()
    with Client(dask_cluster) as client:
        client.register_plugin(KillOnce(str(marker)), name="kill-once")
        try:
            spread = Workers(scheduler=dask_cluster.scheduler_address)
            shared = extract_batch(paths, SETTINGS, 4, progress=False, workers=spread)
        finally:
            client.unregister_worker_plugin("kill-once")
            client.wait_for_workers(2, timeout=60)
    assert not marker.exists()  # a worker was killed mid-task
    assert_same(alone, shared)


def test_a_file_that_kills_its_workers_is_skipped(dask_cluster, music, tmp_path):
    clips = sorted(music.glob("*.00000.wav"))
    poison = tmp_path / "poison.wav"
    shutil.copy(clips[0], poison)
    paths = [*(clips * 2)[:15], poison]  # in tasks of 2 files: the poison's is retried alone
    scheduler = dask_cluster.scheduler
    allowed = scheduler.allowed_failures
    with Client(dask_cluster) as client:
        client.register_plugin(KillOn(poison.name), name="kill-on")
        scheduler.allowed_failures = 0
        try:
            spread = Workers(scheduler=dask_cluster.scheduler_address)
            batch = extract_batch(paths, SETTINGS, 4, progress=False, workers=spread)
        finally:
            scheduler.allowed_failures = allowed
            client.unregister_worker_plugin("kill-on")
            client.wait_for_workers(2, timeout=60)
    assert batch.kept == list(range(15))
    assert [str(err) for err in batch.skipped] == [f"{poison}: the process reading it died (1 try)"]


def kcnn(*args: object) -> tuple[int, str]:
    """Run the command; its exit code and standard error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def test_the_command_reports_skipped_files_alike_on_a_cluster(dask_cluster, music, tmp_path):
    one = kcnn("extract", music, "--out", tmp_path / "one", "--jobs", "1", "-q")
    address = dask_cluster.scheduler_address
    spread = kcnn("extract", music, "--out", tmp_path / "two", "--scheduler", address, "-q")
    assert one == spread
    assert one[0] == 0 and "skipped 4 file(s)" in one[1]  # short.wav makes one word
    entries = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.npz"))
    assert entries == sorted(
        p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.npz")
    )


def test_small_batches_stay_in_this_process(tmp_path):
    clips = sorted(GTZAN_MINI.glob("*/*.wav"))
    assert Workers(jobs=2).processes_for(clips) == 1  # 77 MB: starting a cluster would cost more
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(2 * BYTES_PER_PROCESS)  # sparse: takes no disk space
    assert Workers(jobs=2).processes_for([big]) == 2
    assert Workers(jobs=8).processes_for([big]) == 2
    assert Workers(jobs=1).processes_for([big]) == 1
    assert Workers(jobs=2).processes_for([tmp_path / "missing.wav"]) == 1


def test_an_unreachable_scheduler_is_one_line(monkeypatch):
    monkeypatch.setattr(workers, "CONNECT_TIMEOUT", 1)
    with pytest.raises(KcnnError, match=r"^tcp://127\.0\.0\.1:9: no Dask scheduler answers"):
        extract_batch(
            [GTZAN_MINI / "jazz" / "jazz.00001.wav"],
            SETTINGS,
            progress=False,
            workers=Workers(scheduler="tcp://127.0.0.1:9"),
        )


def test_every_command_takes_threads():
    from kcnn.cli.main import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    assert all("--threads" in parser._option_string_actions for parser in commands.values())


@pytest.mark.parametrize(
    ("args", "threads"),
    [(["train"], 1), (["train", "--threads", "2"], 2), (["embed"], 2)],
)
def test_own_process_threads(monkeypatch, args, threads):
    """`kcnn train` trains on one thread unless told otherwise; other commands use the cores."""
    from kcnn.cli import main as cli

    seen = []
    monkeypatch.setattr(cli, "available_cores", lambda: 2)
    monkeypatch.setattr(cli, "limit_threads", seen.append)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda only=None: parser)
    for command in parser._subparsers._group_actions[0].choices.values():
        command.set_defaults(run=lambda args: 0)
    positional = {"train": ["data", "--out", "m"], "embed": ["m", "x.wav", "--out", "v"]}
    assert cli.main([args[0], *positional[args[0]], *args[1:]]) == 0
    assert seen == [threads]

"""Publishing models and indexes: kills, concurrent writers, foreign --out, leftovers.

Real `kcnn` processes; `KCNN_KILL_AFTER` (kcnn.atomic) kills one between publishing steps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from shared_data import GTZAN_MINI, TINY_MODEL

from kcnn.atomic import STAGING, writer_lock
from kcnn.cache import TAG, FeatureCache
from kcnn.cli.main import main
from kcnn.errors import KcnnError
from kcnn.features import FeatureSettings
from kcnn.index import SongIndex, model_fingerprint
from kcnn.model import MusicModel


def kcnn(*args: object, kill_after: str | None = None) -> subprocess.Popen:
    """Start `kcnn ARGS` (stderr to a pipe); with `kill_after`, it kills itself right after
    that publishing step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if kill_after:
        env["KCNN_KILL_AFTER"] = kill_after
    return subprocess.Popen(
        [sys.executable, "-m", "kcnn.cli.main", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def waits(process: subprocess.Popen) -> bool:
    """Read the process's standard error until it says it waits for the lock (True) or ends."""
    return any("waiting for another run" in line for line in process.stderr)


def leftovers(path: Path) -> list[str]:
    """Hidden entries beside `path` that belong to it, but its lock."""
    return [p.name for p in path.parent.glob(f".{path.name}.*") if p.name != f".{path.name}.lock"]


def clips(genre: str, numbers: range) -> list[Path]:
    return [GTZAN_MINI / genre / f"{genre}.{n:05d}.wav" for n in numbers]


def test_a_train_killed_between_or_after_the_renames_leaves_a_model_that_loads(
    tiny_model, tmp_path
):
    manifest, trained, cache = tiny_model
    old = model_fingerprint(trained)
    models = {step: tmp_path / step / "model" for step in ("aside", "swapped")}
    runs = {}
    for step, model in models.items():  # both runs at once, each over its own copy
        shutil.copytree(trained, model)
        retrain = ["train", manifest, "--out", model, "--cache", cache, "--seed", "1"]
        runs[step] = kcnn(*retrain, *TINY_MODEL, kill_after=step)
    for step, model in models.items():
        code, err = finish(runs[step])
        assert code == -signal.SIGKILL, err
        if step == "aside":
            assert not model.exists()  # the old model is set aside: loading puts it back
        MusicModel.load(model)
        assert (model_fingerprint(model) == old) == (step != "swapped")
    model = models["swapped"]
    assert leftovers(model)  # the old model, set aside
    with writer_lock(model):  # the next writer removes what killed runs left
        assert not leftovers(model)


def test_an_index_run_killed_between_the_renames_leaves_the_old_index(tiny_model, tmp_path):
    _, model, cache = tiny_model
    index = tmp_path / "index"
    first = ["index", model, *clips("blues", range(2)), "--out", index, "--cache", cache, "-q"]
    assert main([str(a) for a in first]) == 0
    songs = SongIndex.load(index).songs
    args = ["index", model, *clips("metal", range(2)), "--out", index, "--cache", cache, "-q"]
    code, err = finish(kcnn(*args, kill_after="aside"))
    assert code == -signal.SIGKILL, err
    assert SongIndex.load(index).songs == songs


def test_concurrent_index_runs_lose_no_song(tiny_model, tmp_path):
    _, model, cache = tiny_model
    index = tmp_path / "index"
    expected: set[str] = set()
    for numbers in (range(2), range(2, 3)):  # clips whose features `tiny_model` cached
        batches = [clips(genre, numbers) for genre in ("blues", "metal")]
        with writer_lock(index):  # the runs start together, wait, then race for the lock
            runs = [
                kcnn("index", model, *b, "--out", index, "--cache", cache, "-q") for b in batches
            ]
            assert all(waits(run) for run in runs)
        for run in runs:
            code, err = finish(run)
            assert code == 0 and "Traceback" not in err, err
        expected |= {str(clip.resolve()) for batch in batches for clip in batch}
        assert {song.path for song in SongIndex.load(index).songs} == expected


def user_files(tmp_path: Path) -> dict[Path, bytes]:
    """Every file under `tmp_path` with its content."""
    return {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


def test_an_out_that_is_not_the_commands_output_is_refused_and_kept(tiny_model, tmp_path, capsys):
    manifest, model, _ = tiny_model
    folder, file, data = tmp_path / "documents", tmp_path / "notes.txt", tmp_path / "music"
    folder.mkdir()
    (folder / "thesis.txt").write_text("mine")
    file.write_text("mine")
    for genre in ("blues", "metal"):
        (data / genre).mkdir(parents=True)
        for clip in clips(genre, range(2)):
            shutil.copy(clip, data / genre)
    before = user_files(tmp_path)
    clip = clips("jazz", range(1))[0]
    commands = [
        ["train", data, "--out", data, *TINY_MODEL],
        ["train", manifest, "--out", folder, *TINY_MODEL],
        ["train", manifest, "--out", file, *TINY_MODEL],
        ["index", model, clip, "--out", folder, "-q"],
        ["index", model, clip, "--out", data, "-q"],
        ["extract", clip, "--out", file, "-q"],
        ["extract", clip, "--out", data, "-q"],
        ["benchmark", manifest, "--out", folder, "-q"],
    ]
    for args in commands:
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "exists and is not a kcnn" in err, err
    with pytest.raises(KcnnError, match="not a kcnn model"):
        MusicModel.load(model).save(folder)
    assert user_files(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents", "music", "notes.txt"]


def test_a_saved_model_has_the_usual_permissions(tiny_model, tmp_path):
    loaded = MusicModel.load(tiny_model[1])
    mask = os.umask(0o022)
    try:
        loaded.save(tmp_path / "model")
    finally:
        os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()}
    assert set(modes.values()) == {0o644} and len(modes) == 4, modes
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_the_feature_cache_removes_only_what_dead_runs_left(tmp_path):
    staging = tmp_path / "cache" / STAGING
    staging.mkdir(parents=True)
    (staging / "dead").mkdir()
    (staging / "dead" / ".x.npz.abcdefgh.tmp").write_bytes(b"half")
    (staging / "dead.lock").touch()
    (staging / "live").mkdir()
    live = FileLock(staging / "live.lock")
    with live:
        cache = FeatureCache(tmp_path / "cache", FeatureSettings(types=("mel",), view_rates=()))
        clip = clips("blues", range(1))[0]
        cache.put(clip, {"mel": np.ones((3, 40), np.float32)})
        assert not (staging / "dead").exists() and not (staging / "dead.lock").exists()
        assert (staging / "live").is_dir()
        assert cache.get(clip)["mel"].shape == (3, 40)
    assert (tmp_path / "cache" / TAG).read_text().startswith("Signature: ")

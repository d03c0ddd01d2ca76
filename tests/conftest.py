"""Shared fixtures, and one thread per process.

The tests use one core and background commands (background.py) the other: a process of
several threads (BLAS, OpenMP, torch) on a busy core waits for its threads at every small
operation. Set before numpy, torch or scikit-learn load; an explicit setting is kept.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Iterator
from pathlib import Path

import pytest
from background import COMMANDS, Jobs, command, environment
from shared_data import GTZAN_MINI, TINY_MODEL, write_manifest

import kcnn.cache
from kcnn.cache import FeatureCache
from kcnn.workers import local_cluster


def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's feature cache."""
    return tmp_path_factory.getbasetemp() / "feature-cache"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's feature cache out of the user's home."""
    monkeypatch.setenv("KCNN_CACHE_DIR", str(feature_cache(tmp_path_factory)))


class NoCache:
    """What a `--no-cache` command did with feature caches (see the `no_cache` fixture)."""

    def __init__(self, temporary: Path, user_cache: Path) -> None:
        self.temporary, self.user_cache = temporary, user_cache
        self.made: list[tuple] = []  # the arguments of every FeatureCache made

    def check(self) -> None:
        """One cache was made, in $TMPDIR; it is gone, and the user's cache was not made."""
        assert [os.path.dirname(folder) for folder, _ in self.made] == [str(self.temporary)]
        assert not list(self.temporary.glob("kcnn-*")) and not self.user_cache.exists()


@pytest.fixture
def no_cache(tmp_path, monkeypatch) -> NoCache:
    """$TMPDIR and the user's cache moved into `tmp_path`, and every FeatureCache recorded."""
    seen = NoCache(tmp_path / "tmp", tmp_path / "user-cache")
    seen.temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(seen.temporary))

    def recorded(*args) -> FeatureCache:
        seen.made.append(args)
        return FeatureCache(*args)

    monkeypatch.setattr(kcnn.cache, "FeatureCache", recorded)
    monkeypatch.setenv("KCNN_CACHE_DIR", str(seen.user_cache))
    return seen


@pytest.fixture(scope="session", autouse=True)
def background_jobs(request, tmp_path_factory) -> Iterator[Jobs]:
    """The background commands (see background.py) of the fixtures the selected tests use,
    started at once, in the order the tests need them."""
    first_use: dict[str, int] = {}
    for number, item in enumerate(request.session.items):
        for name in getattr(item, "fixturenames", ()):
            if name in COMMANDS:
                first_use.setdefault(name, number)
    folder = tmp_path_factory.mktemp("background")
    jobs = Jobs(
        sorted(first_use, key=first_use.__getitem__),
        folder,
        environment(feature_cache(tmp_path_factory)),
    )
    yield jobs
    jobs.stop()


@command("tiny_model")
def train_tiny_model(work: Path) -> list[object]:
    clips = [GTZAN_MINI / g / f"{g}.0000{n}.wav" for g in ("blues", "metal") for n in range(3)]
    manifest = write_manifest(work / "train.csv", clips)
    return ["train", manifest, "--out", work / "model", "--cache", work / "cache", *TINY_MODEL]


@pytest.fixture(scope="session")
def tiny_model(background_jobs):
    """A tiny model trained on 3 clips each of blues and metal: (manifest, model, cache)."""
    work = background_jobs.output("tiny_model")
    return work / "train.csv", work / "model", work / "cache"


@pytest.fixture(scope="session")
def dask_cluster():
    """A local Dask cluster of 2 worker processes, shared by the tests that use one."""
    with local_cluster(2) as cluster:
        yield cluster

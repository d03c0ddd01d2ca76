"""Shared fixtures."""

from __future__ import annotations

import pytest
from shared_data import GTZAN_MINI, TINY_MODEL, write_manifest

from kcnn.cli.main import main
from kcnn.workers import local_cluster


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's feature cache out of the user's home."""
    monkeypatch.setenv("KCNN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny model trained on 3 clips each of blues and metal: (manifest, model, cache)."""
    work = tmp_path_factory.mktemp("tiny")
    clips = [GTZAN_MINI / g / f"{g}.0000{n}.wav" for g in ("blues", "metal") for n in range(3)]
    manifest = write_manifest(work / "train.csv", clips)
    cache = work / "cache"
    args = ["train", manifest, "--out", work / "model", "--cache", cache, *TINY_MODEL]
    assert main([str(a) for a in args]) == 0
    return manifest, work / "model", cache


@pytest.fixture(scope="session")
def dask_cluster():
    """A local Dask cluster of 2 worker processes, shared by the tests that use one."""
    with local_cluster(2) as cluster:
        yield cluster

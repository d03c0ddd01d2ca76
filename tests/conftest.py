"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's feature cache out of the user's home."""
    monkeypatch.setenv("KCNN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))

"""An on-disk cache of frame features, one file per song and feature settings."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from kcnn.atomic import atomic_file
from kcnn.features import FeatureSettings


def default_cache_dir() -> Path:
    """`$KCNN_CACHE_DIR`, else `$XDG_CACHE_HOME/kcnn/features`, else `~/.cache/kcnn/features`."""
    if env := os.environ.get("KCNN_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kcnn" / "features"


class FeatureCache:
    """Frame features keyed by a file's absolute path, size, modification time and settings.

    A changed file or other settings give another key, so a stale entry is never read.
    """

    def __init__(self, directory: str | Path, settings: FeatureSettings) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self._settings_key = json.dumps(settings.to_dict(), sort_keys=True)

    def _entry(self, path: Path) -> Path:
        stat = path.stat()
        ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self._settings_key}"
        digest = hashlib.sha256(ident.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.npz"

    def get(self, path: str | Path) -> dict[str, np.ndarray] | None:
        """The cached features of `path`, or None if absent or unreadable."""
        try:
            entry = self._entry(Path(path))
            with np.load(entry, allow_pickle=False) as stored:
                return {name: stored[name] for name in self.settings.types}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None

    def put(self, path: str | Path, features: dict[str, np.ndarray]) -> None:
        """Store the features of `path` (written atomically)."""
        entry = self._entry(Path(path))
        with atomic_file(entry) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **features)

"""An on-disk cache of frame features, one file per song and feature settings.

The cache folder holds CACHEDIR.TAG (the cache directory tag that backup tools know) and
entries `xx/<sha256>.npz`, each named by the file and settings it holds the features of, so
that the names are the index of what the cache holds: a run finds the entries an earlier
one wrote, even one that was killed, without reading them. An entry is written in a
`Staging` folder inside the cache and renamed into place once complete and synced: an entry
is whole or absent, and a later run removes what a killed run left in its staging folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

from kcnn.atomic import OutputKind, Staging, atomic_file, write_text
from kcnn.features import FeatureSettings, feature_keys

TAG = "CACHEDIR.TAG"
SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
"""The first line of a cache directory tag (https://bford.info/cachedir/)."""


def default_cache_dir() -> Path:
    """`$KCNN_CACHE_DIR`, else `$XDG_CACHE_HOME/kcnn/features`, else `~/.cache/kcnn/features`."""
    if env := os.environ.get("KCNN_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kcnn" / "features"


def is_cache(folder: Path) -> bool:
    """True if `folder` is a feature cache: tagged, or of entry folders only (untagged, older)."""
    if (folder / TAG).is_file():
        return (folder / TAG).read_bytes().startswith(SIGNATURE.encode())
    if not folder.is_dir():
        return False
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    hexdigits = set("0123456789abcdef")
    return bool(names) and all(len(n) == 2 and set(n) <= hexdigits for n in names)


CACHE = OutputKind("kcnn feature cache", is_cache)


class FeatureCache:
    """Frame features keyed by a file's absolute path, size, modification time and settings.

    A changed file or other settings give another key, so a stale entry is never read.
    Sent to another process (pickled), it becomes that process's one cache of the folder
    and settings, with its own staging folder.
    """

    def __init__(self, directory: str | Path, settings: FeatureSettings) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self._settings_key = json.dumps(settings.to_dict(), sort_keys=True)
        self._staging: Staging | None = None

    def __reduce__(self) -> tuple[object, tuple[Path, FeatureSettings]]:
        return shared_cache, (self.directory, self.settings)

    def _entry(self, path: Path) -> Path:
        stat = path.stat()
        ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self._settings_key}"
        digest = hashlib.sha256(os.fsencode(ident)).hexdigest()  # names need not be UTF-8
        return self.directory / digest[:2] / f"{digest}.npz"

    def get(self, path: str | Path) -> dict[str, np.ndarray] | None:
        """The cached features of `path`, or None if absent or unreadable."""
        try:
            entry = self._entry(Path(path))
            with np.load(entry, allow_pickle=False) as stored:
                return {name: stored[name] for name in feature_keys(self.settings)}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None

    def frames(self, path: str | Path) -> int | None:
        """Frames of the cached features of `path`, read from the entry's array header
        (not its data); None if absent or unreadable."""
        try:
            entry = self._entry(Path(path))
            name = f"{feature_keys(self.settings)[0]}.npy"
            with zipfile.ZipFile(entry) as archive, archive.open(name) as member:
                version = np.lib.format.read_magic(member)
                header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape = header(member)[0]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        return int(shape[0]) if shape else None

    def put(self, path: str | Path, features: dict[str, np.ndarray]) -> None:
        """Store the features of `path` (written atomically)."""
        entry = self._entry(Path(path))
        if self._staging is None:
            self._staging = Staging(self.directory)
            if not (self.directory / TAG).is_file():
                write_text(self.directory / TAG, f"{SIGNATURE}\n# kcnn's cache of frame features\n")
        with atomic_file(entry, self._staging.folder) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **features)


def temporary_cache(settings: FeatureSettings) -> FeatureCache:
    """A cache in a new folder of the system's temporary folder (`$TMPDIR`, else /tmp),
    removed with everything in it once the cache is no longer referenced, or at exit."""
    directory = tempfile.mkdtemp(prefix="kcnn-features-")
    temporary = FeatureCache(directory, settings)
    weakref.finalize(temporary, shutil.rmtree, directory, ignore_errors=True)
    return temporary


@cache
def shared_cache(directory: Path, settings: FeatureSettings) -> FeatureCache:
    """This process's cache of `directory` for `settings` (one staging folder per process)."""
    return FeatureCache(directory, settings)

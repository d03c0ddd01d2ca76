"""Writing outputs so that a kill at any instant leaves the old or the new one, never half.

A folder (a model, an index) is published by `atomic_directory`, by one writer at a time:
the writer holds a lock (hidden file `.NAME.lock` beside the folder), writes the new
folder in a hidden temporary folder beside it, syncs it to disk, then swaps it in with two
renames (the old folder aside, the new one in place). A run killed between the two
renames leaves the old folder aside; the next run that takes the lock, or loads the
folder, puts it back. Taking the lock also removes the temporary folders of killed runs.
Only a folder that is free (absent or empty) or holds the same kind of output
(`OutputKind`) is replaced; anything else is refused, never deleted.

Test hook: with `KCNN_KILL_AFTER=STEP` in the environment a process kills itself (SIGKILL)
right after that publishing step: "written" (new folder complete and synced), "aside"
(old folder set aside), "swapped" (new folder in place, the old one not yet removed), or,
for a file, "staged" (written and synced in its temporary place, not yet renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from kcnn.errors import KcnnError

STAGING = ".kcnn-staging"
"""Folder of the per-process temporary folders that `Staging` makes inside an output."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync(path: Path) -> None:
    """Flush a file or folder to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal(folder: Path) -> None:
    """Give everything in `folder` the usual permissions (umask) and flush it to disk."""
    mask = _umask()
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            os.chmod(Path(root, name), 0o666 & ~mask)
            _sync(Path(root, name))
        os.chmod(root, 0o777 & ~mask)
        _sync(Path(root))


def _step(name: str) -> None:
    """The test hook of the module docstring."""
    if os.environ.get("KCNN_KILL_AFTER") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(path: str | Path, staging: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; on success it is synced and renamed to `path`.

    The caller writes the whole file to the yielded path. On an exception the temporary
    file is removed and `path` is left as it was. The temporary file lies beside `path`,
    or in `staging` (a `Staging` folder on the same file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=staging or path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private to the user
        _sync(Path(tmp))
        _step("staged")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def remove_temporary_files(folder: str | Path) -> None:
    """Remove what killed runs' `atomic_file` left in `folder` and its sub-folders.

    Only for a folder whose writers hold its `writer_lock`, while holding it.
    """
    own = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
    for root, _, files in os.walk(folder):
        for name in files:
            if own.fullmatch(name):
                _remove(Path(root, name))


def write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class OutputKind:
    """A kind of output folder, with `holds`: does a folder already hold one?"""

    noun: str
    holds: Callable[[Path], bool]

    def check(self, path: str | Path) -> None:
        """Raise KcnnError unless `path` is absent, an empty folder or one of this kind."""
        path = Path(path)
        if not os.path.lexists(path) or self.holds(path):
            return
        if path.is_dir() and not any(path.iterdir()):
            return
        raise KcnnError(
            f"{path}: exists and is not a {self.noun}; nothing was changed: choose another --out"
        )


def json_marker(name: str, key: str) -> Callable[[Path], bool]:
    """A `holds` for folders marked by the file `name`: a JSON object with `key`."""

    def holds(folder: Path) -> bool:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and key in data

    return holds


def _leftovers(path: Path) -> list[Path]:
    """Temporary (.tmp) and set-aside (.old) entries that `atomic_directory` makes for `path`."""
    own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
    return [p for p in path.parent.iterdir() if own.fullmatch(p.name)]


def _recover(path: Path) -> None:
    """Put back `path` if a killed run set it aside, and remove killed runs' leftovers."""
    leftovers = _leftovers(path)
    if not os.path.lexists(path):
        asides = [p / "previous" for p in leftovers if os.path.lexists(p / "previous")]
        if asides:
            os.replace(max(asides, key=lambda p: p.parent.stat().st_mtime_ns), path)
            _sync(path.parent)
    for leftover in leftovers:
        _remove(leftover)


@contextlib.contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold the lock on the output `path` (see the module docstring); reentrant.

    While another run holds it, waits and says so on standard error. On taking it, puts
    back an output that a killed run set aside and removes killed runs' temporary folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.parent / f".{path.name}.lock", is_singleton=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        print(f"kcnn: waiting for another run that holds the lock on {path}", file=sys.stderr)
        lock.acquire()
    try:
        if lock.lock_counter == 1:
            _recover(path)
        yield
    finally:
        lock.release()


def restore(path: str | Path) -> None:
    """Put `path` back if a killed run left it set aside; otherwise do nothing."""
    path = Path(path)
    if os.path.lexists(path) or not path.parent.is_dir():
        return
    if any(p.name.endswith(".old") for p in _leftovers(path)):
        with contextlib.suppress(OSError), writer_lock(path):
            pass


@contextlib.contextmanager
def atomic_directory(path: str | Path, kind: OutputKind | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces `path` (see module docstring).

    kind: what `path` must hold, if anything, to be replaced (`OutputKind.check`). A
    failure at any point, or a kill at any instant, leaves the previous folder intact.
    """
    path = Path(path)
    if kind is not None:
        kind.check(path)  # before a lock file is made beside it, and again under the lock
    with writer_lock(path):
        if kind is not None:
            kind.check(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            _seal(tmp)
            _step("written")
            aside = None
            if os.path.lexists(path):
                aside = Path(
                    tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
                )
                os.replace(path, aside / "previous")
                _step("aside")
            os.replace(tmp, path)
            _sync(path.parent)
            _step("swapped")
            if aside is not None:
                shutil.rmtree(aside)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Staging:
    """A folder for this process's temporary files inside the folder `root`.

    It lies in `root/.kcnn-staging`, locked while this process lives; making one removes
    the folders of processes that died (whose locks are free), with what they left there.
    """

    def __init__(self, root: str | Path) -> None:
        base = Path(root) / STAGING
        base.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".lock", dir=base)
        os.close(fd)
        self._lock = FileLock(name)
        self._lock.acquire()
        self.folder = Path(name).with_suffix("")
        self.folder.mkdir()
        for lock_file in base.glob("*.lock"):
            if lock_file != Path(name):
                _remove_if_dead(lock_file)


def _remove_if_dead(lock_file: Path) -> None:
    """Remove the staging folder of `lock_file` and the lock, unless a live process holds it."""
    lock = FileLock(lock_file)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        return
    try:
        _remove(lock_file.with_suffix(""))
        _remove(lock_file)
    finally:
        lock.release()

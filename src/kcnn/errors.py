"""Errors that kcnn reports to users as one line, without a traceback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def printable(path: str | Path) -> str:
    """`path` as text any UTF-8 output takes: bytes of the name that are not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class KcnnError(Exception):
    """A problem caused by the user's input or settings, reported as one line."""


class AudioError(KcnnError):
    """An audio file that cannot be used: names the file and the cause."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{printable(path)}: {cause}")

    def __reduce__(self) -> tuple[type[AudioError], tuple[str, str]]:
        return AudioError, (self.path, self.cause)  # as sent back by a worker process


class ModelError(KcnnError):
    """A saved model that cannot be loaded (missing, corrupt or of another version)."""


@contextlib.contextmanager
def damaged(file: str | Path, error: type[KcnnError] = KcnnError) -> Iterator[None]:
    """Report any failure inside as one line `error`: `file` is damaged, and why."""
    try:
        yield
    except KcnnError:
        raise
    except Exception as err:
        cause = " ".join(str(err).split())[:300] or type(err).__name__
        raise error(f"{file}: damaged ({cause})") from err

"""Errors that kcnn reports to users as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class KcnnError(Exception):
    """A problem caused by the user's input or settings, reported as one line."""


class AudioError(KcnnError):
    """An audio file that cannot be used: names the file and the cause."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class ModelError(KcnnError):
    """A saved model that cannot be loaded (missing, corrupt or of another version)."""

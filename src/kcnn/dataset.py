"""Finding audio files and their labels: a folder per label, or a CSV manifest."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kcnn.errors import KcnnError

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".au", ".snd", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}
)


@dataclass(frozen=True)
class LabelledFiles:
    """Audio files with one label each, and optionally a group (artist) each."""

    paths: list[Path]
    labels: list[str]
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Iterable[int]) -> LabelledFiles:
        """The files at `indices`, in that order."""
        idx = list(indices)
        groups = None if self.groups is None else [self.groups[i] for i in idx]
        return LabelledFiles([self.paths[i] for i in idx], [self.labels[i] for i in idx], groups)


def is_audio(path: Path) -> bool:
    """True if the file name has an audio extension kcnn decodes."""
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def find_audio(inputs: Iterable[str | Path]) -> list[Path]:
    """Audio files named by `inputs`: folders searched recursively (sorted), anything else as given.

    A named file is not checked here: decoding reports one that is missing, unreadable
    or not a regular file, so that a batch can skip it and go on.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if not p.is_dir() and is_audio(p)))
        else:
            found.append(path)
    return found


def read_labelled(data: str | Path) -> LabelledFiles:
    """Read a labelled collection.

    `data` is either a folder with one sub-folder per label (as GTZAN ships:
    `blues/blues.00000.wav`), or a CSV manifest with the columns `path,label` and
    optionally `group`; relative paths in a manifest are taken from the manifest's folder.
    """
    data = Path(data)
    if data.is_dir():
        return _read_folder(data)
    if data.is_file() and data.suffix.lower() == ".csv":
        return _read_manifest(data)
    raise KcnnError(f"{data}: expected a folder with one sub-folder per label, or a CSV manifest")


def _read_folder(root: Path) -> LabelledFiles:
    paths: list[Path] = []
    labels: list[str] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = find_audio([sub])
        paths.extend(files)
        labels.extend([sub.name] * len(files))
    if not paths:
        raise KcnnError(f"{root}: no audio files found in its sub-folders (one per label)")
    return LabelledFiles(paths, labels)


def _read_manifest(manifest: Path) -> LabelledFiles:
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "path" not in fields or "label" not in fields:
            raise KcnnError(f"{manifest}: a manifest needs the header columns 'path,label'")
        rows = [
            {k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader
        ]
    paths, labels, groups = [], [], []
    for line, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise KcnnError(f"{manifest}, line {line}: empty path or label")
        path = Path(row["path"])
        paths.append(path if path.is_absolute() else manifest.parent / path)
        labels.append(row["label"])
        groups.append(row.get("group", ""))
    if not paths:
        raise KcnnError(f"{manifest}: the manifest lists no files")
    return LabelledFiles(paths, labels, groups if "group" in fields else None)

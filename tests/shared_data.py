"""Paths of the real music beside the repository, and manifests made from them."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GTZAN_MINI = SHARED / "gtzan-mini"
SPLITS = SHARED / "gtzan-splits"
TINY_MODEL = ["--test-size", "0", "--words", "16", "--epochs", "2", "--conv-units", "20"]
TINY_MODEL += ["--hidden-units", "10", "-q"]
"""`kcnn train` options of a model that trains in a second or two."""


def write_manifest(path: Path, clips: list[Path]) -> Path:
    """A CSV manifest `path,label` of gtzan-mini clips, labelled by their folder."""
    path.write_text("path,label\n" + "".join(f"{c},{c.parent.name}\n" for c in clips))
    return path


def clips_numbered(numbers: range) -> list[Path]:
    """The gtzan-mini clips <genre>.000NN.wav whose number NN is in `numbers`, every genre."""
    return [
        clip
        for clip in sorted(GTZAN_MINI.glob("*/*.wav"))
        if int(clip.stem.split(".")[1]) in numbers
    ]

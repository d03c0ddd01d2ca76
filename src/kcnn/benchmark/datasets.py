"""The collections a benchmark runs on, and their fixed train/test splits.

- GTZAN as it ships: `genres/<genre>/<genre>.NNNNN.au` (or `.wav`); DATA may name `genres/`
  or its parent. The clip `jazz.00054` is known to be corrupt and is left out, with a note.
- The fault-filtered GTZAN split of Kereliuk, Sturm and Larsen (2015), shipped with kcnn:
  443 training, 197 validation and 290 test clips. With no model selection to do, the
  benchmark trains on training + validation (640 clips) and tests on the 290.
- ISMIR2004Genre as distributed by the MTG (Zenodo record 1302992), assumed laid out as
  `ROOT/metadata/<part>/tracklist.csv` and `ROOT/audio/<part>/...` for the parts `training`
  and `development` (the paper tests on `development`). A tracklist has no header row and the
  columns class, artist, album, track, track number, file path; the path is taken relative to
  `ROOT/audio/<part>/` (a leading `./` is dropped), and if no file is there, the file of the
  same name directly in that folder is used. The artist is the song's group.
- Any folder with one sub-folder per label, or a CSV manifest `path,label[,group]`; with
  `--split FILE`, FILE lists the test songs (one path a line, relative to DATA), the rest train.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kcnn.dataset import LabelledFiles, read_labelled
from kcnn.errors import KcnnError

GTZAN_GENRES = frozenset(
    {"blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"}
)
GTZAN_CORRUPT = "jazz.00054"
"""The GTZAN clip that cannot be decoded (a known fault of the collection)."""
SPLITS = ("gtzan-filtered", "ismir2004")
"""Named fixed splits; any other --split value is a file listing the test songs."""
ISMIR_PARTS = ("training", "development")


@dataclass(frozen=True)
class Collection:
    """Labelled songs, and for a fixed split, which of them are test songs.

    test: None for cross-validation, else one flag per song (True: a test song).
    notes: what a reader of the results must know (files left out, files missing).
    """

    files: LabelledFiles
    test: tuple[bool, ...] | None = None
    notes: tuple[str, ...] = ()

    def subset(self, indices: Iterable[int]) -> Collection:
        """The songs at `indices` (e.g. those whose features could be computed)."""
        idx = list(indices)
        test = None if self.test is None else tuple(self.test[i] for i in idx)
        return Collection(self.files.subset(idx), test, self.notes)


def load_collection(data: str | Path, protocol: str, split: str | None = None) -> Collection:
    """Read DATA for `protocol` "cv" (no fixed split) or "split" (see the module docstring)."""
    data = Path(data)
    ismir = is_ismir2004(data)
    if protocol == "cv":
        if ismir:
            raise KcnnError(
                f"{data}: ISMIR2004Genre comes with its own training and development sets; "
                "use --protocol split"
            )
        return read_gtzan_or_labelled(data)
    if protocol != "split":
        raise KcnnError(f"unknown protocol {protocol!r}; choose cv or split")
    if split is None:
        if not ismir:
            raise KcnnError(
                f"--protocol split needs --split: {', '.join(SPLITS)}, "
                "or a file listing the test songs"
            )
        split = "ismir2004"
    if split == "ismir2004":
        return read_ismir2004(data)
    if split == "gtzan-filtered":
        return gtzan_filtered(read_gtzan_or_labelled(data))
    return listed_split(read_gtzan_or_labelled(data), data, Path(split))


def read_gtzan_or_labelled(data: Path) -> Collection:
    """A labelled folder or manifest; GTZAN is recognised and its corrupt clip left out."""
    root = data / "genres" if (data / "genres").is_dir() else data
    files = read_labelled(root)
    if not looks_like_gtzan(files):
        return Collection(files)
    keep = [i for i, p in enumerate(files.paths) if p.stem != GTZAN_CORRUPT]
    if len(keep) == len(files):
        return Collection(files)
    note = f"left out {GTZAN_CORRUPT}, the corrupt clip of GTZAN"
    return Collection(files.subset(keep), notes=(note,))


def looks_like_gtzan(files: LabelledFiles) -> bool:
    """True if every label is a GTZAN genre and every file is named `<genre>.NNNNN.ext`."""
    return set(files.labels) <= GTZAN_GENRES and all(
        re.fullmatch(rf"{re.escape(label)}\.\d{{5}}", path.stem)
        for path, label in zip(files.paths, files.labels, strict=True)
    )


def gtzan_split_lists() -> dict[str, list[str]]:
    """The fault-filtered split, part -> `<genre>/<genre>.NNNNN` keys (train, valid, test)."""
    folder = resources.files("kcnn.benchmark") / "splits"
    parts = {}
    for part in ("train", "valid", "test"):
        text = (folder / f"gtzan_{part}_filtered.txt").read_text(encoding="utf-8")
        parts[part] = [_clip_key(Path(line.strip())) for line in text.splitlines() if line.strip()]
    return parts


def _clip_key(path: Path) -> str:
    """`<genre>/<genre>.NNNNN` whatever the extension (GTZAN ships .au; copies are often .wav)."""
    return f"{path.parent.name}/{path.stem}"


def gtzan_filtered(collection: Collection) -> Collection:
    """Keep the songs of the fault-filtered split: train = train + valid lists, test = test list."""
    lists = gtzan_split_lists()
    train_keys = set(lists["train"]) | set(lists["valid"])
    test_keys = set(lists["test"])
    keys = [_clip_key(p) for p in collection.files.paths]
    keep = [i for i, k in enumerate(keys) if k in train_keys or k in test_keys]
    n_train = sum(keys[i] in train_keys for i in keep)
    n_test = len(keep) - n_train
    if n_train == 0 or n_test == 0:
        raise KcnnError(
            f"the collection holds {n_train} training and {n_test} test clips of the "
            "fault-filtered GTZAN split; is it GTZAN (<genre>/<genre>.NNNNN.au)?"
        )
    notes = list(collection.notes)
    listed = len(train_keys) + len(test_keys)
    if len(keep) < listed:
        notes.append(
            f"only {len(keep)} of the {listed} clips of the fault-filtered split are in the "
            f"collection ({n_train} training + validation, {n_test} test): a subset, "
            "not the published split"
        )
    return Collection(
        collection.files.subset(keep), tuple(keys[i] in test_keys for i in keep), tuple(notes)
    )


def listed_split(collection: Collection, data: Path, listing: Path) -> Collection:
    """Test songs = the files listed in `listing` (paths relative to DATA, or absolute)."""
    if not listing.is_file():
        raise KcnnError(
            f"{listing}: no such split file (named splits: {', '.join(SPLITS)}; "
            "otherwise a file listing the test songs)"
        )
    base = data if data.is_dir() else data.parent
    lines = [ln.strip() for ln in listing.read_text(encoding="utf-8").splitlines() if ln.strip()]
    listed = {(base / ln).resolve() for ln in lines}
    test = tuple(p.resolve() in listed for p in collection.files.paths)
    found = sum(test)
    if found < len(listed):
        raise KcnnError(f"{listing}: {len(listed) - found} listed file(s) are not in {data}")
    if found == len(test):
        raise KcnnError(f"{listing}: lists every song of {data}; nothing is left to train on")
    return Collection(collection.files, test, collection.notes)


def is_ismir2004(data: Path) -> bool:
    """True if `data` holds ISMIR2004Genre's metadata/<part>/tracklist.csv files."""
    return all((data / "metadata" / part / "tracklist.csv").is_file() for part in ISMIR_PARTS)


def read_ismir2004(root: Path) -> Collection:
    """ISMIR2004Genre: the training part trains, the development part tests (paper 4.1)."""
    if not is_ismir2004(root):
        raise KcnnError(
            f"{root}: not ISMIR2004Genre (expected metadata/training/tracklist.csv and "
            "metadata/development/tracklist.csv)"
        )
    paths: list[Path] = []
    labels: list[str] = []
    groups: list[str] = []
    test: list[bool] = []
    for part in ISMIR_PARTS:
        for path, label, artist in _read_tracklist(root, part):
            paths.append(path)
            labels.append(label)
            groups.append(artist)
            test.append(part == "development")
    return Collection(LabelledFiles(paths, labels, groups), tuple(test))


def _read_tracklist(root: Path, part: str) -> list[tuple[Path, str, str]]:
    """(audio path, class, artist) of each track of one part."""
    tracklist = root / "metadata" / part / "tracklist.csv"
    audio = root / "audio" / part
    rows, missing = [], []
    with tracklist.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or (line == 1 and row[0].strip().lower() == "class"):
                continue
            if len(row) < 6:
                raise KcnnError(f"{tracklist}, line {line}: expected 6 columns, got {len(row)}")
            label, artist, name = row[0].strip(), row[1].strip(), row[5].strip()
            relative = Path(name.removeprefix("./"))
            candidates = (audio / relative, audio / relative.name)
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                missing.append(str(candidates[0]))
            else:
                rows.append((path, label, artist))
    if missing:
        raise KcnnError(f"{tracklist}: {len(missing)} listed file(s) not found, e.g. {missing[0]}")
    if not rows:
        raise KcnnError(f"{tracklist}: lists no tracks")
    return rows

"""`kcnn index MODEL COLLECTION... --out INDEX`: embed a collection for similarity search.

Songs already in INDEX whose files have not changed are not embedded again; new and
changed files are. Labels (used by 'kcnn cluster' and 'kcnn map') come from a CSV
manifest's label column, or, for a folder, from the first-level sub-folder of each file
(as 'kcnn train' reads a folder) when every file lies in such a sub-folder and there are
at least two (--labels auto), always (--labels folder) or never (--labels none).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from kcnn.atomic import writer_lock
from kcnn.cli.common import (
    add_cache_options,
    add_device_option,
    add_duration_option,
    add_quiet_option,
    add_worker_options,
    extract_or_fail,
    report_skipped,
    workers_of,
)
from kcnn.dataset import find_audio, read_labelled
from kcnn.errors import KcnnError

if TYPE_CHECKING:
    from kcnn.index import SongIndex

LABEL_RULES = ("auto", "folder", "none")


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("model", type=Path, help="model folder written by 'kcnn train'")
    p.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="collection",
        help="folders (searched recursively), audio files, or CSV manifests path,label",
    )
    p.add_argument("--out", type=Path, required=True, help="index folder to create or update")
    p.add_argument(
        "--labels", choices=LABEL_RULES, default="auto", help="label songs by folder (see above)"
    )
    add_cache_options(p)
    add_device_option(p)
    add_duration_option(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run)
    return p


def folder_labels(root: Path, files: list[Path], rule: str) -> list[str | None]:
    """The label of each file under `root`: its first-level sub-folder name, by `rule`."""
    parts = [f.relative_to(root).parts for f in files]
    subfolders = {p[0] for p in parts if len(p) > 1}
    by_folder = rule == "folder" or (
        rule == "auto" and len(subfolders) >= 2 and all(len(p) > 1 for p in parts)
    )
    return [p[0] if by_folder and len(p) > 1 else None for p in parts]


def collect(inputs: list[Path], rule: str) -> tuple[list[Path], list[str | None]]:
    """Audio files of `inputs` (each once) with their labels, or None where unknown."""
    labelled: dict[Path, str | None] = {}
    for item in inputs:
        if item.is_file() and item.suffix.lower() == ".csv":
            manifest = read_labelled(item)
            pairs = zip(manifest.paths, manifest.labels, strict=True)
        elif item.is_dir():
            files = find_audio([item])
            pairs = zip(files, folder_labels(item, files, rule), strict=True)
        else:
            files = find_audio([item])
            pairs = ((f, f.parent.name if rule == "folder" else None) for f in files)
        for path, label in pairs:
            labelled.setdefault(path.resolve(), label)
    if not labelled:
        raise KcnnError(f"no audio files found in {', '.join(map(str, inputs))}")
    return list(labelled), list(labelled.values())


def open_index(out: Path, model_dir: Path) -> SongIndex | None:
    """The index at `out` if there is one (made with this model), else None."""
    if not (out / "index.json").is_file():
        return None
    from kcnn.index import SongIndex

    index = SongIndex.load(out)
    index.check_model(model_dir)
    return index


def run(args: argparse.Namespace) -> int:
    """Update the index under its lock: a concurrent run on it waits, then reads the result."""
    from kcnn.index import INDEX  # the stack, imported when the command runs

    if not (args.out / "index.json").is_file():
        INDEX.check(args.out)  # before the lock file is made beside it
    with writer_lock(args.out):
        return update(args)


def update(args: argparse.Namespace) -> int:
    from kcnn.index import Song, SongIndex, model_fingerprint
    from kcnn.model import MusicModel

    index = open_index(args.out, args.model)
    model = MusicModel.load(args.model, args.device)
    paths, labels = collect(args.inputs, args.labels)
    todo = [i for i, path in enumerate(paths) if index is None or not index.is_current(path)]
    if not todo:
        print(f"{args.out}: up to date, {len(index)} songs")
        return 0
    batch = extract_or_fail(
        args, [paths[i] for i in todo], model.feature_settings, model.min_frames, workers_of(args)
    )
    vectors = model.embed(batch.features)
    if index is None:
        index = SongIndex(
            vectors.shape[1], str(args.model.resolve()), model_fingerprint(args.model)
        )
    kept = [todo[i] for i in batch.kept]
    changed = sum(index.row_of(paths[i]) is not None for i in kept)
    index.add([Song.of(paths[i], labels[i]) for i in kept], vectors)
    index.save(args.out)
    print(
        f"{len(kept)} songs embedded ({len(kept) - changed} new, {changed} changed); "
        f"{len(index)} songs in {args.out}"
    )
    report_skipped(batch)
    return 0

"""`kcnn predict MODEL FILE_OR_FOLDER...`: the label and class probabilities of each song."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

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
from kcnn.config import CLASSIFIERS, DEFAULT_CLASSIFIER
from kcnn.dataset import find_audio
from kcnn.errors import printable


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("model", type=Path, help="model folder written by 'kcnn train'")
    p.add_argument(
        "inputs", type=Path, nargs="+", help="audio files or folders (searched recursively)"
    )
    p.add_argument(
        "--classifier",
        choices=CLASSIFIERS,
        default=DEFAULT_CLASSIFIER,
        help=f"the network's softmax or the SVM (default {DEFAULT_CLASSIFIER})",
    )
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output format"
    )
    add_cache_options(p)
    add_device_option(p)
    add_duration_option(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from kcnn.model import MusicModel  # the stack, imported when the command runs

    model = MusicModel.load(args.model, args.device)
    paths = find_audio(args.inputs)
    batch = extract_or_fail(args, paths, model.feature_settings, model.min_frames, workers_of(args))
    proba = model.predict_proba(batch.features, args.classifier)
    classes = [str(c) for c in model.classes]
    rows = [
        {
            "path": printable(paths[i]),
            "label": classes[int(p.argmax())],
            "probabilities": {c: round(float(v), 4) for c, v in zip(classes, p, strict=True)},
        }
        for i, p in zip(batch.kept, proba, strict=True)
    ]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", "label", *classes])
        for row in rows:
            writer.writerow([row["path"], row["label"], *row["probabilities"].values()])
    else:
        for row in rows:
            top = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            shown = ", ".join(f"{c} {v:.2f}" for c, v in top)
            print(f"{row['path']}\t{row['label']}\t({shown})")
    report_skipped(batch)
    return 0

"""`kcnn evaluate MODEL DATA`: accuracy, per-class recall and confusion on a labelled collection."""

from __future__ import annotations

import argparse
import json
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
from kcnn.dataset import read_labelled


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("model", type=Path, help="model folder written by 'kcnn train'")
    p.add_argument(
        "data", type=Path, help="folder with one sub-folder per label, or CSV path,label"
    )
    p.add_argument(
        "--classifier",
        choices=CLASSIFIERS,
        default=DEFAULT_CLASSIFIER,
        help=f"the network's softmax or the SVM (default {DEFAULT_CLASSIFIER})",
    )
    p.add_argument("--json", action="store_true", help="one JSON object on standard output")
    add_cache_options(p)
    add_device_option(p)
    add_duration_option(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from kcnn.evaluation import format_score, score  # the stack, imported when it runs
    from kcnn.model import MusicModel

    model = MusicModel.load(args.model, args.device)
    data = read_labelled(args.data)
    batch = extract_or_fail(
        args, data.paths, model.feature_settings, model.min_frames, workers_of(args)
    )
    truth = [data.labels[i] for i in batch.kept]
    labels = sorted({*model.classes, *truth})
    report = score(truth, model.predict(batch.features, args.classifier), labels)
    report["classifier"] = args.classifier
    report["skipped"] = [str(err) for err in batch.skipped]
    print(json.dumps(report) if args.json else format_score(report))
    report_skipped(batch)
    return 0

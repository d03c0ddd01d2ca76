"""`kcnn train DATA --out MODEL`: learn words, KCNN and SVM; report held-out accuracy, then
fit the model written on every song given."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kcnn.cli.common import (
    add_cache_options,
    add_device_option,
    add_duration_option,
    add_model_options,
    add_quiet_option,
    add_types_option,
    add_worker_options,
    extract_or_fail,
    fraction,
    model_config,
    parse_types,
    report_skipped,
    workers_of,
)
from kcnn.config import CLASSIFIERS, DEFAULT_CLASSIFIER, ModelConfig
from kcnn.dataset import read_labelled
from kcnn.errors import KcnnError
from kcnn.threads import TRAINING_THREADS, available_cores

if TYPE_CHECKING:
    from kcnn.extraction import Features
    from kcnn.model import MusicModel
    from kcnn.refit import FinalFit


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument(
        "data", type=Path, help="folder with one sub-folder per label, or CSV path,label"
    )
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_types_option(p)
    add_model_options(p)
    p.add_argument(
        "--test-size", type=fraction, default=0.2, help="held-out fraction (default 0.2; 0: none)"
    )
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="write the model fitted without the held-out part (default: after reporting "
        "held-out accuracy, fit the model written on every song)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split, codebook and network")
    add_cache_options(p)
    add_device_option(p)
    add_duration_option(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run, own_threads=TRAINING_THREADS)
    return p


def build_model(args: argparse.Namespace, config: ModelConfig) -> MusicModel:
    """A model of `config`, with the seed, device, progress and duration limit given."""
    from kcnn.model import MusicModel, make_pipeline

    return MusicModel(
        make_pipeline(
            config,
            args.seed,
            device=args.device,
            progress=not args.quiet,
            max_duration=args.max_duration * 60,
        )
    )


def refit(
    args: argparse.Namespace,
    model: MusicModel,
    features: Sequence[Features],
    labels: Sequence[str],
    final: FinalFit | None,
) -> MusicModel:
    """The final model: fitted on every song, for as many epochs as early stopping chose
    for `model` (no song held out for validation); `final`'s, if it is being fitted."""
    from kcnn.refit import final_config

    epochs = model.pipeline.named_steps["kcnn"].best_epoch_ + 1
    print(f"fitting the final model on all {len(labels)} songs, {epochs} epochs")
    if final is not None:
        return final.result(epochs)
    return build_model(args, final_config(model.config, epochs)).fit(features, labels)


def run(args: argparse.Namespace) -> int:
    # the command's stack, imported when it runs: `kcnn train --help` answers at once
    from sklearn.model_selection import train_test_split

    from kcnn.evaluation import format_score, score
    from kcnn.extraction import subset
    from kcnn.model import MODEL
    from kcnn.refit import FinalFit

    MODEL.check(args.out)
    model = build_model(args, model_config(args, parse_types(args.features)))
    data = read_labelled(args.data)
    batch = extract_or_fail(
        args, data.paths, model.feature_settings, model.min_frames, workers_of(args)
    )
    songs = data.subset(batch.kept)
    features = batch.features
    held_out = None
    if args.test_size > 0:
        try:
            train_idx, test_idx = train_test_split(
                range(len(songs)),
                test_size=args.test_size,
                stratify=songs.labels,
                random_state=args.seed,
            )
        except ValueError as err:
            raise KcnnError(
                f"{args.data}: cannot hold out a stratified part ({err}); try --test-size 0"
            ) from err
        held_out = (subset(features, test_idx), [songs.labels[i] for i in test_idx])
        features, labels = subset(features, train_idx), [songs.labels[i] for i in train_idx]
    else:
        labels = songs.labels
    print(f"training on {len(features)} songs, {len(set(labels))} labels")
    final = None
    if held_out is not None and not args.no_refit and available_cores() > 1:
        final = FinalFit(  # fitted beside the held-out model, see kcnn.refit
            model.config,
            args.seed,
            args.device,
            batch.features,
            songs.labels,
            args.threads or TRAINING_THREADS,
            args.max_duration * 60,
        )
    with final or contextlib.nullcontext():
        model.fit(features, labels, after_epoch=final.gate.publish if final else None)
        if held_out is not None:
            for classifier in CLASSIFIERS:
                report = score(held_out[1], model.predict(held_out[0], classifier), model.classes)
                print(f"held-out ({classifier}): ", end="")
                print(
                    format_score(report)
                    if classifier == DEFAULT_CLASSIFIER
                    else f"accuracy: {report['accuracy']:.3f}\n"
                )
            if not args.no_refit:
                model = refit(args, model, batch.features, songs.labels, final)
    model.save(args.out)
    print(
        f"model written to {args.out}: fitted on {model.n_songs} songs"
        + (" (the held-out part not included)" if held_out and args.no_refit else "")
    )
    report_skipped(batch)
    return 0

"""`kcnn train DATA --out MODEL`: learn words, KCNN and SVM; report held-out accuracy, then
fit the model written on every song given."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sklearn.model_selection import train_test_split

from kcnn.cli.common import (
    add_cache_options,
    add_device_option,
    add_duration_option,
    add_feature_options,
    add_quiet_option,
    add_worker_options,
    extract_or_fail,
    feature_settings,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    report_skipped,
    workers_of,
)
from kcnn.dataset import read_labelled
from kcnn.errors import KcnnError
from kcnn.evaluation import format_score, score
from kcnn.extraction import FeatureExtractor, Features, subset
from kcnn.model import CLASSIFIERS, MODEL, MusicModel, make_pipeline
from kcnn.svm import SVMClassifier
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train", help="train a model on a labelled collection", description=__doc__
    )
    p.add_argument(
        "data", type=Path, help="folder with one sub-folder per label, or CSV path,label"
    )
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
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
    p.set_defaults(run=run)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The model settings, with the documented defaults."""
    d_words, d_net = AudioWords(), KCNNClassifier()
    add_feature_options(p)
    p.add_argument(
        "--segment-frames",
        type=positive_int,
        default=d_words.segment_frames,
        help="frames per audio word",
    )
    p.add_argument(
        "--components",
        type=positive_int,
        default=d_words.n_components,
        help="PCA-whitened dimensions",
    )
    p.add_argument(
        "--words", type=positive_int, default=d_words.n_words, help="codebook size per feature type"
    )
    p.add_argument("--k", type=positive_int, default=d_net.k, help="k of k-max pooling")
    p.add_argument(
        "--conv-units",
        type=positive_int,
        nargs="+",
        default=list(d_net.conv_units),
        help="units per convolution layer",
    )
    p.add_argument(
        "--hidden-units",
        type=positive_int,
        nargs="+",
        default=list(d_net.hidden_units),
        help="units per sigmoid layer",
    )
    p.add_argument("--epochs", type=positive_int, default=d_net.epochs, help="training epochs")
    p.add_argument(
        "--learning-rate",
        type=positive_float,
        default=d_net.learning_rate,
        help="SGD learning rate",
    )
    p.add_argument(
        "--lookup-learning-rate",
        type=non_negative_float,
        default=d_net.lookup_learning_rate,
        help="SGD learning rate of the lookup tables",
    )
    p.add_argument(
        "--freeze-lookup", action="store_true", help="keep the lookup tables at the centroids (ULT)"
    )
    p.add_argument(
        "--dynamic-k",
        action="store_true",
        help="k-max pooling after every lower convolution, k by song length",
    )
    p.add_argument(
        "--dropout", type=fraction, default=d_net.dropout, help="dropout rate of the hidden layers"
    )
    p.add_argument(
        "--crop-words",
        type=positive_int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(d_net.crop_words),
        help="lengths (audio words) of the random crops of songs trained on",
    )
    p.add_argument(
        "--crops-per-song",
        type=positive_int,
        default=d_net.crops_per_song,
        help="random crops of every song per epoch",
    )
    p.add_argument(
        "--patience",
        type=positive_int,
        default=d_net.patience,
        help="stop after this many epochs without a better validation loss",
    )
    p.add_argument(
        "--validation-fraction",
        type=fraction,
        default=d_net.validation_fraction,
        help="part of the training songs held out for early stopping (0: none)",
    )
    p.add_argument("--svm-c", type=positive_float, default=10.0, help="C of the RBF SVM")


def build_model(args: argparse.Namespace) -> MusicModel:
    """A model with the settings given on the command line."""
    words = AudioWords(
        segment_frames=args.segment_frames,
        n_components=args.components,
        n_words=args.words,
        random_state=args.seed,
    )
    kcnn = KCNNClassifier(
        k=args.k,
        conv_units=tuple(args.conv_units),
        hidden_units=tuple(args.hidden_units),
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        lookup_learning_rate=args.lookup_learning_rate,
        freeze_embeddings=args.freeze_lookup,
        dynamic_k=args.dynamic_k,
        dropout=args.dropout,
        crop_words=tuple(args.crop_words),
        crops_per_song=args.crops_per_song,
        patience=args.patience,
        validation_fraction=args.validation_fraction,
        random_state=args.seed,
        progress=not args.quiet,
        device=args.device,
    )
    fs = feature_settings(args)
    features = FeatureExtractor.from_settings(
        fs, min_frames=args.segment_frames, max_duration=args.max_duration * 60
    )
    return MusicModel(
        make_pipeline(features, words, kcnn, SVMClassifier(C=args.svm_c, random_state=args.seed))
    )


def refit(
    args: argparse.Namespace,
    model: MusicModel,
    features: Sequence[Features],
    labels: Sequence[str],
) -> MusicModel:
    """The final model: fitted on every song, for as many epochs as early stopping chose
    for `model` (no song held out for validation)."""
    epochs = model.pipeline.named_steps["kcnn"].best_epoch_ + 1
    print(f"fitting the final model on all {len(labels)} songs, {epochs} epochs")
    final = build_model(args)
    final.pipeline.set_params(kcnn__epochs=epochs, kcnn__validation_fraction=0.0)
    return final.fit(features, labels)


def run(args: argparse.Namespace) -> int:
    MODEL.check(args.out)
    data = read_labelled(args.data)
    model = build_model(args)
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
    model.fit(features, labels)
    if held_out is not None:
        for classifier in CLASSIFIERS:
            report = score(held_out[1], model.predict(held_out[0], classifier), model.classes)
            print(f"held-out ({classifier}): ", end="")
            print(
                format_score(report)
                if classifier == "svm"
                else f"accuracy: {report['accuracy']:.3f}\n"
            )
        if not args.no_refit:
            model = refit(args, model, batch.features, songs.labels)
    model.save(args.out)
    print(
        f"model written to {args.out}: fitted on {model.n_songs} songs"
        + (" (the held-out part not included)" if held_out and args.no_refit else "")
    )
    report_skipped(batch)
    return 0

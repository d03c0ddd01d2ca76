"""Similarity search on gtzan-mini: do a song's 5 nearest neighbours share its genre?

KCNN representations against MFCC statistics, both searched through kcnn's index (cosine
of vectors standardised per dimension over the indexed songs), and the plain cosine of
the raw KCNN representations. The index's speed at scale is measured by
benchmarks/index_scale.py.

    python benchmarks/similarity.py [--data DIR] [--splits DIR] [--seeds 3] [--epochs 60]

Splits: "clips 0-6 | 7-9" trains on clips 0-6 of every genre (70 clips) and queries clips
7-9 (30). "fault-filtered" trains on the gtzan-mini clips of the artist-disjoint train
list of Kereliuk, Sturm and Larsen (38 clips of 7 genres) and queries those of its valid
and test lists (55 clips of 9 genres, 3 of them never seen in training). Neighbours are
searched among the queried clips ("held-out") or among all clips ("all"), the query
excluded. The KCNN (default settings, paper 4.3; the SVM is not needed) is trained once
per seed; MFCC statistics learn nothing. Chance is the expected fraction for neighbours
drawn at random. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kcnn.baseline import MFCCStatistics
from kcnn.cache import FeatureCache, default_cache_dir
from kcnn.config import KCNNSettings, ModelConfig
from kcnn.extraction import Features, extract_batch
from kcnn.features import FeatureSettings
from kcnn.index import Song, SongIndex, unit_rows
from kcnn.model import MusicModel, make_pipeline

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
K = 5


def splits(clips: Sequence[Path], lists: Path) -> dict[str, tuple[list[int], list[int]]]:
    """Split name -> (training clips, queried clips), as positions in `clips`."""
    number = [int(c.stem.split(".")[1]) for c in clips]
    listed = {
        part: set((lists / f"{part}_filtered.txt").read_text().split())
        for part in ("train", "valid", "test")
    }
    keys = [f"{c.parent.name}/{c.name}" for c in clips]
    held_out = listed["valid"] | listed["test"]
    return {
        "clips 0-6 | 7-9": (
            [i for i, n in enumerate(number) if n <= 6],
            [i for i, n in enumerate(number) if n >= 7],
        ),
        "fault-filtered": (
            [i for i, k in enumerate(keys) if k in listed["train"]],
            [i for i, k in enumerate(keys) if k in held_out],
        ),
    }


def features(
    paths: Sequence[Path], settings: FeatureSettings, min_frames: int
) -> Sequence[Features]:
    """Frame features of every clip (cached as kcnn caches them); stops if one is unusable."""
    cache = FeatureCache(default_cache_dir(), settings)
    batch = extract_batch(paths, settings, min_frames, cache, progress=False)
    if batch.skipped:
        raise SystemExit(f"unusable clips: {batch.skipped}")
    return batch.features


def genre(path: Path) -> str:
    return path.parent.name


def song_index(clips: Sequence[Path], vectors: np.ndarray) -> SongIndex:
    """kcnn's index of `clips`, labelled by folder, with their vectors (n, dim)."""
    index = SongIndex(vectors.shape[1], "benchmark", "benchmark")
    index.add([Song.of(c, genre(c)) for c in clips], vectors)
    return index


def agreement(index: SongIndex, rows: Sequence[int]) -> float:
    """Mean fraction of the K nearest neighbours of `rows` that share their label."""
    found = index.search(index.vectors[list(rows)], K, exclude=rows)
    return float(
        np.mean(
            [
                np.mean([n.label == index.labels[r] for n in hits])
                for r, hits in zip(rows, found, strict=True)
            ]
        )
    )


def plain_agreement(vectors: np.ndarray, labels: Sequence[str], rows: Sequence[int]) -> float:
    """As `agreement`, by the plain cosine of the vectors (no standardisation)."""
    unit = unit_rows(vectors)
    labels = np.asarray(labels)
    fractions = []
    for r in rows:
        similarity = unit @ unit[r]
        similarity[r] = -np.inf
        fractions.append(np.mean(labels[np.argsort(-similarity)[:K]] == labels[r]))
    return float(np.mean(fractions))


def chance(labels: Sequence[str], rows: Sequence[int]) -> float:
    labels = np.asarray(labels)
    return float(np.mean([(np.sum(labels == labels[r]) - 1) / (len(labels) - 1) for r in rows]))


def train_kcnn(paths: Sequence[Path], seed: int, epochs: int) -> MusicModel:
    """Words and KCNN (the representation) fitted on `paths`, labelled by folder."""
    config = ModelConfig(kcnn=KCNNSettings(epochs=epochs))
    model = MusicModel(make_pipeline(config, seed))
    songs = features(paths, model.feature_settings, model.min_frames)
    model.pipeline[1:-1].fit(songs, [genre(p) for p in paths])
    return model


COLUMNS = ("KCNN (index)", "KCNN, plain cosine", "MFCC statistics (index)", "chance")


def neighbour_table(args: argparse.Namespace) -> None:
    """Print the genre agreement of the K nearest neighbours, per split and searched set."""
    clips = sorted(args.data.glob("*/*.wav"))
    labels = [genre(c) for c in clips]
    mfcc = MFCCStatistics().transform(features(clips, FeatureSettings(types=("mfcc",)), 1))
    print(f"## Mean fraction of the {K} nearest neighbours that share the query's genre\n")
    print(f"KCNN: mean ± std over {args.seeds} seeds (0, 1, ...), {args.epochs} epochs.\n")
    print(f"| split | searched | queries | {' | '.join(COLUMNS)} |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (train, queried) in splits(clips, args.splits).items():
        searches = {"held-out": queried, "all": list(range(len(clips)))}
        kcnn: dict[str, list[float]] = {where: [] for where in searches}
        plain: dict[str, list[float]] = {where: [] for where in searches}
        for seed in range(args.seeds):
            started = time.perf_counter()
            model = train_kcnn([clips[i] for i in train], seed, args.epochs)
            vectors = model.embed(features(clips, model.feature_settings, model.min_frames))
            for where, members in searches.items():
                rows = [members.index(q) for q in queried]
                index = song_index([clips[m] for m in members], vectors[members])
                kcnn[where].append(agreement(index, rows))
                plain[where].append(plain_agreement(vectors[members], index.labels, rows))
            seconds = time.perf_counter() - started
            print(f"<!-- {name}, seed {seed}: {seconds:.0f} s -->", flush=True)
        for where, members in searches.items():
            rows = [members.index(q) for q in queried]
            index = song_index([clips[m] for m in members], mfcc[members])
            cells = [
                f"{np.mean(kcnn[where]):.3f} ± {np.std(kcnn[where]):.3f}",
                f"{np.mean(plain[where]):.3f} ± {np.std(plain[where]):.3f}",
                f"{agreement(index, rows):.3f}",
                f"{chance([labels[m] for m in members], rows):.3f}",
            ]
            print(
                f"| {name} (train {len(train)}) | {where} ({len(members)}) | {len(rows)} "
                f"| {' | '.join(cells)} |"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=SHARED / "gtzan-mini", help="gtzan-mini folder"
    )
    parser.add_argument(
        "--splits", type=Path, default=SHARED / "gtzan-splits", help="folder of *_filtered.txt"
    )
    parser.add_argument("--seeds", type=int, default=3, help="KCNN trainings per split (default 3)")
    parser.add_argument("--epochs", type=int, default=KCNNSettings.epochs, help="KCNN epochs")
    args = parser.parse_args(argv)
    neighbour_table(args)


if __name__ == "__main__":
    main()

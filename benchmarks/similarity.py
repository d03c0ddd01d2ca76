"""Similarity search on gtzan-mini: do a song's 5 nearest neighbours share its genre?

KCNN representations against MFCC statistics, both searched through kcnn's index (cosine
of vectors standardised per dimension over the indexed songs), and the plain cosine of
the raw KCNN representations. Then the index's build time, query latency and recall@10
(against exact search) for 100 and 100,000 random vectors of the representations' size
(300): uniform in (0, 1), which have no neighbourhood structure, and sigmoids of Gaussian
clusters, which have some, as representations do.

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
from kcnn.extraction import Features, extract_batch
from kcnn.features import FeatureSettings
from kcnn.index import Song, SongIndex, unit_rows
from kcnn.model import MusicModel, make_pipeline
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
K = 5
DIM = 300


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


def features(paths: Sequence[Path], settings: FeatureSettings, min_frames: int) -> list[Features]:
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
    model = MusicModel(
        make_pipeline(
            words=AudioWords(random_state=seed),
            kcnn=KCNNClassifier(epochs=epochs, random_state=seed),
        )
    )
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


def random_vectors(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random vectors (n, DIM) in (0, 1): uniform, or sigmoids of 2,000 Gaussian clusters."""
    if kind == "uniform":
        return rng.random((n, DIM), dtype=np.float32)
    centres = rng.normal(0, 2, (2000, DIM))
    logits = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 1, (n, DIM))
    return (1 / (1 + np.exp(-logits))).astype(np.float32)


def speed_table(sizes: Sequence[int], n_queries: int = 200) -> None:
    """Build time, single-query latency and recall@10 (against exact search) of the index."""
    rng = np.random.default_rng(0)
    print(f"\n## Index speed: random vectors of {DIM} dimensions, 10 neighbours a query\n")
    print("| vectors | kind | search | build s | query p50 ms | query p95 ms | recall@10 |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for kind in ("uniform", "clustered"):
        for n in sizes:
            both = random_vectors(kind, n + n_queries, rng)
            vectors, queries = both[:n], both[n:]
            exact_hits: list[set[int]] = []
            for search, limit in (("exact", n), ("HNSW", 0)):
                index = SongIndex(DIM, "benchmark", "benchmark")
                index.exact_limit = limit
                started = time.perf_counter()
                index.add([Song(f"random/{i}", None, 0, 0) for i in range(n)], vectors)
                index.search_index()
                build = time.perf_counter() - started
                latencies, hits = [], []
                for query in queries:
                    started = time.perf_counter()
                    found = index.search(query, 10)[0]
                    latencies.append(1000 * (time.perf_counter() - started))
                    hits.append({h.row for h in found})
                if search == "exact":
                    exact_hits = hits
                recall = np.mean(
                    [len(a & b) / len(a) for a, b in zip(exact_hits, hits, strict=True)]
                )
                p50, p95 = np.percentile(latencies, [50, 95])
                print(
                    f"| {n:,} | {kind} | {search} | {build:.2f} | {p50:.2f} | {p95:.2f} "
                    f"| {recall:.3f} |",
                    flush=True,
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
    parser.add_argument("--epochs", type=int, default=KCNNClassifier().epochs, help="KCNN epochs")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100, 100_000], help="index sizes to time"
    )
    parser.add_argument("--speed-only", action="store_true", help="only the index speed table")
    args = parser.parse_args(argv)
    if not args.speed_only:
        neighbour_table(args)
    speed_table(args.sizes)


if __name__ == "__main__":
    main()

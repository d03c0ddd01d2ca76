"""How the song index scales: build time, query latency and recall@10 for N random vectors.

N random vectors of the representations' size (300), a million by default, go into the
index kcnn makes for that many songs (exact search up to `EXACT_LIMIT` songs, an IVF index
above), saved as `kcnn index` saves it (the vectors are written, then read back
memory-mapped to build the search index), and loaded as `kcnn similar` loads it. It
answers single queries (k = 10) of other random vectors of the same kind, one at a time;
the exact search of the same vectors gives the true neighbours of every query (recall@10)
and its own latency on the first 100. The build time of kcnn's index is that of saving it
(writing the files, building and writing the search index, syncing them to disk); that of
exact search is that of its faiss index in memory. The map (t-SNE) that `kcnn index` also
makes is not part of this: the vectors are saved without one.

Vectors: "clustered" (default), sigmoids of 2,000 Gaussian clusters as in
benchmarks/similarity.py, which have neighbourhoods, as song representations do; or
"uniform" in (0, 1), which have none: there the nearest vectors are barely nearer than
any other, and no index finds them without reading most of the vectors.

    python benchmarks/index_scale.py [--n 1000000] [--queries 1000] [--kind clustered]
        [--threads 2] [--dir DIR]

Prints a markdown table; "peak memory" is the most this process has held so far (RSS,
including the pages of the memory-mapped vectors file).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from kcnn.index import CHUNK_ROWS, IVF_PROBES, Song, SongIndex, ivf_lists

DIM = 300
K = 10
EXACT_QUERIES = 100
CENTRES = 2_000


def random_vectors(kind: str, n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n random vectors (n, DIM), float32 in (0, 1), made CHUNK_ROWS rows at a time."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        m = min(CHUNK_ROWS, n - start)
        if kind == "uniform":
            out[start : start + m] = rng.random((m, DIM), dtype=np.float32)
        else:
            noise = rng.standard_normal((m, DIM), dtype=np.float32)
            logits = centres[rng.integers(0, len(centres), m)] + noise
            out[start : start + m] = 1 / (1 + np.exp(-logits))
    return out


def single_queries(index: SongIndex, queries: np.ndarray) -> tuple[np.ndarray, list[set[int]]]:
    """Latency (ms) of each query asked alone, and the rows found."""
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = index.search(query, K)[0]
        latencies.append(1000 * (time.perf_counter() - started))
        found.append({hit.row for hit in hits})
    return np.asarray(latencies), found


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def row(search: str, n: int, build: str, load: str, latencies: np.ndarray, recall: float) -> str:
    p50, p99 = np.percentile(latencies, [50, 99])
    return (
        f"| {search} | {n:,} | {build} | {load} | {p50:.2f} | {p99:.2f} | {recall:.3f} "
        f"| {peak_gib():.1f} |"
    )


def measure(args: argparse.Namespace, work: Path) -> list[str]:
    """The table's rows: the index kcnn makes for args.n vectors, then exact search."""
    n = args.n
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 2, (CENTRES, DIM)).astype(np.float32)
    queries = random_vectors(args.kind, args.queries, centres, rng)
    songs = [Song(f"random/{i}", None, 0, 0) for i in range(n)]
    index = SongIndex(DIM, "random", "random")
    index.add(songs, random_vectors(args.kind, n, centres, rng))
    index.positions = np.full((n, 2), 0.5, dtype=np.float32)
    started = time.perf_counter()
    index.save(work / "random.index")
    build = time.perf_counter() - started
    del index
    started = time.perf_counter()
    index = SongIndex.load(work / "random.index")
    index.search(queries[0], K)  # the standardisation's statistics, once
    load = time.perf_counter() - started
    latencies, found = single_queries(index, queries)
    search = f"IVF, {ivf_lists(n):,} lists, {IVF_PROBES} read" if n > index.exact_limit else "exact"
    del index

    exact = SongIndex(DIM, "random", "random")
    exact.exact_limit = n
    exact.add(songs, np.load(work / "random.index" / "vectors.npy", mmap_mode="r"))
    started = time.perf_counter()
    exact.search_index()
    exact_build = time.perf_counter() - started
    truth = [{hit.row for hit in hits} for hits in exact.search(queries, K)]
    recall = float(np.mean([len(a & b) / K for a, b in zip(found, truth, strict=True)]))
    approximate = row(search, n, f"{build:.1f}", f"{load:.1f}", latencies, recall)
    exact_latencies, _ = single_queries(exact, queries[:EXACT_QUERIES])
    return [approximate, row("exact", n, f"{exact_build:.1f}", "—", exact_latencies, 1.0)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors indexed (1,000,000)")
    parser.add_argument("--queries", type=int, default=1_000, help="queries (1,000)")
    parser.add_argument("--kind", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--threads", type=int, default=2, help="threads of faiss and BLAS (2)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    print(
        f"\n## Song index: {args.n:,} {args.kind} random vectors of {DIM} dimensions, "
        f"{args.queries:,} single queries of {K} neighbours, {args.threads} threads\n"
    )
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory(dir=args.dir) as work:
        rows = measure(args, Path(work))
    print(
        "| search | vectors | build (s) | load (s) | query median (ms) "
        "| query p99 (ms) | recall@10 | peak memory (GiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

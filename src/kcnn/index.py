"""A song index: paths, labels and representations of a collection, searched by cosine similarity.

An index is a folder:

- `index.json`: format version, the model that made the vectors (path and fingerprint),
  and one entry per song (absolute path, label or null, file size and modification time);
- `vectors.npy`: the representations, float32 (n_songs, dim), row i for song i;
- `positions.npy`: the songs' places on the collection map, float32 (n_songs, 2) in the
  unit square (see `SongIndex.map_positions`);
- `ivf.faiss`: only above `EXACT_LIMIT` songs, the faiss IVF index of the vectors.

Similarity is the cosine of two standardised representations: each unit (column) is
shifted and scaled by its mean and standard deviation over the indexed songs, so that
units which vary little across the collection do not swamp those that tell songs apart
(it is a correlation of the two songs' unit activations). The statistics follow the
collection: adding songs moves them a little. Up to `EXACT_LIMIT` songs the search is exact
(faiss IndexFlatIP on unit-length vectors); above, it is approximate: an inverted file
(faiss IndexIVFFlat) of about 2 sqrt(n) k-means lists, of which a query reads the
`IVF_PROBES` nearest. The search index is built from the vectors `CHUNK_ROWS` rows at a
time, read from the memory-mapped `vectors.npy` of a saved index, so that building it
makes no copy of them beyond the one faiss keeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from kcnn import __version__
from kcnn.atomic import OutputKind, atomic_directory, json_marker, restore
from kcnn.errors import KcnnError, ModelError, damaged
from kcnn.maps import MAP_SONGS, PLACE_NEIGHBOURS, layout, place

FORMAT_VERSION = 1
INDEX = OutputKind("kcnn index", json_marker("index.json", "format_version"))
"""An index folder: index.json holds a format_version."""
SEARCH_FILE = "ivf.faiss"
EXACT_LIMIT = 50_000
"""Largest index searched exactly (about 8 ms a query on one core); a larger one is
searched through an IVF index, rebuilt whenever songs are added (the standardisation moves
every vector): about 2 minutes for a million songs on 2 cores (benchmarks/index_scale.py)."""
IVF_PROBES = 32
"""Lists of an IVF index that a query reads."""
TRAINING_ROWS_PER_LIST = 64
"""Vectors drawn to train each IVF list's k-means centroid (faiss wants at least 39)."""
CHUNK_ROWS = 16_384
"""Vectors read, standardised or added to faiss at a time."""
MIN_SCALE = 1e-2
"""Floor of a unit's standard deviation, so that a unit constant over the collection is
not blown up; in the units of the vectors (sigmoid activations in (0, 1) for kcnn's)."""
MODEL_FILES = ("settings.json", "codebook.npz", "network.safetensors")
"""The files of a model folder that determine its representations (the SVM does not)."""


def model_fingerprint(model_dir: str | Path) -> str:
    """SHA-256 (hex) of the model files that determine the representations."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        file = Path(model_dir) / name
        try:
            data = file.read_bytes()
        except OSError as err:
            raise ModelError(f"{model_dir}: not a kcnn model ({name}: {err.strerror})") from err
        digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()


def ivf_lists(n: int) -> int:
    """Lists of the IVF index of `n` vectors: about 2 sqrt(n), each trained on
    TRAINING_ROWS_PER_LIST vectors."""
    return max(1, min(round(2 * math.sqrt(n)), n // TRAINING_ROWS_PER_LIST))


def unit_statistics(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (float64, (dim,)) of each column of `vectors` (n >= 1,
    dim), read CHUNK_ROWS rows at a time; the chunks' partial sums of squared deviations
    are merged as in Chan, Golub and LeVeque's pairwise algorithm."""
    count, mean, squares = 0, np.zeros(vectors.shape[1]), np.zeros(vectors.shape[1])
    for start in range(0, len(vectors), CHUNK_ROWS):
        block = np.asarray(vectors[start : start + CHUNK_ROWS], dtype=np.float64)
        block_mean = block.mean(axis=0)
        total = count + len(block)
        delta = block_mean - mean
        squares += ((block - block_mean) ** 2).sum(axis=0) + delta**2 * count * len(block) / total
        mean += delta * len(block) / total
        count = total
    return mean, np.sqrt(squares / count)


@contextlib.contextmanager
def _faiss_threads(n: int) -> Iterator[None]:
    """Let faiss use at most `n` threads (and at least one) in this block, in this thread.

    faiss shares a search out by query: the other threads of a single query only wait,
    and on a busy machine waking them costs more than the search (tenfold, measured).
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, min(n, before)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32 copy); an all-zero row stays zero."""
    out = np.array(vectors, dtype=np.float32, order="C")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class Song:
    """One indexed file: absolute path, label (None if unknown), size (bytes), mtime (ns)."""

    path: str
    label: str | None
    size: int
    mtime_ns: int

    def well_typed(self) -> bool:
        """True if every field has its type (as when read from an index file)."""
        return (
            isinstance(self.path, str)
            and isinstance(self.label, str | None)
            and all(type(n) is int for n in (self.size, self.mtime_ns))
        )

    @classmethod
    def of(cls, path: str | Path, label: str | None) -> Song:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        return cls(str(resolved), label, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Neighbour:
    """A song found by a search: its row in the index, path, label and cosine similarity."""

    row: int
    path: str
    label: str | None
    similarity: float


class SongIndex:
    """Songs with their representations, answering "which songs are most like this one?".

    model_path, model_id: the model folder whose representations the vectors are, and its
    `model_fingerprint`. exact_limit: the most songs searched exactly; more are searched
    through an IVF index. `vectors` (n_songs, dim) is an array in memory, or memory-mapped
    from the index's file once loaded or saved.
    """

    def __init__(self, dim: int, model_path: str, model_id: str) -> None:
        self.dim = dim
        self.model_path = model_path
        self.model_id = model_id
        self.songs: list[Song] = []
        self.vectors = np.empty((0, dim), dtype=np.float32)
        self.positions: np.ndarray | None = None
        self.exact_limit = EXACT_LIMIT
        self._rows: dict[str, int] = {}
        self._search_index: faiss.Index | None = None
        self._statistics: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.songs)

    @property
    def labels(self) -> list[str | None]:
        return [song.label for song in self.songs]

    def row_of(self, path: str | Path) -> int | None:
        """The row of the file at `path`, or None if it is not indexed."""
        return self._rows.get(str(Path(path).resolve()))

    def is_current(self, path: str | Path) -> bool:
        """True if `path` is indexed and the file is there, unchanged (size and mtime)."""
        row = self.row_of(path)
        if row is None:
            return False
        try:
            now = Song.of(path, None)
        except OSError:
            return False
        known = self.songs[row]
        return (known.size, known.mtime_ns) == (now.size, now.mtime_ns)

    def check_model(self, model_dir: str | Path) -> None:
        """Raise KcnnError unless the model at `model_dir` made this index's vectors."""
        if model_fingerprint(model_dir) != self.model_id:
            raise KcnnError(
                f"{model_dir}: not the model this index was built with ({self.model_path}); "
                "its representations are not comparable: build a new index with this model"
            )

    def add(self, songs: Sequence[Song], vectors: np.ndarray) -> None:
        """Add songs with their vectors (n, dim); a path already indexed gets the new entry.

        The vectors are then held in memory (float32), until the index is saved.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(songs), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(songs)}, {self.dim}), got {vectors.shape}"
            )
        n_before, rows = len(self.songs), []
        for song in songs:
            row = self._rows.setdefault(song.path, len(self.songs))
            if row == len(self.songs):
                self.songs.append(song)
            else:
                self.songs[row] = song
            rows.append(row)
        updated = np.empty((len(self.songs), self.dim), dtype=np.float32)
        updated[:n_before] = self.vectors
        updated[rows] = vectors  # the last of a path given twice wins
        self.vectors = updated
        self.positions = None
        self._search_index = None
        self._statistics = None

    def comparable(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors (m, dim) as the index compares them: standardised per unit, unit length
        (float32, made CHUNK_ROWS rows at a time)."""
        if self._statistics is None:
            if len(self):
                mean, scale = unit_statistics(self.vectors)
            else:
                mean, scale = np.zeros(self.dim), np.ones(self.dim)
            self._statistics = (mean, np.maximum(scale, MIN_SCALE))
        mean, scale = self._statistics
        vectors = np.atleast_2d(vectors)
        out = np.empty(vectors.shape, dtype=np.float32)
        for start in range(0, len(vectors), CHUNK_ROWS):
            block = vectors[start : start + CHUNK_ROWS]
            out[start : start + len(block)] = unit_rows((block - mean) / scale)
        return out

    def search(
        self, queries: np.ndarray, n: int, exclude: Sequence[int | None] | None = None
    ) -> list[list[Neighbour]]:
        """The `n` songs most similar to each query (m, dim), best first.

        exclude: per query, a row never to return (the query's own entry), or None.
        """
        queries = self.comparable(queries)
        exclude = list(exclude) if exclude is not None else [None] * len(queries)
        if len(exclude) != len(queries):
            raise ValueError(f"{len(queries)} queries but {len(exclude)} exclusions")
        if not len(self) or n < 1:
            return [[] for _ in queries]
        wanted = min(n + any(row is not None for row in exclude), len(self))
        index = self.search_index()
        with _faiss_threads(len(queries)):
            similarities, rows = index.search(queries, wanted)
        results = []
        for own, sims, found in zip(exclude, similarities, rows, strict=True):
            hits = [(int(r), float(s)) for r, s in zip(found, sims, strict=True) if r >= 0]
            hits = [(r, s) for r, s in hits if r != own][:n]
            results.append(
                [Neighbour(r, self.songs[r].path, self.songs[r].label, s) for r, s in hits]
            )
        return results

    def search_index(self) -> faiss.Index:
        """The faiss index of the `comparable` vectors (inner product = cosine), built once:
        exact up to `exact_limit` songs, IVF above (see the module docstring)."""
        if self._search_index is None:
            n = len(self)
            if n > self.exact_limit:
                lists = ivf_lists(n)
                quantiser = faiss.IndexFlatIP(self.dim)
                index = faiss.IndexIVFFlat(quantiser, self.dim, lists, faiss.METRIC_INNER_PRODUCT)
                drawn = np.random.default_rng(0).choice(
                    n, min(n, lists * TRAINING_ROWS_PER_LIST), replace=False
                )
                index.train(self.comparable(self.vectors[np.sort(drawn)]))
            else:
                index = faiss.IndexFlatIP(self.dim)
            for start in range(0, n, CHUNK_ROWS):
                index.add(self.comparable(self.vectors[start : start + CHUNK_ROWS]))
            self._search_index = index
        if isinstance(self._search_index, faiss.IndexIVFFlat):
            self._search_index.nprobe = IVF_PROBES
        return self._search_index

    def map_positions(self, seed: int = 0) -> np.ndarray:
        """The songs' places on the collection map, float32 (n_songs, 2) in the unit square:
        a t-SNE layout (`kcnn.maps.layout`) of the `comparable` vectors of up to `MAP_SONGS`
        songs drawn at random, and every other song placed (`kcnn.maps.place`) among its
        `PLACE_NEIGHBOURS` most similar drawn songs, `CHUNK_ROWS` songs at a time."""
        n = len(self)
        if n <= MAP_SONGS:
            return layout(self.comparable(self.vectors), seed)
        drawn = np.sort(np.random.default_rng(seed).choice(n, MAP_SONGS, replace=False))
        anchors = self.comparable(self.vectors[drawn])
        laid_out = layout(anchors, seed)
        nearest = faiss.IndexFlatIP(self.dim)
        nearest.add(anchors)
        positions = np.empty((n, 2), dtype=np.float32)
        positions[drawn] = laid_out
        rest = np.setdiff1d(np.arange(n), drawn)
        for start in range(0, len(rest), CHUNK_ROWS):
            rows = rest[start : start + CHUNK_ROWS]
            similarities, near = nearest.search(
                self.comparable(self.vectors[rows]), PLACE_NEIGHBOURS
            )
            positions[rows] = place(laid_out, near, similarities)
        return positions

    def save(self, path: str | Path) -> None:
        """Write the index folder atomically, laying out the map first if songs changed.

        The vectors are then read from the written file (memory-mapped), also to build the
        IVF index of a large collection. Refuses (KcnnError) to replace anything at `path`
        but an index (`INDEX.check`).
        """
        if self.positions is None:
            self.positions = self.map_positions()
        meta = {
            "format_version": FORMAT_VERSION,
            "kcnn_version": __version__,
            "model": {"path": self.model_path, "fingerprint": self.model_id},
            "dim": self.dim,
            "songs": [vars(song) for song in self.songs],  # 5x faster than asdict
        }
        with atomic_directory(path, INDEX) as tmp:
            # no indent: json's C encoder, 7x faster for a million songs
            (tmp / "index.json").write_text(json.dumps(meta), encoding="utf-8")
            np.save(tmp / "vectors.npy", self.vectors)
            np.save(tmp / "positions.npy", self.positions.astype(np.float32))
            self.vectors = np.load(tmp / "vectors.npy", mmap_mode="r")
            if len(self) > self.exact_limit:
                faiss.write_index(self.search_index(), str(tmp / SEARCH_FILE))

    @classmethod
    def load(cls, path: str | Path) -> SongIndex:
        """Read an index folder written by `save`; raises a one-line KcnnError if it cannot."""
        path = Path(path)
        restore(path)
        meta_file = path / "index.json"
        if not meta_file.is_file():
            raise KcnnError(
                f"{path}: not a kcnn index (no index.json); build one with 'kcnn index'"
            )
        with damaged(meta_file):
            meta = json.loads(meta_file.read_bytes().decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        if meta.get("format_version") != FORMAT_VERSION:
            raise KcnnError(
                f"{path}: index format {meta.get('format_version')!r} "
                f"(kcnn {meta.get('kcnn_version', '?')}); this kcnn reads format "
                f"{FORMAT_VERSION}: rebuild the index"
            )
        with damaged(meta_file):
            model, dim = meta["model"], meta["dim"]
            if not (isinstance(dim, int) and dim > 0 and isinstance(model, dict)):
                raise ValueError("no dimension or model")
            index = cls(dim, str(model["path"]), str(model["fingerprint"]))
            index.songs = [Song(**song) for song in meta["songs"]]
            if not all(song.well_typed() for song in index.songs):
                raise ValueError("songs with fields of the wrong type")
        index._rows = {song.path: row for row, song in enumerate(index.songs)}
        if len(index._rows) != len(index.songs):
            raise KcnnError(f"{meta_file}: damaged (a song listed twice)")
        n = len(index.songs)
        index.vectors = _load_array(path / "vectors.npy", (n, dim), memory_map=True)
        index.positions = _load_array(path / "positions.npy", (n, 2))
        search_file = path / SEARCH_FILE
        if search_file.is_file():
            index._search_index = _load_ivf(search_file, n, dim)
        return index


def _load_array(file: Path, shape: tuple[int, int], memory_map: bool = False) -> np.ndarray:
    """The float array in the .npy `file` (memory-mapped, read-only, if `memory_map`),
    checked CHUNK_ROWS rows at a time to be finite, and to be of `shape`."""
    with damaged(file):
        array = np.load(file, allow_pickle=False, mmap_mode="r" if memory_map else None)
        if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{array.dtype} array of shape {array.shape}, expected {shape}")
        for start in range(0, len(array), CHUNK_ROWS):
            if not np.isfinite(array[start : start + CHUNK_ROWS]).all():
                raise ValueError("values that are not finite (NaN or inf)")
    return array


def _load_ivf(file: Path, n: int, dim: int) -> faiss.IndexIVFFlat:
    """The IVF index in `file`, checked to hold the `n` vectors of `dim` dimensions."""
    with damaged(file):
        index = faiss.read_index(str(file))
        if not (
            isinstance(index, faiss.IndexIVFFlat)
            and index.metric_type == faiss.METRIC_INNER_PRODUCT
        ):
            raise ValueError(f"a faiss {type(index).__name__}, not an IVF index of cosines")
        if (index.ntotal, index.d) != (n, dim):
            raise ValueError(f"{index.ntotal} vectors of {index.d} dimensions, not {n} of {dim}")
    return index

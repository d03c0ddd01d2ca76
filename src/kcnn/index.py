"""A song index: paths, labels and representations of a collection, searched by cosine similarity.

An index is a folder:

- `index.json`: format version, the model that made the vectors (path and fingerprint),
  and one entry per song (absolute path, label or null, file size and modification time);
- `vectors.npy`: the representations, float32 (n_songs, dim), row i for song i;
- `positions.npy`: the songs' places on the collection map, float32 (n_songs, 2) in the
  unit square (see `kcnn.maps.layout`);
- `hnsw.faiss`: only above `EXACT_LIMIT` songs, the HNSW graph of the vectors.

Similarity is the cosine of two standardised representations: each unit (column) is
shifted and scaled by its mean and standard deviation over the indexed songs, so that
units which vary little across the collection do not swamp those that tell songs apart
(it is a correlation of the two songs' unit activations). The statistics follow the
collection: adding songs moves them a little. Up to `EXACT_LIMIT` songs the search is exact
(faiss IndexFlatIP on unit-length vectors); above, it is approximate (HNSW).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from kcnn import __version__
from kcnn.atomic import OutputKind, atomic_directory, json_marker, restore
from kcnn.errors import KcnnError, ModelError, damaged
from kcnn.maps import layout

FORMAT_VERSION = 1
INDEX = OutputKind("kcnn index", json_marker("index.json", "format_version"))
"""An index folder: index.json holds a format_version."""
EXACT_LIMIT = 100_000
"""Largest index searched exactly; a larger one is searched through an HNSW graph. Exact
search of 100,000 songs takes about 30 ms a query on 2 cores, while the graph, rebuilt
whenever songs are added (the standardisation moves every vector), takes minutes."""
HNSW_LINKS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
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
    through an HNSW graph.
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
        """Add songs with their vectors (n, dim); a path already indexed gets the new entry."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(songs), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(songs)}, {self.dim}), got {vectors.shape}"
            )
        new_rows = []
        for song, vector in zip(songs, vectors, strict=True):
            row = self._rows.get(song.path)
            if row is None:
                self._rows[song.path] = len(self.songs)
                new_rows.append(vector)
                self.songs.append(song)
            else:
                self.songs[row] = song
                self.vectors[row] = vector
        if new_rows:
            self.vectors = np.concatenate([self.vectors, np.stack(new_rows)])
        self.positions = None
        self._search_index = None
        self._statistics = None

    def comparable(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors (m, dim) as the index compares them: standardised per unit, unit length."""
        if self._statistics is None:
            mean = self.vectors.mean(axis=0, dtype=np.float64) if len(self) else np.zeros(self.dim)
            scale = self.vectors.std(axis=0, dtype=np.float64) if len(self) else np.ones(self.dim)
            self._statistics = (mean, np.maximum(scale, MIN_SCALE))
        mean, scale = self._statistics
        return unit_rows((np.atleast_2d(vectors) - mean) / scale)

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
        similarities, rows = self.search_index().search(queries, wanted)
        results = []
        for own, sims, found in zip(exclude, similarities, rows, strict=True):
            hits = [(int(r), float(s)) for r, s in zip(found, sims, strict=True) if r >= 0]
            hits = [(r, s) for r, s in hits if r != own][:n]
            results.append(
                [Neighbour(r, self.songs[r].path, self.songs[r].label, s) for r, s in hits]
            )
        return results

    def search_index(self) -> faiss.Index:
        """The faiss index of the `comparable` vectors (inner product = cosine), built once."""
        if self._search_index is None:
            vectors = self.comparable(self.vectors)
            if len(self) > self.exact_limit:
                index = faiss.IndexHNSWFlat(self.dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            else:
                index = faiss.IndexFlatIP(self.dim)
            index.add(vectors)
            self._search_index = index
        if isinstance(self._search_index, faiss.IndexHNSWFlat):
            self._search_index.hnsw.efSearch = HNSW_EF_SEARCH
        return self._search_index

    def save(self, path: str | Path) -> None:
        """Write the index folder atomically, laying out the map first if songs changed.

        Refuses (KcnnError) to replace anything at `path` but an index (`INDEX.check`).
        """
        if self.positions is None:
            self.positions = layout(self.comparable(self.vectors))
        meta = {
            "format_version": FORMAT_VERSION,
            "kcnn_version": __version__,
            "model": {"path": self.model_path, "fingerprint": self.model_id},
            "dim": self.dim,
            "songs": [asdict(song) for song in self.songs],
        }
        with atomic_directory(path, INDEX) as tmp:
            (tmp / "index.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            np.save(tmp / "vectors.npy", self.vectors)
            np.save(tmp / "positions.npy", self.positions.astype(np.float32))
            if len(self) > self.exact_limit:
                faiss.write_index(self.search_index(), str(tmp / "hnsw.faiss"))

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
        index.vectors = _load_array(path / "vectors.npy", (n, dim))
        index.positions = _load_array(path / "positions.npy", (n, 2))
        graph = path / "hnsw.faiss"
        if graph.is_file():
            with damaged(graph):
                index._search_index = faiss.read_index(str(graph))
                if index._search_index.ntotal != n or index._search_index.d != dim:
                    raise ValueError(f"a graph of another size than the {n} songs")
        return index


def _load_array(file: Path, shape: tuple[int, int]) -> np.ndarray:
    """The float array in the .npy `file`, checked to be finite and of `shape`."""
    with damaged(file):
        array = np.load(file, allow_pickle=False)
        if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{array.dtype} array of shape {array.shape}, expected {shape}")
        if not np.isfinite(array).all():
            raise ValueError("values that are not finite (NaN or inf)")
    return array

"""The song index, clustering and map layout on synthetic vectors (no model, no audio)."""

from __future__ import annotations

import itertools
import json

import faiss
import numpy as np
import pytest

import kcnn.index
from kcnn.clustering import agreement, cluster, default_clusters, purity
from kcnn.errors import KcnnError
from kcnn.index import (
    IVF_PROBES,
    SEARCH_FILE,
    Song,
    SongIndex,
    ivf_lists,
    model_fingerprint,
    unit_rows,
    unit_statistics,
)
from kcnn.maps import layout, map_data, place, write_html, write_png

DIM = 8


def make_files(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"song{i:03d}.wav" for i in range(n)]
    for path in paths:
        path.write_bytes(b"stand-in for audio")
    return paths


def blobs(n_per, centres, seed=0):
    """Vectors around `centres` (k, DIM), n_per each, with their blob number."""
    rng = np.random.default_rng(seed)
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(n_per, DIM)) for c in centres])
    return vectors.astype(np.float32), np.repeat(np.arange(len(centres)), n_per)


@pytest.fixture
def index(tmp_path):
    centres = np.eye(DIM)[:3] + 0.1
    vectors, blob = blobs(6, centres)
    paths = make_files(tmp_path / "songs", len(vectors))
    built = SongIndex(DIM, "model", "id")
    built.add([Song.of(p, f"genre{b}") for p, b in zip(paths, blob, strict=True)], vectors)
    return built, paths, vectors, blob


def test_search_finds_the_same_blob_by_cosine_and_excludes_the_query(index):
    songs, _, vectors, blob = index
    found = songs.search(vectors[:1], 5, exclude=[0])[0]
    assert [n.row for n in found] != [] and 0 not in [n.row for n in found]
    assert all(blob[n.row] == blob[0] for n in found)
    assert all(a.similarity >= b.similarity for a, b in itertools.pairwise(found))
    comparable = songs.comparable(vectors)
    assert found[0].similarity == pytest.approx(
        float(comparable[0] @ comparable[found[0].row]), abs=1e-5
    )
    # without exclusion the song is its own best match; asking for more than there is is fine
    assert songs.search(vectors[:1], 1)[0][0].row == 0
    assert len(songs.search(vectors[:1], 100, exclude=[0])[0]) == len(songs) - 1


def test_units_are_standardised_so_a_large_shared_unit_does_not_dominate(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(0, 0.1, size=(40, DIM)).astype(np.float32)
    vectors[:, 0] = 100.0  # the same large value in every song: no information
    vectors[:, 1] = 0.5  # constant too, below MIN_SCALE
    songs = SongIndex(DIM, "model", "id")
    songs.add([Song.of(path, None) for path in make_files(tmp_path, 40)], vectors)
    comparable = songs.comparable(vectors)
    assert np.all(np.isfinite(comparable)) and np.allclose(np.linalg.norm(comparable, axis=1), 1)
    best = songs.search(vectors[:1], 1, exclude=[0])[0][0]
    plain = unit_rows(vectors[:, 2:])
    assert best.row == int(np.argmax(np.delete(plain @ plain[0], 0))) + 1


def test_add_replaces_a_path_already_indexed(index):
    songs, paths, vectors, _ = index
    assert songs.is_current(paths[2])
    paths[2].write_bytes(b"another, longer stand-in for audio")
    assert not songs.is_current(paths[2])
    songs.add([Song.of(paths[2], "new")], np.ones((1, DIM)))
    assert len(songs) == len(vectors) and songs.is_current(paths[2])
    assert songs.labels[2] == "new" and np.all(songs.vectors[2] == 1)
    assert songs.row_of(paths[2].parent / ".." / "songs" / paths[2].name) == 2
    paths[3].unlink()
    assert not songs.is_current(paths[3]) and songs.row_of(paths[3]) == 3


def test_save_and_load_round_trip(index, tmp_path):
    songs, _, vectors, _ = index
    songs.save(tmp_path / "idx")
    again = SongIndex.load(tmp_path / "idx")
    assert np.array_equal(again.vectors, vectors)
    assert again.labels == songs.labels and again.positions.shape == (len(vectors), 2)
    assert again.positions.min() >= 0 and again.positions.max() <= 1
    assert [n.row for n in again.search(vectors[3:4], 4)[0]] == [
        n.row for n in songs.search(vectors[3:4], 4)[0]
    ]
    assert [p.name for p in tmp_path.glob(".idx*")] == [".idx.lock"], "temporaries left behind"


def random_index(n, dim=32, exact_limit=1_000, seed=0):
    """An index of `n` random Gaussian vectors, searched approximately above `exact_limit`."""
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    songs = SongIndex(dim, "model", "id")
    songs.exact_limit = exact_limit
    songs.add([Song(f"/music/{i}.wav", None, 0, 0) for i in range(n)], vectors)
    songs.positions = np.full((n, 2), 0.5, dtype=np.float32)  # saved without a t-SNE map
    return songs, vectors


def rows_found(songs, queries, n=10):
    return [{hit.row for hit in hits} for hits in songs.search(queries, n)]


def test_the_search_is_exact_up_to_the_limit_and_through_an_ivf_index_above(tmp_path):
    threads = faiss.omp_get_max_threads()
    exact, vectors = random_index(300, exact_limit=300)
    assert type(exact.search_index()) is faiss.IndexFlatIP
    exact.save(tmp_path / "exact")
    assert not (tmp_path / "exact" / SEARCH_FILE).exists()
    approximate, _ = random_index(301, exact_limit=300)
    assert type(approximate.search_index()) is faiss.IndexIVFFlat
    assert approximate.search_index().nlist == ivf_lists(301)
    found = rows_found(approximate, vectors[:20])
    approximate.save(tmp_path / "approximate")
    assert (tmp_path / "approximate" / SEARCH_FILE).is_file()
    again = SongIndex.load(tmp_path / "approximate")
    assert type(again.search_index()) is faiss.IndexIVFFlat
    assert again.search_index().nprobe == IVF_PROBES
    assert rows_found(again, vectors[:20]) == found
    assert all(q in rows for q, rows in enumerate(found)), "a song is its own nearest"
    assert faiss.omp_get_max_threads() == threads


def test_the_ivf_index_finds_most_true_neighbours_of_random_vectors():
    approximate, _ = random_index(4_000)
    exact, _ = random_index(4_000, exact_limit=4_000)
    queries = np.random.default_rng(1).normal(size=(200, 32)).astype(np.float32)
    pairs = zip(rows_found(approximate, queries), rows_found(exact, queries), strict=True)
    recall = np.mean([len(a & b) / len(b) for a, b in pairs])
    assert recall >= 0.9, recall


def test_vectors_are_read_from_the_saved_file_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(kcnn.index, "CHUNK_ROWS", 7)
    songs, vectors = random_index(300, dim=DIM, exact_limit=100)
    mean, std = unit_statistics(vectors)
    assert np.allclose(mean, vectors.mean(0, dtype=np.float64), rtol=0, atol=1e-12)
    assert np.allclose(std, vectors.std(0, dtype=np.float64), rtol=1e-12, atol=0)
    standardised = (vectors - mean) / np.maximum(std, kcnn.index.MIN_SCALE)
    assert np.allclose(songs.comparable(vectors), unit_rows(standardised), atol=1e-6)
    songs.save(tmp_path / "idx")
    assert isinstance(songs.vectors, np.memmap), "not read back from the written file"
    again = SongIndex.load(tmp_path / "idx")
    assert isinstance(again.vectors, np.memmap) and np.array_equal(again.vectors, vectors)
    assert again.search_index().ntotal == 300
    again.add([Song("/music/3.wav", "new", 0, 0)], np.ones((1, DIM)))
    assert np.all(again.vectors[3] == 1) and np.array_equal(again.vectors[4], vectors[4])
    assert np.array_equal(np.load(tmp_path / "idx" / "vectors.npy")[3], vectors[3])


def test_a_path_given_twice_in_one_batch_is_added_once_with_its_last_vector():
    songs = SongIndex(DIM, "model", "id")
    twice = [Song("/music/a.wav", None, 0, 0), Song("/music/a.wav", "rock", 1, 1)]
    songs.add(twice, np.stack([np.zeros(DIM), np.ones(DIM)]))
    assert len(songs) == 1 and songs.labels == ["rock"] and np.all(songs.vectors == 1)


def with_graph_of(change):
    """Tamper with a saved IVF index: replace it by what `change(index)` returns."""

    def tamper(folder):
        index = faiss.read_index(str(folder / SEARCH_FILE))
        faiss.write_index(change(index), str(folder / SEARCH_FILE))

    return tamper


def flat_instead(index):
    flat = faiss.IndexFlatIP(index.d)
    flat.add(np.zeros((index.ntotal, index.d), np.float32))
    return flat


def one_vector_less(index):
    index.remove_ids(np.array([0], dtype=np.int64))
    return index


DAMAGED_IVF = {
    "truncated": lambda f: (f / SEARCH_FILE).write_bytes((f / SEARCH_FILE).read_bytes()[:500]),
    "not faiss": lambda f: (f / SEARCH_FILE).write_bytes(b"\x00" * 64),
    "a flat index": with_graph_of(flat_instead),
    "a vector missing": with_graph_of(one_vector_less),
}


@pytest.mark.parametrize("case", DAMAGED_IVF)
def test_a_damaged_ivf_index_is_a_one_line_error_naming_the_file(tmp_path, case):
    random_index(150, exact_limit=100)[0].save(tmp_path / "idx")
    DAMAGED_IVF[case](tmp_path / "idx")
    with pytest.raises(KcnnError) as refused:
        SongIndex.load(tmp_path / "idx")
    message = str(refused.value)
    assert "\n" not in message and f"{tmp_path / 'idx' / SEARCH_FILE}: damaged" in message, message


def test_broken_or_foreign_indexes_are_refused_in_one_line(index, tmp_path):
    songs, *_ = index
    with pytest.raises(KcnnError, match="not a kcnn index"):
        SongIndex.load(tmp_path)
    songs.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    (tmp_path / "idx" / "index.json").write_text(json.dumps({**meta, "format_version": 7}))
    with pytest.raises(KcnnError, match="format 7"):
        SongIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").write_text(json.dumps(meta))
    np.save(tmp_path / "idx" / "vectors.npy", np.zeros((2, DIM), np.float32))
    with pytest.raises(KcnnError, match="damaged"):
        SongIndex.load(tmp_path / "idx")


def edit_meta(change):
    def tamper(folder):
        meta = json.loads((folder / "index.json").read_text())
        change(meta)
        (folder / "index.json").write_text(json.dumps(meta))

    return tamper


def with_nan(folder):
    vectors = np.load(folder / "vectors.npy")
    vectors[0, 0] = np.nan
    np.save(folder / "vectors.npy", vectors)


DAMAGED = {
    "index.json []": ("index.json", lambda f: (f / "index.json").write_text("[]")),
    "index.json not UTF-8": ("index.json", lambda f: (f / "index.json").write_bytes(b"\xff{")),
    "index.json dim '8'": ("index.json", edit_meta(lambda m: m.update(dim="8"))),
    "index.json songs null": ("index.json", edit_meta(lambda m: m.update(songs=None))),
    "index.json size '5'": ("index.json", edit_meta(lambda m: m["songs"][0].update(size="5"))),
    "index.json song twice": ("index.json", edit_meta(lambda m: m["songs"].append(m["songs"][0]))),
    "index.json no model": ("index.json", edit_meta(lambda m: m.pop("model"))),
    "vectors.npy truncated": (
        "vectors.npy",
        lambda f: (f / "vectors.npy").write_bytes((f / "vectors.npy").read_bytes()[:100]),
    ),
    "vectors.npy NaN": ("vectors.npy", with_nan),
    "positions.npy empty": ("positions.npy", lambda f: (f / "positions.npy").write_bytes(b"")),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_index_is_a_one_line_error_naming_the_file(index, tmp_path, case):
    index[0].save(tmp_path / "idx")
    name, tamper = DAMAGED[case]
    tamper(tmp_path / "idx")
    with pytest.raises(KcnnError) as refused:
        SongIndex.load(tmp_path / "idx")
    message = str(refused.value)
    assert "\n" not in message and f"{tmp_path / 'idx' / name}: damaged" in message, message


def test_model_fingerprint_follows_the_files_that_make_representations(tmp_path):
    for name in ("settings.json", "codebook.npz", "network.safetensors", "svm.skops"):
        (tmp_path / name).write_text(name)
    first = model_fingerprint(tmp_path)
    (tmp_path / "svm.skops").write_text("another svm")
    assert model_fingerprint(tmp_path) == first
    (tmp_path / "network.safetensors").write_text("another network")
    assert model_fingerprint(tmp_path) != first
    with pytest.raises(KcnnError, match="not a kcnn model"):
        model_fingerprint(tmp_path / "nowhere")


def test_kmeans_recovers_blobs_and_scores_them():
    vectors, blob = blobs(10, np.eye(DIM)[:4] * 3)
    labels = [f"g{b}" for b in blob]
    found = cluster(unit_rows(vectors), 4)
    score = agreement(labels, found)
    assert score.purity == 1.0 and score.nmi == pytest.approx(1.0)
    assert np.bincount(found).tolist() == [10, 10, 10, 10]
    assert agreement([None] * len(found), found) is None
    assert default_clusters(labels) == 4 and default_clusters([None] * 50) == 5


def test_purity_counts_the_majority_of_each_cluster():
    assert purity(["a", "a", "b", "b", "b"], [0, 0, 0, 1, 1]) == pytest.approx(4 / 5)


def test_layout_keeps_blobs_apart_and_places_a_new_song_among_its_neighbours():
    vectors, blob = blobs(12, np.eye(DIM)[:3] * 3)
    positions = layout(unit_rows(vectors))
    assert positions.shape == (36, 2) and positions.min() >= 0 and positions.max() <= 1
    centres = np.stack([positions[blob == b].mean(0) for b in range(3)])
    spread = max(np.linalg.norm(positions[blob == b] - centres[b], axis=1).max() for b in range(3))
    assert min(np.linalg.norm(centres[0] - centres[1:], axis=1)) > spread
    new = place(positions, [0, 1, 2], [0.9, 0.8, 0.7])
    assert np.linalg.norm(new - centres[0]) < spread
    assert layout(np.ones((2, DIM))).shape == (2, 2)


def test_a_large_collection_is_mapped_by_a_sample_and_the_rest_placed(monkeypatch, tmp_path):
    monkeypatch.setattr(kcnn.index, "MAP_SONGS", 30)
    vectors, blob = blobs(40, np.eye(DIM)[:3] * 3)
    songs = SongIndex(DIM, "model", "id")
    paths = [tmp_path / f"{i}.wav" for i in range(len(vectors))]
    for path in paths:
        path.write_bytes(b"x")
    songs.add([Song.of(p, None) for p in paths], vectors)
    laid_out = []
    monkeypatch.setattr(kcnn.index, "layout", lambda v, seed: laid_out.append(v) or layout(v, seed))
    positions = songs.map_positions()
    assert positions.shape == (120, 2) and positions.dtype == np.float32
    assert len(laid_out) == 1 and len(laid_out[0]) == 30  # t-SNE saw the sample only
    assert positions.min() >= 0 and positions.max() <= 1
    drawn = np.flatnonzero(
        [np.isclose(v, laid_out[0]).all(1).any() for v in songs.comparable(vectors)]
    )
    assert len(drawn) == 30 and np.array_equal(positions[drawn], layout(laid_out[0], 0))
    placed = np.setdiff1d(np.arange(120), drawn)
    centres = np.stack([positions[drawn][blob[drawn] == b].mean(0) for b in range(3)])
    nearest = np.linalg.norm(positions[placed, None] - centres[None], axis=2).argmin(1)
    assert np.array_equal(nearest, blob[placed])  # each song lands among its own blob


def test_maps_are_written_as_png_and_self_contained_html(tmp_path):
    vectors, blob = blobs(5, np.eye(DIM)[:2] * 3)
    groups = ["rock" if b else None for b in blob]
    data = map_data(layout(vectors), groups, [f"/music/</script>{i}.wav" for i in range(10)], "t")
    assert [g["name"] for g in data["groups"]] == ["rock", "(no label)"]
    write_png(tmp_path / "map.png", data)
    write_html(tmp_path / "map.html", data)
    assert (tmp_path / "map.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "map.html").read_text()
    assert "function drawMap" in page and "http" not in page.replace(
        "http://www.w3.org/2000/svg", ""
    )
    assert "/music/<\\/script>3.wav" in page and "</script>3" not in page

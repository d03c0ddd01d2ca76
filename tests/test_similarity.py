"""Discovery on real music: kcnn index, similar, cluster and map end to end."""

from __future__ import annotations

import csv
import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import background
import numpy as np
import pytest
import soundfile as sf
from shared_data import GTZAN_MINI

from kcnn.cli.index import collect, folder_labels
from kcnn.cli.main import main
from kcnn.index import SongIndex
from kcnn.model import MusicModel

GENRES = ("classical", "jazz", "metal")
NEAR_COPIES = ("classical.00001", "jazz.00002", "metal.00003")


def run_cli(*args: object) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def copy_clips(folder: Path, genres: tuple[str, ...], numbers: range) -> None:
    for genre in genres:
        (folder / genre).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            shutil.copy(GTZAN_MINI / genre / f"{genre}.{n:05d}.wav", folder / genre)


def add_noise(clip: Path, out: Path, snr_db: float, seed: int) -> None:
    """Write `clip` with white noise `snr_db` dB below its RMS level (16-bit PCM)."""
    y, sr = sf.read(clip)
    rms = np.sqrt(np.mean(y**2))
    noise = np.random.default_rng(seed).normal(0, rms * 10 ** (-snr_db / 20), len(y))
    sf.write(out, np.clip(y + noise, -1, 1), sr, subtype="PCM_16")


@background.command("indexed")
def train_on_the_collection(work: Path) -> list[object]:
    """A model trained on 4 clips of 3 genres, copied into `work`/collection."""
    copy_clips(work / "collection", GENRES, range(4))
    return [
        "train", work / "collection", "--out", work / "model", "--test-size", "0",
        "--epochs", "10", "--words", "64", "--conv-units", "100", "-q",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def indexed(background_jobs):
    """A model trained on 4 clips of 3 genres; an index of them and of near-copies of 3.

    A near-copy is the clip with white noise 40 dB below its RMS level: a little hiss.
    """
    work = background_jobs.output("indexed")
    collection = work / "collection"
    for seed, name in enumerate(NEAR_COPIES):
        genre = name.split(".")[0]
        clip = collection / genre / f"{name}.wav"
        add_noise(clip, clip.with_name(f"{name}.noisy.wav"), snr_db=40, seed=seed)
    code, out = run_cli("index", work / "model", collection, "--out", work / "index", "-q")
    assert code == 0 and "15 songs in" in out, out
    return work, collection


def test_index_labels_songs_by_their_genre_folder(indexed):
    work, _ = indexed
    index = SongIndex.load(work / "index")
    assert len(index) == 15 and index.vectors.shape == (15, 300)
    assert {Path(s.path).parent.name for s in index.songs} == set(GENRES)
    assert all(s.label == Path(s.path).parent.name for s in index.songs)


def test_near_copies_of_a_song_come_before_all_other_songs(indexed):
    work, collection = indexed
    for name in NEAR_COPIES:
        query = collection / name.split(".")[0] / f"{name}.wav"
        code, out = run_cli("similar", work / "index", query, "-n", "5", "--format", "json")
        assert code == 0
        neighbours = json.loads(out)["neighbours"]
        assert Path(neighbours[0]["path"]).name == f"{name}.noisy.wav", neighbours
        assert neighbours[0]["similarity"] > neighbours[1]["similarity"]


def test_similar_never_returns_the_query_and_embeds_a_song_from_outside(indexed):
    work, collection = indexed
    query = collection / "jazz" / "jazz.00000.wav"
    _, out = run_cli("similar", work / "index", query, "-n", "100", "--format", "json")
    found = [Path(n["path"]) for n in json.loads(out)["neighbours"]]
    assert len(found) == 14 and query.resolve() not in found
    outside = GTZAN_MINI / "metal" / "metal.00008.wav"
    code, table = run_cli("similar", work / "index", outside, "-n", "3", "-q")
    assert code == 0
    lines = table.strip().splitlines()
    assert str(outside) in lines[0] and lines[1].split()[:2] == ["#", "similarity"]
    assert len(lines) == 5 and lines[2].split()[0] == "1"


def test_similar_asks_for_the_model_when_it_has_moved(indexed, tmp_path, capsys):
    work, _ = indexed
    shutil.copytree(work / "index", tmp_path / "index")
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    meta["model"]["path"] = str(tmp_path / "moved")
    (tmp_path / "index" / "index.json").write_text(json.dumps(meta))
    outside = GTZAN_MINI / "metal" / "metal.00008.wav"
    assert run_cli("similar", tmp_path / "index", outside, "-q")[0] == 2
    assert "--model" in capsys.readouterr().err
    code, out = run_cli("similar", tmp_path / "index", outside, "--model", work / "model", "-q")
    assert code == 0 and "metal.00008.wav" in out


def test_adding_songs_embeds_only_the_new_and_changed_ones(tmp_path, indexed, monkeypatch):
    work, _ = indexed
    embedded: list[int] = []
    original = MusicModel.embed

    def counting_embed(self, features):
        embedded.append(len(features))
        return original(self, features)

    monkeypatch.setattr(MusicModel, "embed", counting_embed)
    collection = tmp_path / "music"
    copy_clips(collection, ("jazz", "metal"), range(2))
    run_cli("index", work / "model", collection, "--out", tmp_path / "idx", "-q")
    before = SongIndex.load(tmp_path / "idx")
    copy_clips(collection, ("classical",), range(2))
    shutil.copy(GTZAN_MINI / "metal" / "metal.00009.wav", collection / "metal" / "metal.00001.wav")
    code, out = run_cli("index", work / "model", collection, "--out", tmp_path / "idx", "-q")
    assert code == 0 and "3 songs embedded (2 new, 1 changed); 6 songs" in out, out
    assert embedded == [4, 3]
    after = SongIndex.load(tmp_path / "idx")
    for row, song in enumerate(before.songs):
        if not song.path.endswith("metal.00001.wav"):
            assert np.array_equal(after.vectors[after.row_of(song.path)], before.vectors[row])
    _, out = run_cli("index", work / "model", collection, "--out", tmp_path / "idx", "-q")
    assert "up to date, 6 songs" in out and embedded == [4, 3]


def test_cluster_scores_against_the_labels_and_writes_csv(indexed, tmp_path):
    work, _ = indexed
    code, out = run_cli("cluster", work / "index", "--out", tmp_path / "c.csv")
    assert code == 0 and "3 clusters of 15 songs" in out
    assert "purity" in out and "normalised mutual information" in out
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert len(rows) == 15 and {r["cluster"] for r in rows} <= {"0", "1", "2"}
    assert all(Path(r["path"]).parent.name == r["label"] for r in rows)
    code, out = run_cli("cluster", work / "index", "--clusters", "5")
    assert code == 0 and (work / "index-clusters.csv").is_file()


def test_map_draws_the_collection_as_png_and_html(indexed, tmp_path):
    work, _ = indexed
    code, _ = run_cli("map", work / "index", "--out", tmp_path / "m.png", tmp_path / "m.html")
    assert code == 0
    assert (tmp_path / "m.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "m.html").read_text()
    assert "jazz.00003.wav" in page and "coloured by label" in page
    code, _ = run_cli("map", work / "index", "--out", tmp_path / "c.html", "--colour", "cluster")
    assert code == 0 and "cluster 0" in (tmp_path / "c.html").read_text()


def test_index_refuses_another_model_and_a_folder_that_is_not_an_index(indexed, capsys):
    work, collection = indexed
    other = work / "other-model"
    shutil.copytree(work / "model", other)
    with (other / "settings.json").open("a") as handle:
        handle.write("\n")
    assert run_cli("index", other, collection, "--out", work / "index", "-q")[0] == 2
    assert "not the model this index was built with" in capsys.readouterr().err
    assert run_cli("index", work / "model", collection, "--out", collection, "-q")[0] == 2
    assert "is not a kcnn index" in capsys.readouterr().err
    assert (collection / "jazz" / "jazz.00000.wav").is_file()


def test_labels_come_from_genre_folders_or_a_manifest(tmp_path):
    root = tmp_path / "music"
    files = [root / "rock" / "a.wav", root / "pop" / "live" / "b.wav", root / "c.wav"]
    assert folder_labels(root, files, "auto") == [None, None, None]
    assert folder_labels(root, files[:2], "auto") == ["rock", "pop"]
    assert folder_labels(root, files, "folder") == ["rock", "pop", None]
    assert folder_labels(root, files[:2], "none") == [None, None]
    clip = GTZAN_MINI / "pop" / "pop.00000.wav"
    (tmp_path / "m.csv").write_text(f"path,label\n{clip},upbeat\n")
    assert collect([tmp_path / "m.csv", clip], "auto") == ([clip.resolve()], ["upbeat"])

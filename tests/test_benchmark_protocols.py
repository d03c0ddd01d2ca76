"""Folds and collections of the benchmark: no song or group on both sides, the readers."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from shared_data import GTZAN_MINI, clips_numbered

from kcnn.benchmark.datasets import gtzan_split_lists, load_collection
from kcnn.benchmark.protocols import cv_folds, make_folds
from kcnn.errors import KcnnError

LABELS = [g for g in ("blues", "jazz", "rock") for _ in range(10)]


def check_partition(folds, n):
    """Every song is tested exactly once, and never trained on in the fold that tests it."""
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(n))
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert len(fold.train) + len(fold.test) == n


def test_cv_folds_share_no_song_and_balance_labels():
    folds = cv_folds(LABELS, None, 5, seed=0)
    check_partition(folds, len(LABELS))
    for fold in folds:
        assert Counter(LABELS[i] for i in fold.test) == {"blues": 2, "jazz": 2, "rock": 2}


def test_cv_folds_keep_each_group_on_one_side():
    groups = [f"artist{i // 2}" for i in range(len(LABELS))]  # two songs per artist
    folds = cv_folds(LABELS, groups, 5, seed=1)
    check_partition(folds, len(LABELS))
    for fold in folds:
        assert not {groups[i] for i in fold.train} & {groups[i] for i in fold.test}


def test_runs_with_other_seeds_get_other_folds():
    first, second = (cv_folds(LABELS, None, 5, seed=s) for s in (0, 1))
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(first, second, strict=True))


def test_too_few_songs_of_a_label_for_the_folds_is_a_clear_error():
    with pytest.raises(KcnnError, match="'rock' has 2 song"):
        cv_folds(["blues"] * 5 + ["rock"] * 2, None, 3, seed=0)


def link(target: Path, link_path: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link_path)


def test_gtzan_as_shipped_leaves_out_the_corrupt_clip(tmp_path):
    for clip in clips_numbered(range(3)):
        genre = clip.parent.name
        link(clip, tmp_path / "genres" / genre / f"{clip.stem}.au")
    link(GTZAN_MINI / "jazz" / "jazz.00003.wav", tmp_path / "genres" / "jazz" / "jazz.00054.au")
    collection = load_collection(tmp_path, "cv")
    assert len(collection.files) == 30
    assert all(p.suffix == ".au" and p.stem != "jazz.00054" for p in collection.files.paths)
    assert collection.notes == ("left out jazz.00054, the corrupt clip of GTZAN",)


def test_gtzan_filtered_split_on_gtzan_mini():
    collection = load_collection(GTZAN_MINI, "split", "gtzan-filtered")
    lists = gtzan_split_lists()
    assert [len(lists[p]) for p in ("train", "valid", "test")] == [443, 197, 290]
    keys = [f"{p.parent.name}/{p.stem}" for p in collection.files.paths]
    test = [k for k, t in zip(keys, collection.test, strict=True) if t]
    train = [k for k, t in zip(keys, collection.test, strict=True) if not t]
    assert set(test) <= set(lists["test"])
    assert set(train) <= set(lists["train"]) | set(lists["valid"])
    assert len(test) == 4 and len(train) == 89  # gtzan-mini holds 93 of the 930 clips
    assert "a subset" in collection.notes[0]
    (fold,) = make_folds(collection, n_folds=10, seed=0)
    assert not set(fold.train) & set(fold.test)
    assert len(fold.test) == 4


def write_ismir(root: Path) -> None:
    """A miniature ISMIR2004Genre: a nested training part and a flat development part."""
    train_rows, dev_rows = [], []
    for genre, label in (("classical", "classical"), ("metal", "metal_punk")):
        for i in range(3):
            path = f"./{label}/artist_{genre}_{i % 2}/album/{i}-track.mp3"
            link(GTZAN_MINI / genre / f"{genre}.0000{i}.wav", root / "audio" / "training" / path)
            train_rows.append(f'"{label}","artist {i % 2}","album","track {i}","{i}","{path}"\n')
            name = f"artist_{i}_album_1_track_{genre}.mp3"
            link(
                GTZAN_MINI / genre / f"{genre}.0000{i + 5}.wav",
                root / "audio" / "development" / name,
            )
            dev_rows.append(f'"{label}","artist_{i}","album_1","track","1","tracks/{name}"\n')
    for part, rows in (("training", train_rows), ("development", dev_rows)):
        (root / "metadata" / part).mkdir(parents=True)
        (root / "metadata" / part / "tracklist.csv").write_text("".join(rows))


def test_ismir2004_trains_on_training_and_tests_on_development(tmp_path):
    write_ismir(tmp_path)
    collection = load_collection(tmp_path, "split")  # the layout names its split
    files = collection.files
    assert len(files) == 12 and sum(collection.test) == 6
    assert set(files.labels) == {"classical", "metal_punk"}
    assert all(p.is_file() for p in files.paths)
    assert all(
        ("development" in str(p)) == t for p, t in zip(files.paths, collection.test, strict=True)
    )
    assert files.groups[0] == "artist 0"
    with pytest.raises(KcnnError, match="--protocol split"):
        load_collection(tmp_path, "cv")


def test_ismir2004_names_a_missing_file(tmp_path):
    write_ismir(tmp_path)
    next((tmp_path / "audio" / "development").iterdir()).unlink()
    with pytest.raises(KcnnError, match="1 listed file"):
        load_collection(tmp_path, "split", "ismir2004")


def test_a_split_file_lists_the_test_songs(tmp_path):
    listing = tmp_path / "test.txt"
    listing.write_text("blues/blues.00001.wav\nrock/rock.00009.wav\n")
    collection = load_collection(GTZAN_MINI, "split", str(listing))
    tested = [p.name for p, t in zip(collection.files.paths, collection.test, strict=True) if t]
    assert tested == ["blues.00001.wav", "rock.00009.wav"]
    with pytest.raises(KcnnError, match="--split"):
        load_collection(GTZAN_MINI, "split")

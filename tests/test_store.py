"""Features kept on disk: read back one song at a time, surviving a kill; codebooks fitted
on a bounded sample read song by song."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from shared_data import GTZAN_MINI, TINY_MODEL, write_manifest

import kcnn.cache
import kcnn.extraction
from kcnn.atomic import STAGING
from kcnn.cache import FeatureCache
from kcnn.cli.main import main
from kcnn.extraction import StoredFeatures, extract_batch, subset
from kcnn.features import FeatureSettings
from kcnn.words import AudioWords, Reservoir

SETTINGS = FeatureSettings()
CLIPS = [GTZAN_MINI / g / f"{g}.0000{n}.wav" for g in ("jazz", "rock") for n in range(2)]


def assert_same_songs(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert list(x) == list(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def entries(cache: FeatureCache) -> list:
    return sorted(cache.directory.glob("??/*.npz"))


def test_stored_features_are_the_features_extracted(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    paths = [CLIPS[0], bad, *CLIPS[1:]]
    in_memory = extract_batch(paths, SETTINGS, 4, progress=False)
    cache = FeatureCache(tmp_path / "cache", SETTINGS)
    stored = extract_batch(paths, SETTINGS, 4, cache, progress=False)
    assert isinstance(stored.features, StoredFeatures)
    assert stored.kept == in_memory.kept == [0, 2, 3, 4]
    assert [e.path for e in stored.skipped] == [str(bad)]
    assert stored.frames == in_memory.frames
    assert stored.frames == [len(song["mel"]) for song in in_memory.features]
    assert_same_songs(stored.features, in_memory.features)
    assert_same_songs(stored.features[1:3], in_memory.features[1:3])
    picked = subset(stored.features, [3, 0])
    assert isinstance(picked, StoredFeatures)
    assert_same_songs(picked, subset(in_memory.features, [3, 0]))
    entries(cache)[0].unlink()  # a song whose entry has gone is computed again
    assert_same_songs(stored.features, in_memory.features)


def test_a_batch_finds_stored_songs_without_reading_them(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "cache", SETTINGS)
    first = extract_batch(CLIPS, SETTINGS, 4, cache, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("read or computed again")

    monkeypatch.setattr(kcnn.extraction, "compute_file", refuse)
    monkeypatch.setattr(FeatureCache, "get", refuse)
    again = extract_batch(CLIPS, SETTINGS, 4, cache, progress=False)
    assert again.kept == first.kept and again.frames == first.frames


def test_a_killed_extraction_resumes_from_what_it_stored(tmp_path, monkeypatch):
    out = tmp_path / "cache"
    base = [sys.executable, "-m", "kcnn.cli.main", "extract", "--out", out]
    base += ["--jobs", "1", "--threads", "1", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*map(str, base), *map(str, CLIPS[:2])], env=env, check=True)
    assert done.returncode == 0
    cache = FeatureCache(out, SETTINGS)
    finished = {p: p.stat().st_mtime_ns for p in entries(cache)}
    assert len(finished) == 2
    # killed with its third entry written and synced but not yet in place
    env["KCNN_KILL_AFTER"] = "staged"
    killed = subprocess.run([*map(str, base), *map(str, CLIPS)], env=env)
    assert killed.returncode == -9
    assert {p: p.stat().st_mtime_ns for p in entries(cache)} == finished
    assert list((out / STAGING).glob("*/*.tmp")), "the half-published entry lies in staging"

    computed = []
    compute_file = kcnn.extraction.compute_file

    def counting(path, *args, **kwargs):
        computed.append(path)
        return compute_file(path, *args, **kwargs)

    monkeypatch.setattr(kcnn.extraction, "compute_file", counting)
    resumed = extract_batch(CLIPS, SETTINGS, 4, cache, progress=False)
    assert computed == CLIPS[2:]  # the two stored songs are reused, not computed
    assert not list((out / STAGING).glob("*/*.tmp"))  # the killed run's leftovers are gone
    assert len(entries(cache)) == 4
    assert_same_songs(resumed.features, extract_batch(CLIPS, SETTINGS, 4, progress=False).features)


def test_no_cache_keeps_features_in_a_temporary_folder_removed_after(tmp_path, no_cache):
    manifest = write_manifest(tmp_path / "songs.csv", CLIPS)
    args = ["train", manifest, "--out", tmp_path / "model", "--no-cache", "--jobs", "1"]
    assert main([*map(str, args), *TINY_MODEL]) == 0
    assert (tmp_path / "model" / "settings.json").is_file()
    no_cache.check()


def song(rng: np.random.Generator, n_frames: int) -> dict[str, np.ndarray]:
    return {
        "mel": rng.normal(size=(n_frames, 6)).astype(np.float32),
        "sfm": rng.normal(size=(n_frames, 3)).astype(np.float32),
    }


def test_the_streaming_fit_sees_every_segment_in_order_when_they_fit():
    rng = np.random.default_rng(0)
    songs = [song(rng, n) for n in (40, 80, 120)]  # whole segments of 4 frames
    whole = {name: np.concatenate([s[name] for s in songs]) for name in songs[0]}
    words = AudioWords(n_components=4, n_words=8, max_fit_segments=60, phases=1)
    by_song, at_once = words.fit(songs), AudioWords(**words.get_params()).fit([whole])
    for name in ("mel", "sfm"):
        np.testing.assert_array_equal(by_song.centroids_[name], at_once.centroids_[name])
        np.testing.assert_array_equal(by_song.whitening_[name].mean, at_once.whitening_[name].mean)
        np.testing.assert_allclose(by_song.texture_[name], at_once.texture_[name], atol=1e-5)
    encoded = by_song.transform(songs).words
    assert encoded[0].dtype == np.int16 and encoded[2].shape == (1, 2 + 2 * 8, 30)


def test_the_fit_sample_is_bounded_uniform_and_drawn_from_every_song():
    sample = Reservoir(300, np.random.default_rng(0))
    for k in range(30):  # rows (song, row of the song)
        sample.add(np.column_stack([np.full(100, k), np.arange(100)]))
    rows = sample.rows()
    assert rows.shape == (300, 2) and sample.seen == 3000
    assert len({tuple(r) for r in rows}) == 300
    per_song = np.bincount(rows[:, 0], minlength=30)
    assert per_song.min() >= 3 and per_song.max() <= 20  # 10 expected

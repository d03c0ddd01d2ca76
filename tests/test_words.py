import copy

import numpy as np
import pytest

from kcnn.config import TEXTURE_CODES
from kcnn.words import (
    AudioWords,
    segments,
    split_parts,
    texture_codes,
    texture_quantiser,
)


def fake_song(rng, n_frames=40, shift=0.0):
    return {
        "mel": rng.normal(shift, 1.0, size=(n_frames, 6)).astype(np.float32),
        "sfm": rng.uniform(0, 1, size=(n_frames, 3)).astype(np.float32),
    }


def test_segments_concatenate_consecutive_frames_without_overlap():
    frames = np.arange(14, dtype=np.float32).reshape(7, 2)
    out = segments(frames, 3)
    assert out.shape == (2, 6)
    assert out[1].tolist() == [6, 7, 8, 9, 10, 11]


def test_whitening_gives_unit_variance_decorrelated_components():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(12, 12))
    songs = [
        {"mel": (rng.normal(size=(300, 3)) @ mix[:3, :6]).astype(np.float32) + 5} for _ in range(8)
    ]
    words = AudioWords(segment_frames=2, n_components=4, n_words=8).fit(songs)
    data = np.concatenate([segments(s["mel"], 2) for s in songs])
    white = words.whitening_["mel"](data)
    assert white.shape[1] == 4
    cov = np.cov(white[:, :3].T)  # the data has rank 3 per frame
    assert np.allclose(cov, np.eye(3), atol=0.05)


def test_fit_sees_only_the_songs_it_is_given():
    rng = np.random.default_rng(1)
    train = [fake_song(rng) for _ in range(6)]
    far_away = [fake_song(rng, shift=100.0) for _ in range(6)]
    words = AudioWords(segment_frames=4, n_components=5, n_words=10).fit(train)
    expected = np.concatenate([segments(s["mel"], 4) for s in train]).mean(axis=0)
    assert np.allclose(words.whitening_["mel"].mean, expected, atol=1e-4)
    # songs never seen in the fit leave no trace on the whitening or the codebook
    white, centroids = copy.deepcopy(words.whitening_), copy.deepcopy(words.centroids_)
    words.transform(far_away)
    for name in ("mel", "sfm"):
        assert np.array_equal(words.centroids_[name], centroids[name])
        assert np.array_equal(words.whitening_[name].mean, white[name].mean)
        assert np.array_equal(words.whitening_[name].components, white[name].components)
        assert np.array_equal(words.whitening_[name].scale, white[name].scale)
    # and a fit on the same songs gives the same codebook (sums rounded in another order)
    again = AudioWords(segment_frames=4, n_components=5, n_words=10).fit(train)
    np.testing.assert_allclose(words.centroids_["mel"], again.centroids_["mel"], atol=1e-5)


def test_transform_gives_one_word_row_per_type_and_one_word_per_segment():
    rng = np.random.default_rng(2)
    songs = [fake_song(rng, n_frames=n) for n in (40, 23, 9)]
    words = AudioWords(segment_frames=4, phases=1, n_components=5, n_words=7, texture_parts=0)
    seqs = words.fit(songs).transform(songs)
    assert seqs.types == ("mel", "sfm")
    assert [w.shape for w in seqs.words] == [(1, 2, 10), (1, 2, 5), (1, 2, 2)]
    assert all(w.min() >= 0 and w.max() < 7 for w in seqs.words)
    assert seqs.centroids[0].shape == (7, 5)
    assert seqs.centroids[1].shape == (7, 5)


def test_words_are_the_nearest_centroids():
    rng = np.random.default_rng(3)
    songs = [fake_song(rng) for _ in range(5)]
    words = AudioWords(segment_frames=2, phases=1, n_components=4, n_words=6, texture_parts=0).fit(
        songs
    )
    white = words.whitening_["mel"](segments(songs[0]["mel"], 2))
    dist = ((white[:, None, :] - words.centroids_["mel"][None]) ** 2).sum(-1)
    assert np.array_equal(words.encode(songs[0])[0, 0], dist.argmin(axis=1))


def test_band_limited_views_share_the_codebook_and_are_encoded_in_order():
    rng = np.random.default_rng(4)
    songs = []
    for _ in range(4):
        heard, limited = fake_song(rng), fake_song(rng, shift=50.0)
        songs.append({**heard, **{f"{t}@3800": v for t, v in limited.items()}})
    words = AudioWords(segment_frames=2, phases=1, n_components=4, n_words=6, texture_parts=0).fit(
        songs
    )
    assert words.types_ == ("mel", "sfm")
    # the codebook covers the views: their segments lie far apart, and both get words
    mean = np.concatenate([segments(s[k], 2) for s in songs for k in ("mel", "mel@3800")]).mean(0)
    assert np.allclose(words.whitening_["mel"].mean, mean, atol=1e-3)
    codes = words.encode(songs[0])
    assert codes.shape == (2, 2, 20)
    only_heard = {t: songs[0][t] for t in ("mel", "sfm")}
    assert np.array_equal(codes[0], words.encode(only_heard)[0])
    assert not set(codes[0, 0]) & set(codes[1, 0])


def test_phases_are_the_words_of_the_song_cut_a_fraction_of_a_word_later():
    rng = np.random.default_rng(5)
    songs = [fake_song(rng, n_frames=n) for n in (41, 40, 30)]
    one = AudioWords(segment_frames=4, phases=1, n_components=4, n_words=6, texture_parts=0).fit(
        songs
    )
    two = AudioWords(segment_frames=4, phases=2, n_components=4, n_words=6, texture_parts=0).fit(
        songs
    )
    assert np.array_equal(two.centroids_["mel"], one.centroids_["mel"])
    # 41 frames: phase 0 has 10 segments, phase 1 (from frame 2) 9: both cut to 9
    codes = two.encode(songs[0])
    assert codes.shape == (2, 2, 9)
    assert np.array_equal(codes[0], one.encode(songs[0])[0, :, :9])
    later = {t: v[2:] for t, v in songs[0].items()}
    assert np.array_equal(codes[1], one.encode(later)[0])
    assert not np.array_equal(codes[0], codes[1])


def test_a_song_too_short_for_a_later_phase_keeps_the_first():
    rng = np.random.default_rng(6)
    songs = [fake_song(rng, n_frames=n) for n in (40, 5)]
    words = AudioWords(segment_frames=4, phases=2, n_components=4, n_words=6, texture_parts=0).fit(
        songs
    )
    assert words.encode(songs[1]).shape == (1, 2, 1)
    assert words.encode(songs[0]).shape == (2, 2, 9)


def test_more_phases_than_frames_per_word_is_refused():
    songs = [fake_song(np.random.default_rng(7))]
    with pytest.raises(ValueError, match="phases"):
        AudioWords(segment_frames=2, phases=3).fit(songs)


def test_texture_codes_are_the_nearest_centroids_of_each_part_and_describe_the_segments():
    rng = np.random.default_rng(7)
    white = rng.normal(size=(600, 10)).astype(np.float32)
    quantiser = texture_quantiser(white, 4, seed=0)  # parts of 3 dimensions, 2 of them padding
    assert quantiser.shape == (4, TEXTURE_CODES, 3)
    codes = texture_codes(white, quantiser)
    parts = split_parts(white, 4, 3)
    for p in range(4):  # the nearest, bar float rounding between near ties
        distance = ((parts[p][:, None] - quantiser[p][None]) ** 2).sum(-1)
        chosen = distance[np.arange(len(white)), codes[p]]
        np.testing.assert_allclose(chosen, distance.min(axis=1), atol=1e-5)
    decoded = np.concatenate([quantiser[p, codes[p]] for p in range(4)], axis=1)[:, :10]
    assert np.mean((decoded - white) ** 2) < 0.1  # of a variance of 1
    few = texture_quantiser(white[:20], 2, seed=0)  # fewer segments than codes
    assert set(texture_codes(white, few).ravel()) <= set(range(20))


def test_encode_appends_each_types_texture_codes_after_the_words():
    rng = np.random.default_rng(8)
    songs = [fake_song(rng, n_frames=80) for _ in range(6)]
    plain = AudioWords(segment_frames=4, phases=1, n_components=5, n_words=7, texture_parts=0)
    assert plain.fit(songs).encode(songs[0]).shape == (1, 2, 20)
    words = AudioWords(segment_frames=4, phases=1, n_components=5, n_words=7, texture_parts=3)
    seqs = words.fit(songs).transform(songs)
    assert seqs.words[0].shape == (1, 2 + 2 * 3, 20)
    assert np.array_equal(seqs.words[0][0, :2], plain.encode(songs[0])[0])
    for t, name in enumerate(("mel", "sfm")):
        white = words.whitening_[name](segments(songs[0][name], 4))
        rows = seqs.words[0][0, 2 + 3 * t : 2 + 3 * (t + 1)]
        assert np.array_equal(rows, texture_codes(white, seqs.texture[t]))

"""Frame features: spectrogram framing, Marsyas sub-bands, SFM / SCF theory, mel, settings."""

from __future__ import annotations

import json
from itertools import pairwise

import librosa
import numpy as np
import pytest
import soxr

from kcnn.features import (
    FEATURE_TYPES,
    HOP_LENGTH,
    N_FFT,
    FeatureSettings,
    extract_features,
    feature_dims,
    log_mel,
    marsyas_bands,
    power_spectrogram,
    relative_log_mel,
    spectral_crest,
    spectral_flatness,
    spectrogram,
    spectrum_features,
    split_views,
)

SR = 22050
ALL_TYPES = FeatureSettings(types=FEATURE_TYPES, fmax=None, view_rates=())


def tone(freq: float, seconds: float = 2.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float = 5.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(round(SR * seconds)).astype(np.float32)


def band_containing(freq: float) -> int:
    """Index of the only Marsyas band (at SR, N_FFT) whose bins contain `freq`."""
    k = freq * N_FFT / SR
    found = [b for b, (lo, hi) in enumerate(marsyas_bands(SR, N_FFT)) if lo + 1 <= k <= hi - 1]
    assert len(found) == 1
    return found[0]


def test_marsyas_bands_at_22050_hz() -> None:
    bands = marsyas_bands(SR, N_FFT)
    df = SR / N_FFT
    assert len(bands) == 21
    assert bands[0] == (int(237.5 / df + 0.5), int(1.05 * 1000 * 2**-1.75 / df + 0.5))
    assert bands[0][0] == 11
    assert bands[-1][1] <= N_FFT // 2
    for i, (lo, hi) in enumerate(bands):
        edge = 1000 * 2 ** (0.25 * (i - 8))
        assert abs(lo * df - 0.95 * edge) <= df / 2
        assert abs(hi * df - 1.05 * edge * 2**0.25) <= df / 2
    for (lo_a, hi_a), (lo_b, hi_b) in pairwise(bands):
        assert lo_a < lo_b <= hi_a < hi_b  # increasing and overlapping (the 0.95 / 1.05 margins)
    # band 21 would reach 1.05 * 11,314 Hz = 11,879 Hz, above Nyquist
    assert len(marsyas_bands(44100, 2048)) == 24
    assert len(marsyas_bands(8000, 256)) == 15


def test_power_spectrogram_frames_and_values() -> None:
    y = noise(5.0)  # more frames than one FFT block
    power = power_spectrogram(y)
    assert power.dtype == np.float32
    assert power.shape == (1 + (len(y) - N_FFT) // HOP_LENGTH, N_FFT // 2 + 1)
    for t in (0, 3, 150, len(power) - 1):
        # by hand: samples t * hop ... t * hop + n_fft - 1, symmetric Hamming window
        frame = y[t * HOP_LENGTH : t * HOP_LENGTH + N_FFT].astype(np.float64) * np.hamming(N_FFT)
        expected = np.abs(np.fft.rfft(frame)) ** 2
        np.testing.assert_allclose(power[t], expected, rtol=1e-3, atol=1e-4 * expected.max())


def test_power_spectrogram_length_limits() -> None:
    assert power_spectrogram(np.zeros(N_FFT)).shape == (1, N_FFT // 2 + 1)
    assert power_spectrogram(np.zeros(N_FFT + HOP_LENGTH - 1)).shape[0] == 1
    assert power_spectrogram(np.zeros(N_FFT + HOP_LENGTH)).shape[0] == 2
    with pytest.raises(ValueError, match="shorter than one frame"):
        power_spectrogram(np.zeros(N_FFT - 1))
    with pytest.raises(ValueError, match="mono"):
        power_spectrogram(np.zeros((2, 4 * N_FFT)))


def test_white_noise_flatness_matches_theory() -> None:
    # The power of Gaussian noise in one bin is exponential (chi-square, 2 dof), and
    # E[ln X] = ln E[X] - gamma, so geometric / arithmetic mean -> exp(-gamma) = 0.5615 as
    # the band widens. Narrow bands sit higher: few bins, and the Hamming window correlates
    # neighbours. So check the limit on bands of at least 40 bins and a range on all bands.
    power = power_spectrogram(noise())
    sfm = spectral_flatness(power, SR, N_FFT).mean(axis=0)
    widths = np.array([hi - lo + 1 for lo, hi in marsyas_bands(SR, N_FFT)])
    assert widths[-1] > 100
    np.testing.assert_allclose(sfm[widths >= 40], np.exp(-np.euler_gamma), atol=0.05)
    assert np.all((sfm > 0.5) & (sfm < 0.8))
    # crest of n exponential bins: max / mean ~ ln n + gamma, about 5 for the widest band
    scf = spectral_crest(power, SR, N_FFT).mean(axis=0)
    assert np.all((scf > 1) & (scf < 7))


@pytest.mark.parametrize("freq", [460.0, 1100.0, 2500.0, 4400.0, 9000.0])
def test_tone_is_not_flat_and_has_a_high_crest(freq: float) -> None:
    band = band_containing(freq)
    lo, hi = marsyas_bands(SR, N_FFT)[band]
    tone_power = power_spectrogram(tone(freq))
    sfm = spectral_flatness(tone_power, SR, N_FFT)[:, band]
    scf = spectral_crest(tone_power, SR, N_FFT)[:, band]
    noise_scf = spectral_crest(power_spectrogram(noise()), SR, N_FFT)[:, band]
    assert sfm.max() < 0.05
    # the Hamming main lobe holds a tone's power in ~1.7 bins' worth of its peak power, so
    # SCF ~ width / 1.7; Gaussian noise's SCF is ~ ln(width) + 0.58
    assert scf.min() > (hi - lo + 1) / 3
    assert scf.min() > 1.3 * noise_scf.mean()


def test_tone_peaks_in_nearest_mel_band() -> None:
    n_mels = 40
    mel = log_mel(power_spectrogram(tone(1000.0)), SR, N_FFT, n_mels)
    assert mel.shape[1] == n_mels
    centres = librosa.mel_frequencies(n_mels + 2, fmin=0, fmax=SR / 2)[1:-1]
    assert np.argmax(mel.mean(axis=0)) == np.argmin(np.abs(centres - 1000.0))


def test_shapes_dtypes_and_dims() -> None:
    y = noise(2.0)
    n_frames = 1 + (len(y) - N_FFT) // HOP_LENGTH
    features = extract_features(y, ALL_TYPES)
    dims = feature_dims(ALL_TYPES)
    assert list(features) == list(FEATURE_TYPES) == list(dims)
    assert dims == {"mel": 40, "sfm": 21, "scf": 21, "spec": N_FFT // 2 + 1, "mfcc": 20}
    for name, values in features.items():
        assert values.dtype == np.float32
        assert values.shape == (n_frames, dims[name])
        assert np.isfinite(values).all()
    assert feature_dims(
        FeatureSettings(types=("scf", "mel"), n_mels=64, sr=44100, fmax=None, view_rates=())
    ) == {
        "scf": 24,
        "mel": 64,
    }


def test_settings_order_is_kept() -> None:
    settings = FeatureSettings(types=("scf", "mel"), n_mels=20, view_rates=())
    features = extract_features(noise(1.0), settings)
    assert list(features) == ["scf", "mel"]
    assert features["mel"].shape[1] == 20


def test_silence_gives_finite_features() -> None:
    features = extract_features(np.zeros(SR, dtype=np.float32), ALL_TYPES)
    for values in features.values():
        assert np.isfinite(values).all()
    # Marsyas' convention for silence: flatness 1, crest 1 (float32 sums over a band's
    # bins leave a few 1e-5 of rounding, which depends on the CPU's summation order)
    np.testing.assert_allclose(features["sfm"], 1.0, atol=1e-4)
    np.testing.assert_allclose(features["scf"], 1.0, atol=1e-4)
    np.testing.assert_allclose(features["mel"], features["mel"][0, 0], atol=1e-4)


def test_one_silent_band_in_music_like_signal_is_finite() -> None:
    # low-passed noise: exact zeros above the cut-off in the spectrum would give log(0)
    power = power_spectrogram(noise(1.0))
    power[:, 200:] = 0
    for values in (
        spectral_flatness(power, SR, N_FFT),
        spectral_crest(power, SR, N_FFT),
        log_mel(power, SR, N_FFT, 40),
        spectrogram(power),
    ):
        assert np.isfinite(values).all()


def test_extract_features_equals_separate_calls() -> None:
    y = noise(3.0, seed=1)
    features = extract_features(y, ALL_TYPES)
    power = power_spectrogram(y, N_FFT, HOP_LENGTH)
    for name, separate in (
        ("mel", relative_log_mel(log_mel(power, SR, N_FFT, 40))),
        ("sfm", spectral_flatness(power, SR, N_FFT)),
        ("scf", spectral_crest(power, SR, N_FFT)),
        ("spec", spectrogram(power)),
    ):
        np.testing.assert_allclose(features[name], separate, rtol=1e-5, atol=1e-6, err_msg=name)


def test_band_features_match_a_plain_loop() -> None:
    power = power_spectrogram(noise(1.0, seed=2)).astype(np.float64) + 1e-10
    bands = [power[:, lo : hi + 1] for lo, hi in marsyas_bands(SR, N_FFT)]
    sfm = np.column_stack([np.exp(np.log(b).mean(axis=1)) / b.mean(axis=1) for b in bands])
    scf = np.column_stack([b.max(axis=1) / b.mean(axis=1) for b in bands])
    power32 = power_spectrogram(noise(1.0, seed=2))
    np.testing.assert_allclose(spectral_flatness(power32, SR, N_FFT), sfm, rtol=5e-4)
    np.testing.assert_allclose(spectral_crest(power32, SR, N_FFT), scf, rtol=5e-4)


def test_wrong_spectrum_size_is_rejected() -> None:
    power = power_spectrogram(noise(1.0))
    with pytest.raises(ValueError, match="expected power of shape"):
        spectral_flatness(power, SR, 2048)


def test_settings_validation_and_round_trip() -> None:
    with pytest.raises(
        ValueError, match=r"unknown feature type.*'chroma'.*mel, sfm, scf, spec, mfcc"
    ):
        FeatureSettings(types=("mel", "chroma"))

    with pytest.raises(ValueError, match="distinct"):
        FeatureSettings(types=("mel", "mel"))
    with pytest.raises(ValueError, match="n_mels must be positive"):
        FeatureSettings(n_mels=0)
    with pytest.raises(ValueError, match="no Marsyas sub-band"):
        FeatureSettings(types=("sfm",), sr=400, fmax=None, view_rates=())
    settings = FeatureSettings(types=("spec", "mel"), n_mels=64, sr=16000, hop_length=256)
    data = json.loads(json.dumps(settings.to_dict()))
    assert data["types"] == ["spec", "mel"]
    assert FeatureSettings.from_dict(data) == settings
    assert FeatureSettings.from_dict({}) == FeatureSettings()
    with pytest.raises(ValueError, match="unknown feature setting"):
        FeatureSettings.from_dict({"n_mfcc": 13})


def test_mfcc_matches_librosa_on_the_same_mel_spectrogram():
    rng = np.random.default_rng(5)
    y = rng.normal(0, 0.1, 22050).astype(np.float32)
    settings = FeatureSettings(types=("mel", "mfcc"), relative_mel=False)
    feats = extract_features(y, settings)
    expected = librosa.feature.mfcc(S=feats["mel"].T, n_mfcc=20, dct_type=2, norm="ortho").T
    assert feats["mfcc"].shape == (feats["mel"].shape[0], 20)
    assert np.allclose(feats["mfcc"], expected, atol=1e-3)


def test_mfcc_statistics_summarise_the_song():
    from kcnn.baseline import MFCCStatistics

    rng = np.random.default_rng(6)
    songs = [{"mfcc": rng.normal(i, 1 + i, size=(200, 20)).astype(np.float32)} for i in range(3)]
    out = MFCCStatistics().fit_transform(songs)
    assert out.shape == (3, 80)
    assert np.allclose(out[:, :20].mean(1), [0, 1, 2], atol=0.2)
    assert np.allclose(out[:, 20:40].mean(1), [1, 2, 3], atol=0.2)


def test_default_features_stop_below_the_band_of_a_16_khz_file() -> None:
    settings = FeatureSettings()
    assert settings.fmax is not None and settings.fmax < 8000
    assert all(
        lo <= hi <= settings.fmax * N_FFT / SR for lo, hi in marsyas_bands(fmax=settings.fmax)
    )
    y = noise(1.0)
    power = power_spectrogram(y)
    above = power.copy()
    above[:, int(8000 * N_FFT / SR) :] *= 1000  # what a 16 kHz copy lacks changes nothing
    for name in settings.types:
        np.testing.assert_allclose(
            spectrum_features(power, settings)[name],
            spectrum_features(above, settings)[name],
            rtol=1e-5,
        )


def test_views_are_the_features_of_resampled_copies() -> None:
    settings = FeatureSettings(view_rates=(8000, 4000))
    y = noise(1.0, seed=3)
    features = extract_features(y, settings)
    assert list(features) == [
        *("mel", "sfm", "scf"),
        *("mel@8000", "sfm@8000", "scf@8000"),
        *("mel@4000", "sfm@4000", "scf@4000"),
    ]
    heard, at_8000, at_4000 = split_views(features)
    assert list(at_8000) == ["mel", "sfm", "scf"]
    copy = soxr.resample(soxr.resample(y, SR, 8000), 8000, SR)[: len(y)]
    expected = spectrum_features(power_spectrogram(copy), settings)
    for name in settings.types:
        np.testing.assert_allclose(at_8000[name], expected[name], rtol=1e-4, atol=1e-4)
        assert at_8000[name].shape == heard[name].shape == at_4000[name].shape
    # noise fills every band of the song as heard; the copy at 8 kHz has nothing above 4 kHz
    above = np.flatnonzero(librosa.mel_frequencies(42, fmax=settings.fmax)[1:-1] > 4200)
    assert heard["mel"][:, above].mean() > at_8000["mel"][:, above].mean() + 5


def test_view_rates_must_lie_below_twice_fmax() -> None:
    with pytest.raises(ValueError, match="view rates"):
        FeatureSettings(fmax=3000.0, view_rates=(8000,))
    with pytest.raises(ValueError, match="view rates"):
        FeatureSettings(view_rates=(4000, 4000))


def test_relative_mel_does_not_change_with_gain() -> None:
    y = noise(2.0, seed=3) * np.linspace(0.2, 1.0, 2 * SR, dtype=np.float32)  # a crescendo
    settings = FeatureSettings(types=("mel",), view_rates=(8000,))
    quiet, loud = extract_features(y, settings), extract_features(8 * y, settings)
    for key in ("mel", "mel@8000"):
        np.testing.assert_allclose(quiet[key], loud[key], atol=1e-3, err_msg=key)
    absolute = FeatureSettings(types=("mel",), relative_mel=False, view_rates=())
    gained = extract_features(8 * y, absolute)["mel"] - extract_features(y, absolute)["mel"]
    np.testing.assert_allclose(gained, np.log(64), atol=1e-3)  # log mel moves by ln(8^2)
    np.testing.assert_allclose(quiet["mel"].mean(axis=1), 0, atol=1e-4)
    # the frame's shape is kept: its bands differ as the absolute log mel's do
    shape = extract_features(y, absolute)["mel"]
    np.testing.assert_allclose(
        np.diff(quiet["mel"], axis=1), np.diff(shape, axis=1), rtol=1e-4, atol=1e-4
    )

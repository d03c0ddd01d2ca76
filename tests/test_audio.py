"""Decoding: formats, channel mixing, resampling, bad files, and lossy/band-limited music."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import soxr
from shared_data import GTZAN_MINI

from kcnn.audio import SAMPLE_RATE, check_length, load_audio
from kcnn.errors import AudioError
from kcnn.features import FeatureSettings, extract_features

CAN_WRITE_MP3 = "MPEG_LAYER_III" in sf.available_subtypes("MP3")


def tone(freq: float, sr: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    """Sine at `freq` Hz, float32 (round(sr * seconds),)."""
    t = np.arange(round(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(y: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the largest magnitude in the spectrum of `y`."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


FORMATS = [
    ("wav", "WAV", "PCM_16"),
    ("au", "AU", "PCM_16"),
    ("flac", "FLAC", "PCM_16"),
    ("ogg", "OGG", "VORBIS"),
    pytest.param(
        "mp3",
        "MP3",
        "MPEG_LAYER_III",
        marks=pytest.mark.skipif(
            not CAN_WRITE_MP3, reason="this libsndfile cannot write MPEG Layer III"
        ),
    ),
]


@pytest.mark.parametrize(("ext", "fmt", "subtype"), FORMATS)
def test_decodes_format_to_mono_float32(tmp_path: Path, ext: str, fmt: str, subtype: str) -> None:
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(440, SAMPLE_RATE, 2.0), SAMPLE_RATE, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32
    assert y.ndim == 1
    assert len(y) == pytest.approx(2.0 * SAMPLE_RATE, rel=0.01)
    assert peak_frequency(y, SAMPLE_RATE) == pytest.approx(440, abs=2)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left = tone(440, SAMPLE_RATE, 1.0, amplitude=0.6)
    right = tone(1000, SAMPLE_RATE, 1.0, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.column_stack([left, right]), SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(path)
    assert y.shape == left.shape
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_native_rate_is_not_resampled(tmp_path: Path) -> None:
    x = tone(440, SAMPLE_RATE, 1.0)
    path = tmp_path / "native.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), x)


@pytest.mark.parametrize("native_sr", [8000, 44100, 48000])
def test_other_rates_are_resampled(tmp_path: Path, native_sr: int) -> None:
    path = tmp_path / f"tone_{native_sr}.wav"
    sf.write(path, tone(1000, native_sr, 1.0), native_sr, subtype="PCM_16")
    y = load_audio(path)
    assert y.dtype == np.float32
    assert len(y) == pytest.approx(SAMPLE_RATE, rel=0.01)
    assert peak_frequency(y, SAMPLE_RATE) == pytest.approx(1000, abs=2)
    assert np.abs(y).max() == pytest.approx(0.5, rel=0.05)


def test_resamples_to_a_requested_rate(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, tone(1000, SAMPLE_RATE, 1.0), SAMPLE_RATE)
    y = load_audio(path, sr=16000)
    assert len(y) == pytest.approx(16000, rel=0.01)
    assert peak_frequency(y, 16000) == pytest.approx(1000, abs=2)


def write_tone_wav(path: Path) -> None:
    sf.write(path, tone(440, SAMPLE_RATE, 1.0), SAMPLE_RATE, subtype="PCM_16")


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_empty(path: Path) -> None:
    path.write_bytes(b"")


def make_text(path: Path) -> None:
    path.write_text("these are not the samples you are looking for\n" * 20)


def make_random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4000))


def make_truncated_wav(path: Path) -> None:
    write_tone_wav(path)
    cut_in_half(path)


def make_truncated_flac(path: Path) -> None:
    sf.write(path, tone(440, SAMPLE_RATE, 1.0), SAMPLE_RATE, format="FLAC")
    cut_in_half(path)


def make_truncated_mp3(path: Path) -> None:
    sf.write(path, tone(440, SAMPLE_RATE, 2.0), SAMPLE_RATE, format="MP3")
    cut_in_half(path)


def make_no_frames(path: Path) -> None:
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)


def make_silent(path: Path) -> None:
    sf.write(path, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)


def make_nearly_silent(path: Path) -> None:  # -100 dBFS: below the -80 dBFS threshold
    sf.write(path, tone(440, SAMPLE_RATE, 1.0, amplitude=1e-5), SAMPLE_RATE, subtype="FLOAT")


def make_nan(path: Path) -> None:
    x = tone(440, SAMPLE_RATE, 1.0)
    x[100] = np.nan
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")


def make_inf(path: Path) -> None:
    x = tone(440, SAMPLE_RATE, 1.0)
    x[100] = np.inf
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")


BAD_FILES = [
    ("missing.wav", None, "does not exist"),
    ("empty.wav", make_empty, "empty file"),
    ("text.wav", make_text, "not an audio file"),
    ("random.wav", make_random_bytes, "not an audio file"),
    ("truncated.wav", make_truncated_wav, "truncated"),
    ("truncated.flac", make_truncated_flac, "truncated"),
    pytest.param(
        "truncated.mp3",
        make_truncated_mp3,
        "truncated",
        marks=pytest.mark.skipif(
            not CAN_WRITE_MP3, reason="this libsndfile cannot write MPEG Layer III"
        ),
    ),
    ("no_frames.wav", make_no_frames, "no samples"),
    ("silent.wav", make_silent, "silent"),
    ("nearly_silent.wav", make_nearly_silent, "silent"),
    ("nan.wav", make_nan, "NaN"),
    ("inf.wav", make_inf, "infinite"),
]


@pytest.mark.parametrize(("name", "make", "cause"), BAD_FILES)
def test_bad_file_raises_audio_error(
    tmp_path: Path, name: str, make: Callable[[Path], None] | None, cause: str
) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: ")
    assert name in str(info.value)
    assert cause in info.value.cause


def test_directory_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not a file"):
        load_audio(tmp_path)


def test_check_length() -> None:
    y = np.zeros(SAMPLE_RATE, dtype=np.float32)
    check_length("song.wav", y, SAMPLE_RATE)
    with pytest.raises(AudioError) as info:
        check_length("song.wav", y, 2 * SAMPLE_RATE)
    assert str(info.value) == "song.wav: too short: 1.00 s, needs at least 2.00 s"
    with pytest.raises(AudioError, match=r"too short: 1\.00 s, needs at least 1\.50 s"):
        check_length("song.wav", np.zeros(8000), 12000, sr=8000)


def test_log_mel_survives_band_limiting_and_lossy_coding(tmp_path: Path) -> None:
    """Groundwork for "a model trained on one kind of audio works on another".

    A real clip is (a) band-limited by a round trip through 8 kHz and (b) coded as lossy
    ogg/vorbis; decoded back to 22,050 Hz, its log mel bands below 3.5 kHz stay close to
    the original's, while the 8 kHz copy has indeed lost everything above 4 kHz.
    """
    clip = GTZAN_MINI / "blues" / "blues.00000.wav"
    if not clip.is_file():
        pytest.skip(f"{clip} is not available")
    y = load_audio(clip)
    band_limited = tmp_path / "band_limited_8k.wav"
    sf.write(band_limited, soxr.resample(y, SAMPLE_RATE, 8000, quality="HQ"), 8000)
    lossy = tmp_path / "lossy.ogg"
    sf.write(lossy, y, SAMPLE_RATE, format="OGG", subtype="VORBIS")

    settings = FeatureSettings(types=("mel",), relative_mel=False)
    centres = librosa.mel_frequencies(settings.n_mels + 2, fmin=0, fmax=SAMPLE_RATE / 2)[1:-1]
    low, high = centres < 3500, centres > 4500
    original = extract_features(y, settings)["mel"]
    mels = {}
    for path in (band_limited, lossy):
        z = load_audio(path)
        assert len(z) == pytest.approx(len(y), abs=2)
        mels[path] = mel = extract_features(z, settings)["mel"]
        n = min(len(mel), len(original))
        a, b = original[:n, low], mel[:n, low]
        band_means_a, band_means_b = a.mean(axis=0), b.mean(axis=0)
        assert np.corrcoef(band_means_a, band_means_b)[0, 1] > 0.99
        assert np.abs(band_means_a - band_means_b).max() < 0.5  # nats, ~2 dB
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95  # frame by frame
    # nats: the 8 kHz copy really has lost its highs
    assert original[:, high].mean() - mels[band_limited][:, high].mean() > 3

"""Frame features (paper 4.2): log mel-spectrogram, per-band spectral flatness and crest.

Pure functions of numpy arrays with explicit `sr` (Hz), `n_fft` and `hop_length`
(samples), in the manner of librosa. Frames are not centred: frame t covers samples
t * hop_length ... t * hop_length + n_fft - 1. Every function takes the power spectrogram
of `power_spectrogram` (|X|^2 of a Hamming-windowed frame, unnormalised, as librosa's
`stft(...) ** 2`), so that `extract_features` computes one FFT for all feature types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cache, lru_cache
from typing import Any

import librosa
import numpy as np
import scipy.fft
import soxr
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from kcnn.audio import RESAMPLE_QUALITY

N_FFT = 1024
"""Frame length (samples), paper 4.2."""
HOP_LENGTH = 512
"""Hop between frames (samples): 50 % of the frame, paper 4.2."""
FEATURE_TYPES = ("mel", "sfm", "scf", "spec", "mfcc")
"""Known feature types: log mel, spectral flatness, spectral crest, log-magnitude spectrum,
and MFCCs (for the baseline a practitioner tries first)."""
N_MFCC = 20
"""MFCCs per frame (librosa's default)."""

EPS = 1e-10
"""Floor added to power before logs and ratios. 16-bit quantisation noise alone gives a
power of about 3e-8 per bin (|X|^2, Hamming, 1,024 points), so only digital silence
reaches the floor; a silent band then has SFM = SCF = 1, as Marsyas defines silence."""


@dataclass(frozen=True)
class FeatureSettings:
    """Which frame features to compute, and how.

    types: feature types, a subset of FEATURE_TYPES, in output order.
    n_mels: mel bands of "mel"; 40 is MIRtoolbox's default (the paper used MIRtoolbox).
    sr: sample rate (Hz) of the decoded audio.
    n_fft: frame length (samples); hop_length: hop between frames (samples).
    fmax: highest frequency (Hz) any feature looks at; None = sr / 2. The default, 7.6 kHz,
    lies below the bandwidth of a file sampled at 16 kHz, so such copies of a song give the
    same features as the original.
    relative_mel: "mel" is each frame's log mel less its mean over the bands, a spectral
    shape that does not change with the recording's level or gain (False: absolute log
    mel, as in the paper). Songs the model never heard are classified better so.
    view_rates: the song is also described as a copy resampled to each of these rates (Hz)
    would be, one "view" each (see `split_views`): a model trained and predicting on every
    view gives the same answers on band-limited copies of a song.
    """

    types: tuple[str, ...] = ("mel", "sfm", "scf")
    n_mels: int = 40
    sr: int = 22050
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    fmax: float | None = 7600.0
    relative_mel: bool = True
    view_rates: tuple[int, ...] = (8000,)

    def __post_init__(self) -> None:
        types = (self.types,) if isinstance(self.types, str) else tuple(self.types)
        object.__setattr__(self, "types", types)
        unknown = [t for t in types if t not in FEATURE_TYPES]
        if unknown:
            raise ValueError(
                f"unknown feature type(s) {', '.join(map(repr, unknown))}; "
                f"valid types: {', '.join(FEATURE_TYPES)}"
            )
        if not types or len(set(types)) != len(types):
            raise ValueError(f"feature types must be non-empty and distinct, got {types}")
        for name in ("n_mels", "sr", "n_fft", "hop_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.fmax is not None and not 0 < self.fmax <= self.sr / 2:
            raise ValueError(f"fmax must lie in (0, {self.sr / 2:g}] Hz, got {self.fmax}")
        rates = tuple(int(r) for r in self.view_rates)
        object.__setattr__(self, "view_rates", rates)
        top = 2 * (self.fmax or self.sr / 2)
        if any(not 0 < r < top for r in rates) or len(set(rates)) != len(rates):
            raise ValueError(
                f"view rates must be distinct and lie in (0, {top:g}) Hz (twice fmax), got {rates}"
            )
        if {"sfm", "scf"} & set(types) and not marsyas_bands(self.sr, self.n_fft, self.fmax):
            raise ValueError(
                f"no Marsyas sub-band fits below {self.fmax or self.sr / 2:g} Hz at sr={self.sr} Hz"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (types as a list)."""
        return {**asdict(self), "types": list(self.types), "view_rates": list(self.view_rates)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSettings:
        """Inverse of `to_dict`; missing keys take their defaults, unknown keys raise ValueError."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown feature setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)


_BLOCK_FRAMES = 128
"""Frames per FFT call in `power_spectrogram`."""


@lru_cache(maxsize=8)
def _hamming(n_fft: int) -> np.ndarray:
    """Symmetric Hamming window, float32 (n_fft,), as Marsyas' Windowing and MATLAB's hamming."""
    window = np.hamming(n_fft).astype(np.float32)
    window.flags.writeable = False
    return window


def power_spectrogram(
    y: np.ndarray, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH
) -> np.ndarray:
    """Power spectrum |X|^2 of Hamming-windowed, uncentred frames of `y` (n_samples,).

    Returns float32 (n_frames, n_fft // 2 + 1), n_frames = 1 + (n_samples - n_fft) // hop_length;
    bin k is at k * sr / n_fft Hz. Raises ValueError if `y` is shorter than one frame.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal of shape (n_samples,), got {y.shape}")
    if len(y) < n_fft:
        raise ValueError(f"signal of {len(y)} samples is shorter than one frame ({n_fft})")
    frames = sliding_window_view(y, n_fft)[::hop_length]  # a strided view, no copy
    window = _hamming(n_fft)
    power = np.empty((len(frames), n_fft // 2 + 1), dtype=np.float32)
    # Blocks of frames keep the temporaries small (cache-resident, reused by malloc) instead
    # of allocating and page-faulting three song-sized arrays per call.
    for start in range(0, len(frames), _BLOCK_FRAMES):
        block = slice(start, start + _BLOCK_FRAMES)
        spectrum = scipy.fft.rfft(frames[block] * window, axis=1, overwrite_x=True)
        np.square(spectrum.real, out=power[block])
        power[block] += np.square(spectrum.imag)
    return power


def _check_bins(power: np.ndarray, n_fft: int) -> None:
    if power.ndim != 2 or power.shape[1] != n_fft // 2 + 1:
        raise ValueError(f"expected power of shape (n_frames, {n_fft // 2 + 1}), got {power.shape}")


@lru_cache(maxsize=8)
def _mel_matrix(sr: int, n_fft: int, n_mels: int, fmax: float | None) -> np.ndarray:
    """librosa's Slaney mel filterbank (0 Hz to fmax), transposed: float32 (n_bins, n_mels)."""
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
    mel = mel.T.astype(np.float32)
    mel.flags.writeable = False
    return mel


def log_mel(
    power: np.ndarray,
    sr: int = 22050,
    n_fft: int = N_FFT,
    n_mels: int = 40,
    fmax: float | None = None,
) -> np.ndarray:
    """Log mel-spectrogram ln(EPS + mel power), float32 (n_frames, n_mels).

    `power`: (n_frames, n_fft // 2 + 1) from `power_spectrogram`. Filters: librosa's
    Slaney-style mel filterbank (area-normalised triangles) from 0 Hz to fmax (default
    sr / 2). Natural log, not dB: ln(x) = 0.2303 * dB, no per-song reference and no top_db
    clipping, so values of different songs are directly comparable.
    """
    _check_bins(power, n_fft)
    mel = power @ _mel_matrix(sr, n_fft, n_mels, fmax)
    mel += EPS
    return np.log(mel, out=mel)


def relative_log_mel(log_mel_power: np.ndarray) -> np.ndarray:
    """Log mel less each frame's mean over the bands, float32 (n_frames, n_mels): a change
    of gain, which adds a constant to a frame, leaves it as it is.

    `log_mel_power`: (n_frames, n_mels) from `log_mel`.
    """
    return log_mel_power - log_mel_power.mean(axis=1, keepdims=True)


@lru_cache(maxsize=8)
def _marsyas_bands(sr: int, n_fft: int, fmax: float | None) -> tuple[tuple[int, int], ...]:
    df = sr / n_fft
    top = n_fft // 2 if fmax is None else min(n_fft // 2, int(fmax / df))
    edges = [1000.0 * 2.0 ** (0.25 * (i - 8)) for i in range(25)]
    bands = []
    for i in range(24):
        lo = int(0.95 * edges[i] / df + 0.5)
        hi = int(1.05 * edges[i + 1] / df + 0.5)
        if hi > top:
            break
        bands.append((lo, hi))
    return tuple(bands)


def marsyas_bands(
    sr: int = 22050, n_fft: int = N_FFT, fmax: float | None = None
) -> list[tuple[int, int]]:
    """Marsyas' MPEG-7 quarter-octave sub-bands as FFT bin ranges [lo, hi], hi INCLUSIVE.

    Nominal edges edge_i = 1000 * 2^((i - 8) / 4) Hz, i = 0..24 (250 Hz ... 16 kHz); band i
    spans 0.95 * edge_i .. 1.05 * edge_(i+1) (neighbours overlap), bin = int(f / df + 0.5),
    df = sr / n_fft. Bands stop at the first one whose upper bin exceeds n_fft / 2 (Nyquist):
    21 bands (0..20) at 22,050 Hz and 1,024 points. This follows Marsyas' SFM.cpp and SCF.cpp
    (marsystems/): they sum over k = il..ih inclusive with bandwidth ih - il + 1, and stop
    at the first band with ih >= n_fft / 2 + 1. With `fmax`, bands stop at the first one
    whose upper bin lies above fmax.
    """
    return list(_marsyas_bands(sr, n_fft, fmax))


@lru_cache(maxsize=8)
def _band_means(sr: int, n_fft: int, fmax: float | None) -> tuple[slice, np.ndarray]:
    """Bins spanned by all bands, and the matrix that averages them per band.

    Returns (span, M) with M float32 (n_span_bins, n_bands), M[k, b] = 1 / width_b if bin
    span.start + k lies in band b: power[:, span] @ M gives the per-band arithmetic mean.
    """
    bands = _marsyas_bands(sr, n_fft, fmax)
    if not bands:
        raise ValueError(f"no Marsyas sub-band fits below Nyquist at sr={sr} Hz, n_fft={n_fft}")
    start, stop = bands[0][0], bands[-1][1] + 1
    means = np.zeros((stop - start, len(bands)), dtype=np.float32)
    for b, (lo, hi) in enumerate(bands):
        means[lo - start : hi + 1 - start, b] = 1.0 / (hi - lo + 1)
    means.flags.writeable = False
    return slice(start, stop), means


def spectral_flatness(
    power: np.ndarray, sr: int = 22050, n_fft: int = N_FFT, fmax: float | None = None
) -> np.ndarray:
    """Spectral flatness per Marsyas sub-band, float32 (n_frames, n_bands), in (0, 1].

    Geometric mean / arithmetic mean of EPS + power over the band's bins: ~1 for noise,
    ~0 for a pure tone, 1 for a silent band. `power`: (n_frames, n_fft // 2 + 1).
    """
    _check_bins(power, n_fft)
    span, means = _band_means(sr, n_fft, fmax)
    band_power = power[:, span] + np.float32(EPS)
    arithmetic = band_power @ means
    geometric = np.exp(np.log(band_power, out=band_power) @ means)
    return geometric / arithmetic


def spectral_crest(
    power: np.ndarray, sr: int = 22050, n_fft: int = N_FFT, fmax: float | None = None
) -> np.ndarray:
    """Spectral crest factor per Marsyas sub-band, float32 (n_frames, n_bands), >= 1.

    Max / arithmetic mean of EPS + power over the band's bins (as Marsyas' SCF.cpp: on the
    power spectrum): 1 for a flat or silent band, up to the band's width in bins for a pure
    tone. `power`: (n_frames, n_fft // 2 + 1).
    """
    _check_bins(power, n_fft)
    span, means = _band_means(sr, n_fft, fmax)
    band_power = power[:, span] + np.float32(EPS)
    # Bands overlap, so reduce over [lo_0, hi_0 + 1), [hi_0 + 1, lo_1) (discarded), [lo_1, ...
    # the last band runs to the end of the span.
    bounds = np.array(_marsyas_bands(sr, n_fft, fmax)) - span.start
    starts = np.column_stack([bounds[:, 0], bounds[:, 1] + 1]).ravel()[:-1]
    peak = np.maximum.reduceat(band_power, starts, axis=1)[:, ::2]
    return peak / (band_power @ means)


def spectrogram(power: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    """Log-magnitude spectrogram ln(sqrt(EPS + power)) of the first `n_bins` bins (default
    all), float32 (n_frames, n_bins)."""
    spec = power[:, :n_bins] + np.float32(EPS)
    np.log(spec, out=spec)
    spec *= np.float32(0.5)
    return spec


def mfcc(log_mel_power: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCCs: orthonormal DCT-II of a log mel-spectrogram, float32 (n_frames, n_mfcc).

    `log_mel_power`: (n_frames, n_mels) from `log_mel`; as librosa.feature.mfcc, but on
    the natural log instead of dB (a constant factor of 10 / ln 10).
    """
    return scipy.fft.dct(log_mel_power, type=2, norm="ortho", axis=1)[:, :n_mfcc]


DEFAULT_SETTINGS = FeatureSettings()


def spectrum_bins(settings: FeatureSettings) -> int:
    """FFT bins from 0 Hz up to settings.fmax (all n_fft // 2 + 1 without fmax)."""
    if settings.fmax is None:
        return settings.n_fft // 2 + 1
    return int(settings.fmax * settings.n_fft / settings.sr) + 1


def feature_dims(settings: FeatureSettings = DEFAULT_SETTINGS) -> dict[str, int]:
    """Feature type -> values per frame, for `settings.types` in order."""
    n_bands = len(marsyas_bands(settings.sr, settings.n_fft, settings.fmax))
    dims = {
        "mel": settings.n_mels,
        "sfm": n_bands,
        "scf": n_bands,
        "spec": spectrum_bins(settings),
        "mfcc": min(N_MFCC, settings.n_mels),
    }
    return {t: dims[t] for t in settings.types}


def feature_keys(settings: FeatureSettings) -> list[str]:
    """The keys of `extract_features`' output, in order: the types, then "type@rate"."""
    return [*settings.types, *(f"{t}@{r}" for r in settings.view_rates for t in settings.types)]


def split_views(features: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Split `extract_features`' output into views: the song as heard, then one per view
    rate, each {type: (n_frames, dim)} under the plain type names."""
    types = [k for k in features if "@" not in k]
    rates = dict.fromkeys(k.partition("@")[2] for k in features if "@" in k)
    return [{t: features[t] for t in types}] + [
        {t: features[f"{t}@{rate}"] for t in types} for rate in rates
    ]


def resampled_copy(y: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """`y` (n_samples,) at `sr` Hz as a copy of it at `rate` Hz reads back at `sr` Hz
    (nothing above rate / 2), float32 (n_samples,)."""
    copy = soxr.resample(soxr.resample(y, sr, rate, RESAMPLE_QUALITY), rate, sr, RESAMPLE_QUALITY)
    out = np.zeros(len(y), dtype=np.float32)
    out[: min(len(y), len(copy))] = copy[: len(y)]
    return out


def extract_features(
    y: np.ndarray, settings: FeatureSettings = DEFAULT_SETTINGS
) -> dict[str, np.ndarray]:
    """Frame features of mono signal `y` (n_samples,) at `settings.sr` Hz.

    Returns {type: float32 (n_frames, dim)} for `settings.types` in order, then the same
    for every view rate as {"type@rate": ...}, the features of `resampled_copy(y, sr, rate)`
    (`split_views` splits them). Raises ValueError if `y` is shorter than one frame.
    Matrix products run on one thread: BLAS rounds differently with more, and the features
    must not depend on how many threads or processes compute them.
    """
    s = settings
    with _threadpools().limit(limits=1, user_api="blas"):
        features = spectrum_features(power_spectrogram(y, s.n_fft, s.hop_length), s)
        for rate in s.view_rates:
            copy = power_spectrogram(resampled_copy(y, s.sr, rate), s.n_fft, s.hop_length)
            features.update((f"{t}@{rate}", v) for t, v in spectrum_features(copy, s).items())
    return features


@cache
def _threadpools() -> ThreadpoolController:
    """The thread pools of the libraries loaded (BLAS among them); inspected once."""
    return ThreadpoolController()


def spectrum_features(power: np.ndarray, settings: FeatureSettings) -> dict[str, np.ndarray]:
    """{type: float32 (n_frames, dim)} of one power spectrogram, for `settings.types`."""
    s = settings
    mel = cache(lambda: log_mel(power, s.sr, s.n_fft, s.n_mels, s.fmax))
    compute = {
        "mel": (lambda: relative_log_mel(mel())) if s.relative_mel else mel,
        "sfm": lambda: spectral_flatness(power, s.sr, s.n_fft, s.fmax),
        "scf": lambda: spectral_crest(power, s.sr, s.n_fft, s.fmax),
        "spec": lambda: spectrogram(power, spectrum_bins(s)),
        "mfcc": lambda: mfcc(mel()),
    }
    return {t: compute[t]().astype(np.float32, copy=False) for t in settings.types}

"""Decoding: any audio file soundfile (libsndfile) reads -> mono float32 samples at one rate.

Formats: wav, au, aiff, flac, ogg/vorbis, mp3 and the rest of libsndfile's list. There is
no audioread fallback: without ffmpeg or gstreamer, audioread only reads wav/aiff/au,
which libsndfile already covers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kcnn.errors import AudioError

SAMPLE_RATE = 22050
"""Sample rate (Hz) that every song is decoded to (GTZAN's rate)."""

SILENCE_PEAK = 1e-4
"""Peak amplitude (full scale = 1) below which a file counts as silent: -80 dBFS."""

SHORT_READ_TOLERANCE = 0.01
"""Fraction of the header's frame count a decoder may fall short by before the file counts
as truncated (MP3 frame counts without a Xing header are estimates)."""

# libsndfile's header log reports a data chunk larger than the file holds as
# "data : 88200 (should be 44078)" (WAV), "Data Size : ..." (AU), "SSND : ..." (AIFF).
_DATA_SIZE_MISMATCH = re.compile(
    r"^\s*(?:data|Data Size|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE
)
# Sizes that streaming writers put in a header whose length they do not know yet.
_PLACEHOLDER_SIZES = {0xFFFFFFFF, 0x7FFFFFFF}


def _libsndfile_message(err: RuntimeError) -> str:
    """libsndfile's own words for `err`, without its "Error : " prefix and full stop."""
    message = getattr(err, "error_string", None) or str(err)
    return message.removeprefix("Error : ").rstrip(".")


def _truncation(log: str) -> str | None:
    """Cause if libsndfile's header log shows a data chunk cut short, else None."""
    for match in _DATA_SIZE_MISMATCH.finditer(log):
        claimed, actual = int(match[1]), int(match[2])
        if actual < claimed and claimed not in _PLACEHOLDER_SIZES:
            return f"truncated: header promises {claimed} bytes of audio, file holds {actual}"
    return None


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Samples (n_samples, n_channels) float32 and native rate (Hz); AudioError if unreadable."""
    try:
        f = sf.SoundFile(path)
    except RuntimeError as err:  # LibsndfileError is a RuntimeError
        detail = _libsndfile_message(err)
        raise AudioError(
            path, f"not an audio file, or an unsupported or corrupt one ({detail})"
        ) from err
    with f:
        if (cause := _truncation(f.extra_info)) is not None:
            raise AudioError(path, cause)
        claimed = f.frames
        try:
            data = f.read(dtype="float32", always_2d=True)
        except RuntimeError as err:
            raise AudioError(
                path, f"truncated or corrupt: decoding failed midway ({_libsndfile_message(err)})"
            ) from err
        if len(data) < claimed * (1 - SHORT_READ_TOLERANCE):
            raise AudioError(
                path,
                f"truncated: decoded {len(data) / f.samplerate:.2f} s of the "
                f"{claimed / f.samplerate:.2f} s the header promises",
            )
        return data, f.samplerate


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to mono float32 samples at `sr` Hz, shape (n_samples,).

    Channels are averaged; the signal is resampled (soxr, "HQ") only if the file's rate
    differs from `sr`. Raises AudioError naming the file and the cause for a missing,
    empty, non-audio, corrupt, truncated, sample-less, silent (peak < -80 dBFS) file or
    one with NaN/inf samples.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file does not exist")
    if not path.is_file():
        raise AudioError(path, "not a file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    data, native_sr = _decode(path)
    if data.size == 0:
        raise AudioError(path, "no samples (empty or truncated audio data)")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError(path, "contains NaN or infinite samples")
    peak = float(np.abs(y).max())
    if peak < SILENCE_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioError(path, f"silent ({level}, below -80 dBFS)")
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def check_length(path: str | Path, y: np.ndarray, min_samples: int, sr: int = SAMPLE_RATE) -> None:
    """Raise AudioError if `y` (samples at `sr` Hz) holds fewer than `min_samples` samples."""
    if len(y) < min_samples:
        raise AudioError(
            path, f"too short: {len(y) / sr:.2f} s, needs at least {min_samples / sr:.2f} s"
        )

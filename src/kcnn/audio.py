"""Decoding: any audio file soundfile (libsndfile) reads -> mono float32 samples at one rate.

Formats: wav, au, aiff, flac, ogg/vorbis, mp3 and the rest of libsndfile's list. There is
no audioread fallback: without ffmpeg or gstreamer, audioread only reads wav/aiff/au,
which libsndfile already covers.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from kcnn.errors import AudioError

SAMPLE_RATE = 22050
"""Sample rate (Hz) that every song is decoded to (GTZAN's rate)."""

MAX_DURATION = 30 * 60.0
"""Longest audio (seconds) decoded by default; a longer file is an AudioError."""

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
"""Sample rates (Hz) kcnn reads; a file at another rate is an AudioError."""

MAX_SAMPLES_PER_SECOND = 8 * 48_000
"""Samples (all channels) a file may hold per second of the duration limit: 8 channels at
48 kHz, or stereo at 192 kHz. Bounds the decoding work whatever the header claims."""

BLOCK_FRAMES = 2**16
"""Frames decoded at a time."""

RESAMPLE_QUALITY = "HQ"
"""soxr's quality setting for every resampling."""

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


def _open(path: Path) -> BinaryIO:
    """Open `path` for reading; AudioError unless it is a readable, non-empty regular file.

    Opened without blocking and checked on the open descriptor, so a named pipe is
    reported rather than waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        raise AudioError(path, "file does not exist") from err
    except PermissionError as err:
        raise AudioError(path, "permission denied") from err
    except OSError as err:
        raise AudioError(path, f"cannot be opened ({err.strerror})") from err
    mode = os.fstat(fd)
    if not stat.S_ISREG(mode.st_mode):
        os.close(fd)
        if stat.S_ISDIR(mode.st_mode):
            raise AudioError(path, "a folder, not a file")
        if stat.S_ISFIFO(mode.st_mode):
            raise AudioError(path, "a named pipe, not a regular file")
        raise AudioError(path, "not a regular file (a device or socket)")
    if mode.st_size == 0:
        os.close(fd)
        raise AudioError(path, "empty file (0 bytes)")
    return os.fdopen(fd, "rb")


def _check_header(path: Path, f: sf.SoundFile, max_duration: float) -> None:
    """AudioError if the header's rate, duration or amount of audio is beyond kcnn's limits."""
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            path,
            f"sample rate {f.samplerate} Hz is outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
            "that kcnn reads",
        )
    if f.frames > max_duration * f.samplerate:
        raise AudioError(
            path,
            f"too long: {f.frames / f.samplerate / 60:.1f} min, the limit is "
            f"{max_duration / 60:.3g} min",
        )
    if f.frames * f.channels > max_duration * MAX_SAMPLES_PER_SECOND:
        raise AudioError(
            path,
            f"too much audio to decode: {f.channels} channels at {f.samplerate} Hz for "
            f"{f.frames / f.samplerate / 60:.1f} min",
        )


def _decode(path: Path, handle: BinaryIO, sr: int, max_duration: float) -> np.ndarray:
    """Mono float32 samples at `sr` Hz, decoded, downmixed and resampled block by block."""
    try:
        f = sf.SoundFile(handle)
    except RuntimeError as err:  # LibsndfileError is a RuntimeError
        detail = _libsndfile_message(err)
        raise AudioError(
            path, f"not an audio file, or an unsupported or corrupt one ({detail})"
        ) from err
    with f:
        _check_header(path, f, max_duration)
        if (cause := _truncation(f.extra_info)) is not None:
            raise AudioError(path, cause)
        resampler = (
            None
            if f.samplerate == sr
            else soxr.ResampleStream(f.samplerate, sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        )
        parts: list[np.ndarray] = []
        decoded, peak = 0, 0.0
        try:
            while len(block := f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)):
                decoded += len(block)
                mono = block[:, 0] if f.channels == 1 else block.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise AudioError(path, "contains NaN or infinite samples")
                peak = max(peak, float(np.abs(mono).max()))
                parts.append(mono if resampler is None else resampler.resample_chunk(mono))
        except RuntimeError as err:
            raise AudioError(
                path, f"truncated or corrupt: decoding failed midway ({_libsndfile_message(err)})"
            ) from err
        if decoded < f.frames * (1 - SHORT_READ_TOLERANCE):
            raise AudioError(
                path,
                f"truncated: decoded {decoded / f.samplerate:.2f} s of the "
                f"{f.frames / f.samplerate:.2f} s the header promises",
            )
        if decoded == 0:
            raise AudioError(path, "no samples (empty or truncated audio data)")
    if peak < SILENCE_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioError(path, f"silent ({level}, below -80 dBFS)")
    if resampler is not None:
        parts.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(parts)


def load_audio(
    path: str | Path, sr: int = SAMPLE_RATE, max_duration: float = MAX_DURATION
) -> np.ndarray:
    """Decode an audio file to mono float32 samples at `sr` Hz, shape (n_samples,).

    Channels are averaged; the signal is resampled (soxr, "HQ") only if the file's rate
    differs from `sr`. Decoding goes block by block, so memory holds little more than the
    result. Raises AudioError naming the file and the cause for a missing, unreadable,
    non-regular, empty, non-audio, corrupt, truncated, sample-less or silent (peak < -80
    dBFS) file, one with NaN/inf samples, a sample rate outside 4-384 kHz, or one whose
    header declares more than `max_duration` seconds (checked before decoding).
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if not max_duration > 0:
        raise ValueError(f"max_duration must be positive, got {max_duration}")
    path = Path(path)
    with _open(path) as handle:
        return _decode(path, handle, sr, max_duration)


def check_length(path: str | Path, y: np.ndarray, min_samples: int, sr: int = SAMPLE_RATE) -> None:
    """Raise AudioError if `y` (samples at `sr` Hz) holds fewer than `min_samples` samples."""
    if len(y) < min_samples:
        raise AudioError(
            path, f"too short: {len(y) / sr:.2f} s, needs at least {min_samples / sr:.2f} s"
        )

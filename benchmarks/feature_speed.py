"""Feature extraction speed, one core: kcnn against a plain librosa reference.

Both pipelines decode the same files to 22,050 Hz mono and compute the same frame features
(1,024-point Hamming frames, hop 512, uncentred): a 40-band log mel-spectrogram and
spectral flatness and crest in Marsyas' 21 quarter-octave sub-bands. The librosa reference
is written the way a librosa user would: librosa.load, librosa.feature.melspectrogram, and
a second librosa.stft for the sub-band statistics.

    python benchmarks/feature_speed.py [--data DIR] [--files N]

Prints a markdown table: audio seconds, wall seconds, CPU seconds, times real time per core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: set before numpy (and its BLAS) is loaded

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from kcnn.audio import load_audio  # noqa: E402
from kcnn.features import FeatureSettings, extract_features, feature_dims  # noqa: E402

SR, N_FFT, HOP, N_MELS = 22050, 1024, 512, 40
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gtzan-mini"
SETTINGS = FeatureSettings(types=("mel", "sfm", "scf"), n_mels=N_MELS, sr=SR)


def kcnn_features(path: Path) -> tuple[int, dict[str, np.ndarray]]:
    """kcnn: decode, one shared power spectrogram -> mel, sfm, scf; (n_samples, features)."""
    y = load_audio(path, sr=SR)
    return len(y), extract_features(y, SETTINGS)


def librosa_bands() -> list[tuple[int, int]]:
    """Marsyas sub-bands as inclusive FFT bin ranges, written out as a librosa user would."""
    df = SR / N_FFT
    edges = 1000.0 * 2.0 ** (0.25 * (np.arange(25) - 8))
    bands = [
        (int(0.95 * edges[i] / df + 0.5), int(1.05 * edges[i + 1] / df + 0.5)) for i in range(24)
    ]
    return [(lo, hi) for lo, hi in bands if hi <= N_FFT // 2]


BANDS = librosa_bands()


def librosa_features(path: Path) -> tuple[int, dict[str, np.ndarray]]:
    """librosa reference: load, melspectrogram, and a separate stft for per-band SFM / SCF."""
    y, _ = librosa.load(path, sr=SR, mono=True)
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, window="hamming", center=False
    )
    power = (
        np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, window="hamming", center=False)) ** 2
    )
    sfm, scf = [], []
    for lo, hi in BANDS:
        band = power[lo : hi + 1] + 1e-10
        mean = band.mean(axis=0)
        sfm.append(np.exp(np.log(band).mean(axis=0)) / mean)
        scf.append(band.max(axis=0) / mean)
    features = {"mel": np.log(mel.T + 1e-10), "sfm": np.array(sfm).T, "scf": np.array(scf).T}
    return len(y), features


def run(
    extract: Callable[[Path], tuple[int, dict[str, np.ndarray]]], paths: Sequence[Path]
) -> tuple[float, float, float]:
    """(audio seconds, wall seconds, CPU seconds) of `extract` over `paths`."""
    samples = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        samples += extract(path)[0]
    return samples / SR, time.perf_counter() - wall, time.process_time() - cpu


def agreement(path: Path) -> str:
    """How close the two pipelines' features are on one file (they differ in the window:
    kcnn's symmetric Hamming as Marsyas/MATLAB, librosa's periodic one)."""
    ours, theirs = kcnn_features(path)[1], librosa_features(path)[1]
    parts = []
    for name in SETTINGS.types:
        a, b = ours[name], theirs[name]
        corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        parts.append(
            f"{name}: correlation {corr:.4f}, median |diff| {np.median(np.abs(a - b)):.3g}"
        )
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of audio files")
    parser.add_argument(
        "--files", type=int, default=None, help="use the first N files (default all)"
    )
    args = parser.parse_args(argv)

    paths = sorted(
        p
        for p in args.data.rglob("*")
        if p.suffix.lower() in {".wav", ".au", ".flac", ".ogg", ".mp3"}
    )
    paths = paths[: args.files]
    if not paths:
        parser.error(f"no audio files in {args.data}")
    for path in paths:  # both pipelines then find the files in the page cache
        path.read_bytes()

    with threadpool_limits(limits=1):
        kcnn_features(paths[0])  # warm-up: imports, filterbank caches, FFT plans
        librosa_features(paths[0])
        results = {
            "kcnn (load_audio + extract_features)": run(kcnn_features, paths),
            "librosa (load + melspectrogram + stft SFM/SCF)": run(librosa_features, paths),
        }

    dims = ", ".join(f"{name} ({dim})" for name, dim in feature_dims(SETTINGS).items())
    print(f"{len(paths)} files from {args.data}, one thread, features: {dims}\n")
    print("| pipeline | audio s | wall s | CPU s | x real time per core |")
    print("|---|---:|---:|---:|---:|")
    speeds = []
    for name, (audio, wall, cpu) in results.items():
        speeds.append(audio / wall)
        print(f"| {name} | {audio:.1f} | {wall:.3f} | {cpu:.3f} | {audio / wall:,.0f} |")
    print(f"\nkcnn / librosa speed: {speeds[0] / speeds[1]:.2f}x")
    print(f"agreement on {paths[0].name}: {agreement(paths[0])}")


if __name__ == "__main__":
    main()

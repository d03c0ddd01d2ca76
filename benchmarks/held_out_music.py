"""How a default model does on music it never heard, and on band-limited copies of it.

Trains with README's command (`kcnn train gtzan-mini --out MODEL --seed S`: held-out report,
then the final model fitted on all 100 clips) for each seed, and MFCC statistics + SVM on the
same 100 clips. Scores both on gtzan-snippets (382 excerpts of 2-3 s of other GTZAN clips),
on copies of them resampled to 16 kHz and to 8 kHz and encoded as 32 kbit/s MP3, and prints
the agreement between the labels of the originals and of their copies. Prints a markdown
table, mean ± standard deviation over seeds.

    python benchmarks/held_out_music.py [--seeds 0 1 2] [-- extra kcnn train options]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kcnn.audio import load_audio
from kcnn.baseline import MFCCStatistics
from kcnn.extraction import Features, extract_batch
from kcnn.features import FeatureSettings
from kcnn.model import MusicModel
from kcnn.svm import SVMClassifier

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RATES = (16000, 8000)
MP3_LEVEL = 0.85
"""libsndfile's MP3 compression level giving 32 kbit/s (constant bit rate) at 22.05 kHz."""
MFCC_SETTINGS = FeatureSettings(types=("mfcc",), fmax=None, view_rates=())
"""The baseline as a practitioner computes it: MFCCs of the whole band."""


def genres(paths: Sequence[Path]) -> np.ndarray:
    return np.array([p.parent.name for p in paths])


def copies(paths: Sequence[Path], rate: int, out: Path) -> list[Path]:
    """16-bit WAV copies of `paths` resampled to `rate` Hz (nothing above rate / 2)."""
    made = []
    for path in paths:
        copy = out / str(rate) / path.parent.name / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        sf.write(copy, soxr.resample(load_audio(path), 22050, rate), rate, subtype="PCM_16")
        made.append(copy)
    return made


def mp3_copies(paths: Sequence[Path], out: Path) -> list[Path]:
    """32 kbit/s MP3 copies of `paths` (LAME through libsndfile: it also drops the upper band)."""
    made = []
    for path in paths:
        copy = (out / "mp3" / path.parent.name / path.name).with_suffix(".mp3")
        copy.parent.mkdir(parents=True, exist_ok=True)
        sf.write(
            copy,
            load_audio(path),
            22050,
            format="MP3",
            compression_level=MP3_LEVEL,
            bitrate_mode="CONSTANT",
        )
        made.append(copy)
    return made


def features(paths: Sequence[Path], settings: FeatureSettings, min_frames: int) -> list[Features]:
    batch = extract_batch(paths, settings, min_frames, progress=False)
    if batch.skipped:
        raise SystemExit(f"cannot use {batch.skipped[0]}")
    return batch.features


def scores(predict, sets: dict[str, list[Features]], truth: np.ndarray) -> dict[str, float]:
    """Accuracy on every set, and agreement of each copy with the original."""
    labels = {name: predict(songs) for name, songs in sets.items()}
    out = {f"accuracy, {name}": float((lab == truth).mean()) for name, lab in labels.items()}
    for name in sets:
        if name != "original":
            out[f"agreement, {name}"] = float((labels[name] == labels["original"]).mean())
    return out


def train(seed: int, out: Path, extra: list[str]) -> float:
    """Run README's `kcnn train` command; returns its wall time (s)."""
    cmd = [sys.executable, "-m", "kcnn.cli.main", "train", str(DATA / "gtzan-mini")]
    cmd += ["--out", str(out), "--seed", str(seed), "--no-cache", "-q", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("extra", nargs="*", help="options passed on to kcnn train (after --)")
    args = parser.parse_args()
    training = sorted((DATA / "gtzan-mini").glob("*/*.wav"))
    snippets = sorted((DATA / "gtzan-snippets").glob("*/*.wav"))
    truth = genres(snippets)
    results: dict[str, list[dict[str, float]]] = {"kcnn, SVM": [], "kcnn, softmax": []}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"original": snippets}
        paths |= {f"{r // 1000} kHz": copies(snippets, r, Path(tmp)) for r in RATES}
        paths["MP3 32 kbit/s"] = mp3_copies(snippets, Path(tmp))
        mfcc = MFCCStatistics()
        baseline = SVMClassifier().fit(
            mfcc.transform(features(training, MFCC_SETTINGS, 1)), genres(training)
        )
        mfcc_sets = {k: features(v, MFCC_SETTINGS, 1) for k, v in paths.items()}
        results["MFCC statistics + SVM"] = [
            scores(lambda s: baseline.predict(mfcc.transform(s)), mfcc_sets, truth)
        ]
        for seed in args.seeds:
            model_dir = Path(tmp) / f"model-{seed}"
            times.append(train(seed, model_dir, args.extra))
            model = MusicModel.load(model_dir)
            sets = {
                k: features(v, model.feature_settings, model.min_frames) for k, v in paths.items()
            }
            for classifier in ("svm", "softmax"):
                name = "kcnn, SVM" if classifier == "svm" else "kcnn, softmax"
                results[name].append(
                    scores(lambda s, c=classifier, m=model: m.predict(s, c), sets, truth)
                )
            print(f"seed {seed}: trained in {times[-1]:.0f} s", file=sys.stderr)
    columns = list(results["MFCC statistics + SVM"][0])
    print(
        f"Trained on gtzan-mini (100 clips; `kcnn train` {' '.join(args.extra) or 'defaults'}, "
        f"seeds {' '.join(map(str, args.seeds))}); scored on gtzan-snippets (382 clips) and "
        "copies resampled to 16 and 8 kHz or encoded as 32 kbit/s MP3.\n"
    )
    print("| method | " + " | ".join(columns) + " |")
    print("|---" + "|---:" * len(columns) + "|")
    for name, runs in results.items():
        cells = []
        for column in columns:
            values = [r[column] for r in runs]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.3f}{spread}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n`kcnn train` wall time: {statistics.mean(times):.0f} s (mean of {len(times)})")


if __name__ == "__main__":
    main()

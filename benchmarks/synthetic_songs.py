"""A large labelled collection made from a small one: mixtures of two clips, sped up or down.

    python benchmarks/synthetic_songs.py --out DIR --n 20000 [--seconds 10] [--seed 0]

Song k mixes an excerpt of one clip of DATA (gtzan-mini by default), whose label it takes,
with a quieter excerpt of another clip of any label; each is played faster or slower (by
resampling: pitch and tempo change together, 0.85-1.18 times), and the mixture is
normalised. The songs are 16-bit mono WAV at 22,050 Hz in a folder per label,
`DIR/<label>/synth.<k>.wav`, with `DIR/songs.csv` (path,label) listing them in order, so
that its first N lines are a collection of N songs. Song k depends only on the seed and k:
a larger collection holds the smaller ones, and files already made are not made again.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kcnn.atomic import atomic_file, write_text
from kcnn.audio import RESAMPLE_QUALITY, load_audio
from kcnn.dataset import read_labelled

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gtzan-mini"
SR = 22050
SPEEDS = (0.85, 1.18)
"""Range of the speed-up of each clip (below 1: slower and lower)."""
SECOND_CLIP_GAIN = (0.2, 0.6)
"""Range of the gain of the second clip, relative to the first."""


def excerpt(clip: np.ndarray, seconds: float, speed: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of `clip` played at `speed`, from a random start (looped if too short)."""
    length = round(seconds * SR)
    needed = int(np.ceil(length * speed)) + 1
    start = int(rng.integers(0, max(1, len(clip) - needed)))
    part = np.resize(clip[start:], needed) if len(clip) - start < needed else clip[start:]
    fast = soxr.resample(part[:needed], SR * speed, SR, RESAMPLE_QUALITY)
    return np.resize(fast, length).astype(np.float32)


def song(clips: list[np.ndarray], first: int, seconds: float, seed: int, k: int) -> np.ndarray:
    """Song `k`: clip `first` mixed with another, both at their own speed, normalised."""
    rng = np.random.default_rng([seed, k])
    other = int(rng.integers(len(clips) - 1))
    other += other >= first
    speeds = rng.uniform(*SPEEDS, size=2)
    mix = excerpt(clips[first], seconds, speeds[0], rng) + rng.uniform(*SECOND_CLIP_GAIN) * excerpt(
        clips[other], seconds, speeds[1], rng
    )
    return mix * (rng.uniform(0.3, 0.9) / max(float(np.abs(mix).max()), 1e-6))


def make(data: Path, out: Path, n: int, seconds: float = 10.0, seed: int = 0) -> Path:
    """Make songs 0..n-1 in `out` (those not there yet); returns the manifest `out/songs.csv`."""
    source = read_labelled(data)
    clips = [load_audio(path, SR) for path in source.paths]
    rows = []
    for k in range(n):
        first = int(np.random.default_rng([seed, k, 1]).integers(len(clips)))
        label = source.labels[first]
        path = out / label / f"synth.{k:05d}.wav"
        if not path.is_file():
            with atomic_file(path) as tmp:
                sf.write(tmp, song(clips, first, seconds, seed, k), SR, "PCM_16", format="WAV")
        rows.append((f"{label}/{path.name}", label))
    manifest = out / "songs.csv"
    with atomic_file(manifest) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return manifest


def first_songs(manifest: Path, n: int) -> Path:
    """A manifest of the first `n` songs of `manifest`, beside it: `songs-<n>.csv`."""
    lines = manifest.read_text(encoding="utf-8").splitlines()
    if len(lines) - 1 < n:
        raise SystemExit(f"{manifest}: {len(lines) - 1} songs, fewer than {n}")
    out = manifest.with_name(f"songs-{n}.csv")
    write_text(out, "\n".join(lines[: n + 1]) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled clips to mix")
    parser.add_argument("--out", type=Path, required=True, help="folder of the songs made")
    parser.add_argument("--n", type=int, required=True, help="number of songs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each song")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = make(args.data, args.out, args.n, args.seconds, args.seed)
    print(f"{args.n} songs in {args.out}, listed in {manifest}")


if __name__ == "__main__":
    main()

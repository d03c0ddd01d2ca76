"""KCNN training and prediction speed: the first convolution plain or gathered, batches
drawn at random or by crop length, k-max pooling's positions found by `torch.topk` or by
the CPU scan (`kcnn.kmax`).

Random words of gtzan-mini's size (100 songs of about 200 words, 3 feature types of 256
words, lookup tables of 48 dimensions) through the default network (window 5, 500
convolution units, 5-max pooling, 300 hidden units): training epochs of random crops of
every song in batches, as `KCNNClassifier` trains with its defaults (8 crops of 8 to 32
words, batches of 32), and prediction batches of 256 windows of 64 words. Each setting
runs in turn, `--repeats` times; the fastest run counts.
Times are this process's CPU time, steadier than the wall clock when other jobs share the
cores (with one thread the two agree on an idle machine); `--wall` times by the wall clock.

    python benchmarks/network_speed.py [--threads 1] [--repeats 3] [--wall]

Prints markdown tables: time per epoch and per song-epoch; the first convolution's
multiply-adds and achieved GFLOP/s; forward and backward times of each part of the network.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from kcnn.config import KCNNSettings, WordsSettings
from kcnn.kmax import Positions, kmax_pool, topk_positions
from kcnn.network import KCNN, KCNNConfig
from kcnn.training import length_batches, pad_batch, random_crops

N_SONGS, SONG_WORDS, CLASSES = 100, (180, 220), 10
CROPS, CROP_WORDS = KCNNSettings.crops_per_song, KCNNSettings.crop_words
BATCH = KCNNSettings.batch_size
N_WORDS, DIMS = (WordsSettings.n_words,) * 3, (WordsSettings.n_components,) * 3
PREDICT_BATCH, PREDICT_WORDS = 256, KCNNSettings.predict_window
PARTS = ("padding", "first conv", "k-max pooling", "hidden + softmax", "optimizer")


def random_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches as training drew them before `length_batches`: a random permutation, cut."""
    order = rng.permutation(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def conv_flops(net: KCNN, words: torch.Tensor, backward: bool) -> float:
    """Floating-point operations of the first convolution on `words`, as it computes them."""
    conv, dims, n_types = net.convs[0], net.config.embed_dims, len(net.config.embed_dims)
    per_unit = conv.out_channels * net.config.window
    positions = words.shape[0] * words.shape[2]
    if net.first_path(words) == "plain":  # backward: the input and weight gradients
        return 2 * positions * sum(dims) * per_unit * (3 if backward else 1)
    # forming the products (backward: their gradients to W and M); adding those read
    products = 2 * sum(n * d for n, d in zip(net.config.n_words, dims, strict=True)) * per_unit
    sums = positions * n_types * per_unit
    return 3 * products + 2 * sums if backward else products + sums


class Clock:
    """Seconds spent in named parts of the work."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.seconds: dict[str, float] = defaultdict(float)
        self.last = now()

    def lap(self, part: str) -> None:
        now = self.now()
        self.seconds[part] += now - self.last
        self.last = now


def train_step(
    net: KCNN,
    optimiser: torch.optim.Optimizer,
    crops: list,
    labels: torch.Tensor,
    clock: Clock,
    find: Positions | None,
) -> Counter:
    """One SGD step as `KCNNClassifier` takes it (`KCNN.represent` for one convolution
    layer; k-max pooling's positions found by `find`), timed part by part; returns the
    first convolution's FLOPs and the positions, padded ones too, that it computes."""
    words, lengths = pad_batch(crops)
    clock.lap("padding")
    positions = words.shape[0] * words.shape[2]
    counts = Counter(flops=conv_flops(net, words, backward=True), positions=positions)
    counts["padded"] = positions - int(lengths.sum())
    mask = (torch.arange(words.shape[-1])[None, :] < lengths[:, None]).unsqueeze(1)
    x = net.first_conv(words, mask)
    clock.lap("first conv forward")
    x_in = x.detach().requires_grad_()
    pooled = kmax_pool(x_in, net.config.k, lengths, find)
    clock.lap("k-max pooling forward")
    pooled_in = pooled.detach().requires_grad_()
    scores = net.output(net.hidden(pooled_in.flatten(1)))
    loss = F.cross_entropy(scores, labels)
    clock.lap("hidden + softmax forward")
    loss.backward()
    clock.lap("hidden + softmax backward")
    pooled.backward(pooled_in.grad)
    clock.lap("k-max pooling backward")
    x.backward(x_in.grad)
    clock.lap("first conv backward")
    optimiser.step()
    optimiser.zero_grad()
    clock.lap("optimizer")
    return counts


def optimiser_for(net: KCNN) -> torch.optim.Optimizer:
    """`KCNNClassifier.fit`'s SGD: lookup tables at their own learning rate."""
    lookups = list(net.lookups.parameters())
    others = [p for n, p in net.named_parameters() if not n.startswith("lookups.")]
    groups = [{"params": others}, {"params": lookups, "lr": 0.2}]
    return torch.optim.SGD(groups, lr=0.02, momentum=0.9, weight_decay=1e-4)


def epoch(
    net: KCNN,
    songs: list[np.ndarray],
    labels: torch.Tensor,
    batching: Callable,
    rng: np.random.Generator,
    now: Callable[[], float],
    find: Positions | None = None,
) -> tuple[dict[str, float], Counter]:
    """One training epoch: seconds by part, and the counts of `train_step`."""
    net.train()
    optimiser = optimiser_for(net)
    crops, owner = random_crops(songs, CROPS, *CROP_WORDS, rng)
    clock, counts = Clock(now), Counter()
    for idx in batching([c.shape[1] for c in crops], BATCH, rng):
        batch = [crops[i] for i in idx]
        counts += train_step(net, optimiser, batch, labels[owner[idx]], clock, find)
    return dict(clock.seconds), counts


def prediction(
    net: KCNN, rng: np.random.Generator, now: Callable[[], float], find: Positions | None = None
) -> tuple[dict[str, float], Counter]:
    """One prediction batch (forward only): seconds by part, and first-convolution FLOPs."""
    net.eval()
    shape = (PREDICT_BATCH, len(N_WORDS), PREDICT_WORDS)
    words = torch.from_numpy(rng.integers(0, N_WORDS[0], shape))
    lengths = torch.full((PREDICT_BATCH,), PREDICT_WORDS)
    with torch.no_grad():
        counts = Counter(flops=conv_flops(net, words, backward=False))
        clock = Clock(now)
        mask = torch.ones(PREDICT_BATCH, 1, PREDICT_WORDS, dtype=torch.bool)
        x = net.first_conv(words, mask)
        clock.lap("first conv forward")
        pooled = kmax_pool(x, net.config.k, lengths, find)
        clock.lap("k-max pooling forward")
        net.output(net.hidden(pooled.flatten(1))).softmax(1)
        clock.lap("hidden + softmax forward")
    return dict(clock.seconds), counts


def fastest(runs: list[tuple[dict[str, float], Counter]]) -> tuple[dict[str, float], Counter]:
    """The run (seconds by part, counts) of least total time."""
    return min(runs, key=lambda run: sum(run[0].values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setting (3)")
    parser.add_argument("--wall", action="store_true", help="time by the wall clock")
    args = parser.parse_args()
    now = time.perf_counter if args.wall else time.process_time
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    songs = [
        rng.integers(0, N_WORDS[0], (1, len(N_WORDS), rng.integers(*SONG_WORDS)))
        for _ in range(N_SONGS)
    ]
    labels = torch.from_numpy(rng.integers(0, CLASSES, N_SONGS))
    config = KCNNConfig(n_words=N_WORDS, embed_dims=DIMS, n_classes=CLASSES, dropout=0.5)
    start = KCNN(config)
    settings = {
        "plain, random batches, topk": ("plain", random_batches, topk_positions),
        "plain, batches by length, topk": ("plain", length_batches, topk_positions),
        "gathered, random batches, topk": ("gathered", random_batches, topk_positions),
        "gathered, batches by length, topk": ("gathered", length_batches, topk_positions),
        "auto, batches by length, topk": ("auto", length_batches, topk_positions),
        "auto, batches by length, scan (training now)": ("auto", length_batches, None),
    }
    predictions = {
        "predict plain, topk": ("plain", topk_positions),
        "predict gathered, topk": ("gathered", topk_positions),
        "predict gathered, scan (now)": ("gathered", None),
    }
    runs: dict[str, list] = defaultdict(list)
    for repeat in range(args.repeats):  # in a repeat, every setting sees the same crops
        for name, (path, batching, find) in settings.items():
            net = copy.deepcopy(start)
            net.first_layer = path
            crops = np.random.default_rng(repeat)
            runs[name].append(epoch(net, songs, labels, batching, crops, now, find))
        for name, (path, find) in predictions.items():
            net = copy.deepcopy(start)
            net.first_layer = path
            batch = np.random.default_rng(repeat)
            runs[name].append(prediction(net, batch, now, find))
    print(
        f"{N_SONGS} songs of {SONG_WORDS[0]}-{SONG_WORDS[1]} words, {CROPS} crops of "
        f"{CROP_WORDS[0]}-{CROP_WORDS[1]} words a song in batches of {BATCH}; "
        f"{len(N_WORDS)} x {N_WORDS[0]} words, lookup tables of {DIMS[0]}, "
        f"{args.threads} thread(s), {'wall' if args.wall else 'CPU'} time, "
        f"fastest of {args.repeats}\n"
    )
    print(
        "| training | epoch (s) | per song-epoch (ms) | padded positions "
        "| first conv GFLOP | GFLOP/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in settings:
        seconds, counts = fastest(runs[name])
        conv = seconds["first conv forward"] + seconds["first conv backward"]
        total = sum(seconds.values())
        print(
            f"| {name} | {total:.2f} | {1e3 * total / N_SONGS:.1f} "
            f"| {counts['padded'] / counts['positions']:.0%} "
            f"| {counts['flops'] / 1e9:.1f} | {counts['flops'] / conv / 1e9:.1f} |"
        )
    print(f"\nPrediction, one batch of {PREDICT_BATCH} windows of {PREDICT_WORDS} words:\n")
    print("| setting | batch (ms) | first conv (ms) | first conv GFLOP | GFLOP/s |")
    print("|---|---:|---:|---:|---:|")
    for name in predictions:
        seconds, counts = fastest(runs[name])
        conv = seconds["first conv forward"]
        print(
            f"| {name.removeprefix('predict ')} | {1e3 * sum(seconds.values()):.0f} "
            f"| {1e3 * conv:.0f} "
            f"| {counts['flops'] / 1e9:.1f} | {counts['flops'] / conv / 1e9:.1f} |"
        )
    print("\nWhere the time goes (ms; training: an epoch, prediction: a batch):\n")
    columns = [*settings, *predictions]
    fast = {name: fastest(runs[name])[0] for name in columns}
    parts = sorted({p for seconds in fast.values() for p in seconds}, key=part_order)
    print("| part | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for part in [*parts, "total"]:
        cells = [
            1e3 * (sum(fast[n].values()) if part == "total" else fast[n].get(part, 0.0))
            for n in columns
        ]
        print(f"| {part} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")


def part_order(part: str) -> tuple[int, bool]:
    """Table order: padding, each part's forward then backward, optimizer."""
    name = part.removesuffix(" forward").removesuffix(" backward")
    return PARTS.index(name), part.endswith("backward")


if __name__ == "__main__":
    main()

"""Run a benchmark: every method on every feature set, run by run and fold by fold, resumably.

Frame features are computed once for all songs (with the feature cache). A unit of work is
(run, fold, feature set): its models (`Group`s) share the fold's audio words. With one job
the units run in this process, and each model is saved to the state as soon as it is
scored, so an interrupted benchmark re-run with the same arguments redoes at most one model.
With `jobs` > 1, the units run `jobs` at a time on as many worker processes of this
machine, each on `threads` threads (small networks keep one core busy, not two: two at once
finish nearly as soon as one), and a unit's models are saved when it is done. Run r uses
the seed `seed + r` for its folds and for every learned stage, whatever runs where.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kcnn import __version__, maps
from kcnn.atomic import atomic_file, remove_temporary_files, write_text, writer_lock
from kcnn.benchmark import figures, report
from kcnn.benchmark.choices import BASELINE, BASELINE_FEATURES, FEATURE_SETS, METHODS
from kcnn.benchmark.datasets import Collection, load_collection
from kcnn.benchmark.methods import (
    FoldMethods,
    Group,
    MethodSettings,
    Outcome,
    groups_for,
)
from kcnn.benchmark.protocols import Fold, make_folds
from kcnn.benchmark.state import REPORT, BenchmarkState, unit_key
from kcnn.cache import FeatureCache, temporary_cache
from kcnn.errors import KcnnError
from kcnn.extraction import Features, extract_batch
from kcnn.spawned import start_worker
from kcnn.workers import IN_PROCESS, Workers

PROTOCOLS = ("cv", "split")
NETWORK_NAMES = {"kcnn": "KCNN", "kcnn-k1": "KCNN (k = 1)", "kcnn-ult": "KCNN ULT"}
"""KCNN group -> its line in the learning curves."""


@dataclass(frozen=True)
class BenchmarkSettings:
    """What to run: protocol ("cv" or "split"), split name or file (for "split"), folds
    (for "cv"), runs, methods (keys of METHODS), feature sets (keys of FEATURE_SETS but
    "mfcc", which the baseline uses by itself), base seed, and what the methods are built
    from (their device is not part of the `key`: devices agree within float tolerance, so
    a benchmark may resume on another).
    """

    protocol: str = "cv"
    split: str | None = None
    folds: int = 10
    runs: int = 10
    methods: tuple[str, ...] = tuple(METHODS)
    feature_sets: tuple[str, ...] = ("mel", "sfm", "scf", "all")
    seed: int = 0
    learners: MethodSettings = field(default_factory=MethodSettings)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KcnnError(f"unknown protocol {self.protocol!r}; choose cv or split")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise KcnnError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        sets = [f for f in FEATURE_SETS if f != BASELINE_FEATURES]
        bad = [f for f in self.feature_sets if f not in sets]
        if bad or not self.feature_sets:
            raise KcnnError(f"unknown feature set(s) {bad}; choose from {', '.join(sets)}")
        if self.runs < 1:
            raise KcnnError(f"--runs must be at least 1, got {self.runs}")

    @property
    def n_folds(self) -> int:
        return self.folds if self.protocol == "cv" else 1

    def key(self) -> dict[str, Any]:
        """The settings the results depend on (runs, methods and feature sets may grow):
        "stage.name" for each setting of the methods but the feature types."""
        stages = {**self.learners.model.to_dict(), "codes": asdict(self.learners.codes)}
        del stages["features"]["types"]
        return {
            "protocol": self.protocol,
            "split": self.split,
            "folds": self.n_folds,
            "seed": self.seed,
            **{f"{s}.{k}": v for s, values in stages.items() for k, v in values.items()},
        }

    def columns(self) -> dict[str, list[str]]:
        """Method -> the feature sets it runs on (the baseline: its own MFCCs)."""
        return {
            m: [BASELINE_FEATURES] if m == BASELINE else list(self.feature_sets)
            for m in METHODS
            if m in self.methods
        }

    def unit_sets(self) -> list[str]:
        """The feature sets that have work to do, in table order."""
        sets = [*self.feature_sets, BASELINE_FEATURES]
        return [f for f in sets if groups_for(self.methods, f)]

    @property
    def tsne_set(self) -> str:
        """The feature set whose representations are mapped: ALL if run, else the first."""
        return "all" if "all" in self.feature_sets else self.feature_sets[0]


@dataclass
class BenchmarkResult:
    """Where the report is, the cells of its table, and the notes it carries."""

    out: Path
    cells: list[report.Cell]
    notes: list[str]


def feature_types(settings: BenchmarkSettings) -> tuple[str, ...]:
    """Every frame feature type some unit needs, each once."""
    types = (t for f in settings.unit_sets() for t in FEATURE_SETS[f])
    return tuple(dict.fromkeys(types))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_benchmark(
    data: str | Path,
    out: str | Path,
    settings: BenchmarkSettings,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    restart: bool = False,
    notify: Callable[[str], None] = _stderr,
    workers: Workers = IN_PROCESS,
) -> BenchmarkResult:
    """Run (or resume) the benchmark of `data` and write its report to the folder `out`.

    cache_dir: feature cache folder (None: a temporary one, removed at the end). workers:
    where the features are extracted (kcnn.workers). notify: called with each note for
    the user (files left out or skipped), as soon as it is known. `out` must be free or
    hold a report (`REPORT.check`); runs on one report take turns (`writer_lock`).
    """
    out = Path(out)
    REPORT.check(out)
    with writer_lock(out):
        remove_temporary_files(out)
        collection = load_collection(data, settings.protocol, settings.split)
        notes = list(collection.notes)
        for note in notes:
            notify(note)
        started = time.perf_counter()
        songs, features, skipped = _extract(collection, settings, cache_dir, progress, workers)
        feature_seconds = time.perf_counter() - started
        for note in skipped:
            notify(note)
        notes += skipped
        labels = songs.files.labels
        state = BenchmarkState(
            out / "state.json",
            {"kcnn": __version__, **settings.key()},
            [(str(p), lab) for p, lab in zip(songs.files.paths, labels, strict=True)],
            restart,
        )
        state.save()  # marks `out` as a report before anything else is written there
        folds = [
            make_folds(songs, settings.n_folds, settings.seed + r) for r in range(settings.runs)
        ]
        context = _context(data, songs, settings, notes, feature_seconds)
        plan = [
            (run, f, fs, todo)
            for run in range(settings.runs)
            for f in range(settings.n_folds)
            for fs in settings.unit_sets()
            if (todo := _todo(state, settings, run, f, fs))
        ]
        total = sum(len(todo) for *_, todo in plan)
        units = [Unit(run, f, fs, todo) for run, f, fs, todo in plan]

        def methods_of(unit: Unit) -> FoldMethods:
            fold = folds[unit.run][unit.fold]
            return FoldMethods(
                settings.learners,
                settings.seed + unit.run,
                [_only(features[i], unit.features) for i in fold.train],
                [labels[i] for i in fold.train],
                [_only(features[i], unit.features) for i in fold.test],
            )

        with tqdm(total=total, desc="benchmark", unit="model", disable=not progress) as bar:
            for unit, outcomes in _outcomes(units, methods_of, settings.methods, workers):
                fold = folds[unit.run][unit.fold]
                for outcome in outcomes:
                    state.record(unit.run, unit.fold, unit.features, fold.test, outcome)
                    state.save()
                    if unit.run == 0 and unit.features in (settings.tsne_set, BASELINE_FEATURES):
                        _save_representations(out, outcome, unit.fold, fold, songs, unit.features)
                    bar.set_postfix_str(
                        f"run {unit.run + 1}/{settings.runs}, fold {unit.fold + 1}/"
                        f"{settings.n_folds}, {unit.features.upper()}: {outcome.group}"
                    )
                    bar.update(1)
                _write_tables(out, state, settings, context)
        found = _write_tables(out, state, settings, context)
        _write_figures(out, state, settings, found)
        return BenchmarkResult(out, found, notes)


@dataclass(frozen=True)
class Unit:
    """The groups of (run, fold, feature set) still to fit."""

    run: int
    fold: int
    features: str
    todo: list[Group]


def _outcomes(
    units: list[Unit],
    methods_of: Callable[[Unit], FoldMethods],
    methods: Sequence[str],
    workers: Workers,
) -> Iterator[tuple[Unit, list[Outcome]]]:
    """Run the units and yield each with its outcomes: in order, in this process, one
    model at a time; or on `workers.jobs` local processes, as they finish. A unit's
    features are read (`methods_of`) when it starts, so that few are in memory at once."""
    jobs = min(workers.jobs, len(units)) if workers.scheduler is None else 1
    if jobs <= 1:
        for unit in units:
            fold = methods_of(unit)
            for group in unit.todo:
                yield unit, [fold.run(group, methods)]
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process running threads
    with ProcessPoolExecutor(
        jobs, context, initializer=_start_worker, initargs=(workers.threads, os.getpid())
    ) as pool:
        running: dict[Future, Unit] = {}
        waiting = iter(units)
        while True:
            for unit in waiting:
                running[pool.submit(_run_unit, methods_of(unit), unit.todo, methods)] = unit
                if len(running) == jobs:
                    break
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield running.pop(future), future.result()


def _start_worker(threads: int, parent: int) -> None:
    """`start_worker` in a benchmark worker: unpickling this function imports this module,
    and with it PyTorch, before `threads` is set."""
    start_worker(threads, parent)


def _run_unit(fold: FoldMethods, todo: list[Group], methods: Sequence[str]) -> list[Outcome]:
    """Fit a unit's groups (in a worker process); their outcomes."""
    return [fold.run(group, methods) for group in todo]


def _todo(
    state: BenchmarkState, settings: BenchmarkSettings, run: int, fold: int, fs: str
) -> list[Group]:
    """The groups of a unit not fitted yet."""
    return [g for g in groups_for(settings.methods, fs) if not state.done(run, fold, fs, g.name)]


def _only(song: Features, features: str) -> Features:
    """The frame features of one feature set."""
    return {t: song[t] for t in FEATURE_SETS[features]}


def _extract(
    collection: Collection,
    settings: BenchmarkSettings,
    cache_dir: str | Path | None,
    progress: bool,
    workers: Workers,
) -> tuple[Collection, Sequence[Features], list[str]]:
    """Frame features of every song; the songs kept, their features, and notes on the rest."""
    model = settings.learners.model
    fs = replace(model.features, types=feature_types(settings))
    cache = temporary_cache(fs) if cache_dir is None else FeatureCache(cache_dir, fs)
    paths = collection.files.paths
    batch = extract_batch(paths, fs, model.words.segment_frames, cache, progress, workers=workers)
    if not batch.kept:
        raise KcnnError(f"none of the {len(paths)} files could be used")
    notes = [f"skipped {err}" for err in batch.skipped]
    return collection.subset(batch.kept), batch.features, notes


def _save_representations(
    out: Path, outcome: Outcome, f: int, fold: Fold, songs: Collection, features: str
) -> None:
    """Keep the representations of fold `f`'s test songs in run 1 for the t-SNE maps."""
    labels = [songs.files.labels[i] for i in fold.test]
    paths = [str(songs.files.paths[i]) for i in fold.test]
    for method, vectors in outcome.representations.items():
        stored = out / "representations" / method / f"fold-{f + 1:02d}.npz"
        with atomic_file(stored) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                vectors=vectors,
                labels=np.asarray(labels),
                paths=np.asarray(paths),
                features=np.asarray(features),
            )


def _context(
    data: str | Path,
    songs: Collection,
    settings: BenchmarkSettings,
    notes: list[str],
    feature_seconds: float,
) -> dict[str, Any]:
    """What the report's header says about the data, protocol, settings and software."""
    labels = songs.files.labels
    seeds = f"seeds {settings.seed}..{settings.seed + settings.runs - 1}"
    if settings.protocol == "cv":
        grouped = ", no group in two parts" if songs.files.groups is not None else ""
        protocol = (
            f"{settings.folds}-fold stratified cross-validation (each label spread evenly "
            f"over the folds{grouped}), {settings.runs} run(s) with {seeds}, each with its "
            "own folds and initialisations; a run's accuracy is pooled over its folds"
        )
    else:
        n_test = sum(songs.test or ())
        protocol = (
            f"fixed split {settings.split or 'ismir2004'}: {len(labels) - n_test} training "
            f"and {n_test} test songs; {settings.runs} run(s) with {seeds} (initialisations)"
        )
    protocol += "; every learned stage is fitted on the training songs of its fold only"
    packages = ("numpy", "scipy", "scikit-learn", "torch", "librosa")
    return {
        "data": str(data),
        "protocol": protocol,
        "songs": {"n": len(labels), "per_label": dict(sorted(Counter(labels).items()))},
        "settings": {
            "runs": settings.runs,
            "methods": ",".join(settings.methods),
            "feature_sets": ",".join(settings.feature_sets),
            **settings.key(),
        },
        "versions": {
            "kcnn": __version__,
            "python": platform.python_version(),
            **{p: metadata.version(p) for p in packages},
        },
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}",
        "notes": notes,
        "feature_seconds": feature_seconds,
    }


def _write_tables(
    out: Path, state: BenchmarkState, settings: BenchmarkSettings, context: dict[str, Any]
) -> list[report.Cell]:
    """results.md, results.csv and results.json from the finished runs in `state`."""
    labels = [label for _, label in state.data["songs"]]
    found = report.cells(state.units, labels, settings.columns(), settings.runs, settings.n_folds)
    columns = settings.unit_sets()
    times = report.seconds_per_fold(state.units, columns)
    models = sum(
        u.get("words_seconds", 0.0) + sum(g["seconds"] for g in u["groups"].values())
        for u in state.units.values()
    )
    full = {**context, "seconds_per_fold": times, "models_seconds": models}
    write_text(out / "results.md", report.results_markdown(found, columns, full))
    write_text(out / "results.csv", report.results_csv(found))
    write_text(out / "results.json", report.results_json(found, full))
    return found


def _write_figures(
    out: Path, state: BenchmarkState, settings: BenchmarkSettings, found: list[report.Cell]
) -> None:
    """t-SNE maps per method, the best cell's confusion matrix, the KCNN learning curves."""
    for method in settings.methods:
        folds = sorted((out / "representations" / method).glob("fold-*.npz"))
        if not folds:
            continue
        parts = []
        for stored in folds:
            with np.load(stored, allow_pickle=False) as saved:
                parts.append({k: saved[k] for k in ("vectors", "labels", "paths", "features")})
        vectors = np.concatenate([p["vectors"] for p in parts])
        labels = [str(x) for p in parts for x in p["labels"]]
        paths = [str(x) for p in parts for x in p["paths"]]
        title = (
            f"{METHODS[method]}, {str(parts[0]['features']).upper()}: t-SNE of {len(vectors)} "
            f"songs, each as a test song ({len(folds)} of {settings.n_folds} folds of run 1)"
        )
        positions = maps.layout(vectors, settings.seed)
        maps.write_png(out / f"tsne-{method}.png", maps.map_data(positions, labels, paths, title))
    top = report.best(found)
    if top is not None:
        labels = [label for _, label in state.data["songs"]]
        names, matrix = report.pooled_confusion(
            state.units, labels, top, settings.runs, settings.n_folds
        )
        title = (
            f"{METHODS[top.method]}, {top.features.upper()}: {report.format_cell(top)}, "
            f"test predictions of {top.n} run(s) x {settings.n_folds} fold(s)"
        )
        figures.plot_confusion(names, matrix, title, out / f"confusion-{top.method}.png")
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for run in range(settings.runs):
        for f in range(settings.n_folds):
            for fs in settings.feature_sets:
                unit = state.units.get(unit_key(run, f, fs), {"groups": {}})
                for group, done in unit["groups"].items():
                    if done["loss_curve"]:
                        per_set = curves.setdefault(fs, {})
                        per_set.setdefault(NETWORK_NAMES[group], []).append(done["loss_curve"])
    if curves:
        figures.plot_learning_curves(curves, out / "learning-curves.png")

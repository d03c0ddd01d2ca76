"""`kcnn benchmark` end to end: the report holds the numbers computed, and a re-run resumes."""

from __future__ import annotations

import csv
import io
import json
import shutil
from contextlib import contextmanager, redirect_stdout
from functools import partial

import numpy as np
import pytest
import torch
from shared_data import GTZAN_MINI, write_manifest
from threadpoolctl import threadpool_limits

from kcnn import __version__, maps
from kcnn.benchmark.choices import METHODS, CodeSettings
from kcnn.benchmark.methods import FoldMethods, MethodSettings
from kcnn.benchmark.runner import BenchmarkSettings, run_benchmark
from kcnn.cli import benchmark as benchmark_command
from kcnn.cli.main import main
from kcnn.config import KCNNSettings, ModelConfig, WordsSettings
from kcnn.workers import Workers

GENRES = ("classical", "metal", "pop")
TINY = ["--folds", "2", "--runs", "2", "--epochs", "1", "--words", "8", "--code-units", "4"]
TINY += ["--conv-units", "16", "--hidden-units", "8"]
CODER_EPOCHS = 2
"""A setting the command line does not offer, made small so that the tests are quick."""


@pytest.fixture(scope="module", autouse=True)
def small_and_quick():
    """Small coders, and a stand-in for t-SNE (seconds per map, even of 6 songs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(benchmark_command, "CodeSettings", partial(CodeSettings, epochs=CODER_EPOCHS))
        patch.setattr(maps, "layout", lambda vectors, seed=0: maps.to_unit_square(vectors[:, :2]))
        yield


@contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    clips = [GTZAN_MINI / g / f"{g}.0000{i}.wav" for g in GENRES for i in range(4)]
    return write_manifest(tmp_path_factory.mktemp("bench") / "songs.csv", clips)


@pytest.fixture(scope="module")
def report(manifest):
    out = manifest.parent / "report"
    code, printed = run_cli("benchmark", manifest, "--out", out, "--features", "mel", *TINY, "-q")
    assert code == 0
    assert "| KCNN + SVM |" in printed
    return out


def tiny_settings(epochs: int, **protocol) -> BenchmarkSettings:
    """2 folds of `TINY`'s small models (from Python), with `epochs` KCNN epochs."""
    config = ModelConfig(
        words=WordsSettings(n_words=8),
        kcnn=KCNNSettings(epochs=epochs, conv_units=(16,), hidden_units=(8,)),
    )
    learners = MethodSettings(config, CodeSettings(units=4, epochs=CODER_EPOCHS))
    return BenchmarkSettings(folds=2, learners=learners, **protocol)


def recomputed(out) -> dict[tuple[str, str], list[float]]:
    """Accuracy per run of each (method, features), from the predictions in state.json."""
    state = json.loads((out / "state.json").read_text())
    labels = [label for _, label in state["songs"]]
    hits: dict[tuple[str, str, int], list[bool]] = {}
    for key, unit in state["units"].items():
        run, _, features = key.split("/")
        for method, predicted in unit["predictions"].items():
            truth = [labels[i] for i in unit["test"]]
            cell = hits.setdefault((method, features, int(run)), [])
            cell += [t == p for t, p in zip(truth, predicted, strict=True)]
    runs: dict[tuple[str, str], list[float]] = {}
    for (method, features, _run), ok in sorted(hits.items()):
        assert len(ok) == len(labels)  # every song tested once per run
        runs.setdefault((method, features), []).append(100 * sum(ok) / len(ok))
    return runs


def test_report_files_hold_the_numbers_computed(report):
    names = {p.name for p in report.iterdir()}
    expected = {"results.md", "results.csv", "results.json", "learning-curves.png"}
    expected |= {f"tsne-{m}.png" for m in METHODS}
    assert expected <= names
    assert any(n.startswith("confusion-") for n in names)
    for png in (report / n for n in names if n.endswith(".png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((report / "results.json").read_text())
    truth = recomputed(report)
    cells = {(c["method"], c["features"]): c for c in results["cells"]}
    assert set(cells) == set(truth) == {(m, "mfcc" if m == "mfcc-svm" else "mel") for m in METHODS}
    for key, runs in truth.items():
        cell = cells[key]
        assert cell["n_runs"] == 2
        assert cell["run_accuracies_pct"] == pytest.approx(runs, abs=1e-3)
        assert cell["accuracy_mean_pct"] == pytest.approx(sum(runs) / 2, abs=1e-3)
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert len(rows) == len(cells)
    for row in rows:
        cell = cells[(row["method"], row["features"])]
        assert float(row["accuracy_mean_pct"]) == pytest.approx(cell["accuracy_mean_pct"])
    table = (report / "results.md").read_text()
    assert "2-fold stratified cross-validation" in table and "torch" in table
    kcnn = cells[("kcnn-svm", "mel")]
    shown = f"{kcnn['accuracy_mean_pct']:.2f} ± {kcnn['accuracy_std_pct']:.2f} (n=2)"
    assert f"| KCNN + SVM | {shown} |" in table


def test_maps_show_every_song_as_a_test_song(report, manifest):
    """Figure 3: each song once, with the representation of the fold that tested it."""
    songs = [label for _, label in json.loads((report / "state.json").read_text())["songs"]]
    for method in METHODS:
        folds = sorted((report / "representations" / method).glob("fold-*.npz"))
        assert len(folds) == 2, method
        paths = []
        for stored in folds:
            with np.load(stored) as saved:
                assert saved["vectors"].shape[0] == len(saved["paths"]) == len(saved["labels"])
                assert np.isfinite(saved["vectors"]).all()
                paths += saved["paths"].tolist()
        assert len(paths) == len(set(paths)) == len(songs), method


def test_rerun_with_the_same_arguments_skips_finished_work(report, manifest, monkeypatch):
    before = (report / "results.json").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished model was fitted again")

    monkeypatch.setattr(FoldMethods, "run", refuse)
    code, _ = run_cli("benchmark", manifest, "--out", report, "--features", "mel", *TINY, "-q")
    assert code == 0
    after = json.loads((report / "results.json").read_text())
    assert after["cells"] == json.loads(before)["cells"]


def test_an_interrupted_benchmark_fits_only_what_is_missing(report, manifest, monkeypatch):
    out = manifest.parent / "interrupted"
    shutil.copytree(report, out)
    state = json.loads((out / "state.json").read_text())
    del state["units"]["1/1/mel"]["groups"]["kcnn"]  # killed while this network was training
    (out / "state.json").write_text(json.dumps(state))
    fitted = []
    original = FoldMethods.run
    monkeypatch.setattr(
        FoldMethods, "run", lambda self, g, m: fitted.append(g.name) or original(self, g, m)
    )
    settings = tiny_settings(epochs=1, runs=2, feature_sets=("mel",))
    result = run_benchmark(manifest, out, settings, progress=False)
    assert fitted == ["kcnn"]
    assert all(cell.n == 2 for cell in result.cells)


def test_units_on_worker_processes_give_what_they_give_in_this_process(manifest):
    settings = tiny_settings(
        epochs=2, runs=1, feature_sets=("mel", "sfm"), methods=("sc-svm", "kcnn", "kcnn-svm")
    )
    units = {}
    for jobs in (1, 2):
        out = manifest.parent / f"jobs-{jobs}"
        with threadpool_limits(1), torch_threads(1):
            run_benchmark(manifest, out, settings, progress=False, workers=Workers(jobs, 1))
        units[jobs] = json.loads((out / "state.json").read_text())["units"]
    assert units[1].keys() == units[2].keys() and len(units[1]) == 4
    for key, unit in units[1].items():
        assert unit["predictions"] == units[2][key]["predictions"], key


def test_other_settings_are_refused_not_mixed(report, manifest, capsys):
    args = ["benchmark", manifest, "--out", report, "--features", "mel", *TINY, "-q"]
    args[args.index("--words") + 1] = "16"
    code, _ = run_cli(*args)
    assert code == 2
    assert "words.n_words: 8 there, 16 here" in capsys.readouterr().err


def test_results_of_another_kcnn_version_are_refused_not_mixed(report, manifest, capsys):
    state = json.loads((report / "state.json").read_text())
    state["key"]["kcnn"] = "0.0.1"
    other = manifest.parent / "older"
    shutil.copytree(report, other)
    (other / "state.json").write_text(json.dumps(state))
    code, _ = run_cli("benchmark", manifest, "--out", other, "--features", "mel", *TINY, "-q")
    assert code == 2
    assert f"kcnn: '0.0.1' there, '{__version__}' here" in capsys.readouterr().err


def test_no_cache_keeps_features_in_a_removed_temporary_folder(manifest, tmp_path, no_cache):
    """As every command does: the features of `--no-cache` go to a folder of $TMPDIR (and are
    read from there by the worker processes), which is gone once the benchmark is done."""
    out = tmp_path / "report"
    options = ["--no-cache", "--methods", "mfcc-svm,kcnn", "--features", "mel", "--jobs", "2"]
    code, printed = run_cli("benchmark", manifest, "--out", out, *options, *TINY, "-q")
    assert code == 0 and "| KCNN |" in printed
    no_cache.check()

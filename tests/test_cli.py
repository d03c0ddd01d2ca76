"""The `kcnn` command end to end on real music: train, evaluate, predict, embed, extract."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import background
import numpy as np
import pytest
import safetensors.torch
import soundfile as sf
import torch
from shared_data import GTZAN_MINI, TINY_MODEL, clips_numbered, write_manifest

from kcnn.cli import train as train_command
from kcnn.cli.main import main
from kcnn.model import FORMAT_VERSION, MusicModel

HIDDEN = 50
FAST = [
    "--epochs",
    "20",
    "--words",
    "128",
    "--conv-units",
    "100",
    "--hidden-units",
    str(HIDDEN),
    "-q",
]


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


@background.command("trained")
def train_on_clips_0_to_6(work: Path) -> list[object]:
    train = write_manifest(work / "train.csv", clips_numbered(range(7)))
    return ["train", train, "--out", work / "model", "--test-size", "0", *FAST]


@pytest.fixture(scope="module")
def trained(background_jobs):
    """A model trained on clips 0-6 of each genre of gtzan-mini; clips 7-9 held out."""
    work = background_jobs.output("trained")
    valid = write_manifest(work / "valid.csv", clips_numbered(range(7, 10)))
    return work, work / "model", valid


def test_train_writes_a_model_folder_of_safe_files(trained):
    _, model, _ = trained
    assert sorted(p.name for p in model.iterdir()) == [
        "codebook.npz",
        "network.safetensors",
        "settings.json",
        "svm.skops",
    ]
    settings = json.loads((model / "settings.json").read_text())
    assert settings["format_version"] == FORMAT_VERSION
    assert settings["feature_types"] == ["mel", "sfm", "scf"]
    assert len(settings["classes"]) == 10


@pytest.mark.parametrize("refit", [True, False])
def test_train_reports_held_out_accuracy_then_fits_on_every_song(tmp_path, refit):
    songs = [c for c in clips_numbered(range(4)) if c.parent.name in ("blues", "jazz", "pop")]
    manifest = write_manifest(tmp_path / "songs.csv", songs)  # 12 songs, 3 held out
    tiny = [a for a in TINY_MODEL if a != "--test-size"]
    tiny.remove("0")
    args = ["train", manifest, "--out", tmp_path / "model", "--test-size", "0.25", *tiny]
    code, out = run_cli(*args, *([] if refit else ["--no-refit"]))
    assert code == 0 and "held-out (svm): accuracy" in out and "held-out (softmax)" in out
    settings = json.loads((tmp_path / "model" / "settings.json").read_text())
    assert settings["training_songs"] == (12 if refit else 9)
    assert f"fitted on {settings['training_songs']} songs" in out
    assert MusicModel.load(tmp_path / "model").n_songs == settings["training_songs"]


def test_the_final_model_fitted_beside_the_held_out_one_is_the_one_fitted_after_it(
    tmp_path, monkeypatch
):
    songs = [c for c in clips_numbered(range(4)) if c.parent.name in ("blues", "jazz", "pop")]
    manifest = write_manifest(tmp_path / "songs.csv", songs)
    tiny = [a for a in TINY_MODEL if a != "--test-size"]
    tiny.remove("0")
    tiny[tiny.index("--epochs") + 1] = "6"
    weights = {}
    for cores in (1, 2):  # one core: the final model is fitted after the held-out one
        monkeypatch.setattr(train_command, "available_cores", lambda n=cores: n)
        out = tmp_path / f"model-{cores}"
        args = ["train", manifest, "--out", out, "--test-size", "0.25", "--patience", "2"]
        code, printed = run_cli(*args, *tiny, "--threads", "1")
        assert code == 0 and "fitting the final model on all 12 songs" in printed
        weights[cores] = safetensors.torch.load_file(out / "network.safetensors")
        assert MusicModel.load(out).n_songs == 12
    assert weights[1].keys() == weights[2].keys()
    assert all(torch.equal(weights[1][k], weights[2][k]) for k in weights[1])


def test_predicts_well_above_chance_on_unseen_clips(trained):
    _, model, valid = trained
    code, out = run_cli("evaluate", model, valid, "--json", "-q")
    assert code == 0
    report = json.loads(out)
    assert report["n_songs"] == 30
    assert report["accuracy"] >= 0.30, report
    assert np.asarray(report["confusion"]).sum() == 30


def test_predict_formats_agree(trained):
    _, model, _ = trained
    clips = [
        GTZAN_MINI / "metal" / "metal.00003.wav",
        GTZAN_MINI / "classical" / "classical.00002.wav",
    ]
    _, as_json = run_cli("predict", model, *clips, "--format", "json", "-q")
    rows = json.loads(as_json)
    assert [r["path"] for r in rows] == [str(c) for c in clips]
    for row in rows:
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-3
        # the label is a most probable class (two may tie once rounded to 4 decimals)
        assert row["probabilities"][row["label"]] == max(row["probabilities"].values())
    _, as_csv = run_cli("predict", model, *clips, "--format", "csv", "-q")
    table = list(csv.DictReader(io.StringIO(as_csv)))
    assert [r["label"] for r in table] == [r["label"] for r in rows]


def test_save_and_load_give_identical_predictions(trained, tmp_path):
    _, model_dir, valid = trained
    model = MusicModel.load(model_dir)
    from kcnn.dataset import read_labelled
    from kcnn.extraction import extract_batch

    songs = read_labelled(valid).paths[:6]
    feats = extract_batch(songs, model.feature_settings, model.min_frames, progress=False).features
    model.save(tmp_path / "copy")
    again = MusicModel.load(tmp_path / "copy")
    for classifier in ("svm", "softmax"):
        assert np.array_equal(
            model.predict_proba(feats, classifier), again.predict_proba(feats, classifier)
        )
    assert np.array_equal(model.embed(feats), again.embed(feats))


def test_embed_writes_one_row_per_song(trained, tmp_path):
    _, model, _ = trained
    code, _ = run_cli("embed", model, GTZAN_MINI / "jazz", "--out", tmp_path / "jazz.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "jazz.npz") as stored:
        assert stored["vectors"].shape == (10, HIDDEN)
        assert stored["paths"][0].endswith("jazz.00000.wav")
    run_cli(
        "embed", model, GTZAN_MINI / "jazz" / "jazz.00001.wav", "--out", tmp_path / "one.csv", "-q"
    )
    rows = list(csv.reader((tmp_path / "one.csv").open()))
    assert len(rows) == 2 and len(rows[1]) == HIDDEN + 1


def test_batch_skips_bad_files_and_lists_them(trained, tmp_path, capsys):
    _, model, _ = trained
    shutil.copy(GTZAN_MINI / "pop" / "pop.00001.wav", tmp_path / "good.wav")
    (tmp_path / "notes.wav").write_text("not audio at all")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "short.wav", np.random.default_rng(0).normal(0, 0.1, 1500), 22050)
    code, out = run_cli("predict", model, tmp_path, "--format", "json", "-q")
    assert code == 0
    assert [Path(r["path"]).name for r in json.loads(out)] == ["good.wav"]
    err = capsys.readouterr().err
    assert "skipped 3 file(s)" in err
    for name, cause in (("notes.wav", "not"), ("empty.wav", "empty"), ("short.wav", "too short")):
        assert any(name in line and cause in line for line in err.splitlines()), err
    assert "Traceback" not in err


def test_nothing_usable_fails_with_one_line(trained, tmp_path, capsys):
    _, model, _ = trained
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000")
    code, _ = run_cli("predict", model, tmp_path / "bad.wav", "-q")
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.wav" in err and "none of the 1 files" in err and "Traceback" not in err


def test_model_of_another_format_is_refused_clearly(trained, tmp_path, capsys):
    _, model, _ = trained
    copy = tmp_path / "old-model"
    shutil.copytree(model, copy)
    settings = json.loads((copy / "settings.json").read_text())
    settings["format_version"] = 99
    (copy / "settings.json").write_text(json.dumps(settings))
    code, _ = run_cli("predict", copy, GTZAN_MINI / "pop" / "pop.00001.wav", "-q")
    assert code == 2
    assert "format 99" in capsys.readouterr().err


def test_extract_fills_the_cache_that_train_reads(tmp_path, monkeypatch):
    clips = tmp_path / "clips"
    for genre in ("blues", "metal"):
        (clips / genre).mkdir(parents=True)
        for n in range(3):
            shutil.copy(GTZAN_MINI / genre / f"{genre}.0000{n}.wav", clips / genre)
    cache = tmp_path / "features"
    code, out = run_cli("extract", clips, "--out", cache, "-q")
    assert code == 0 and "6 files" in out
    assert len(list(cache.rglob("*.npz"))) == 6

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file whose features were cached")

    monkeypatch.setattr("kcnn.extraction.load_audio", no_decoding)
    code, _ = run_cli(
        "train",
        clips,
        "--out",
        tmp_path / "m",
        "--cache",
        cache,
        "--test-size",
        "0",
        "--epochs",
        "2",
        "--words",
        "16",
        "--svm-c",
        "1",
        "-q",
    )
    assert code == 0


def test_train_on_a_missing_folder_is_one_line(tmp_path, capsys):
    code, _ = run_cli("train", tmp_path / "nowhere", "--out", tmp_path / "m")
    assert code == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_the_list_of_commands_answers_without_loading_them():
    code = (
        "import sys\nfrom kcnn.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'kcnn.cli.train' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "train a model on a labelled collection" in run.stdout
    assert "find the songs most similar to a song" in run.stdout
    assert run.stdout.splitlines()[-1] == "False False"


@pytest.mark.parametrize(
    "command",
    [
        "train",
        "predict",
        "evaluate",
        "embed",
        "extract",
        "index",
        "similar",
        "cluster",
        "map",
        "serve",
        "benchmark",
    ],
)
def test_a_commands_help_answers_without_loading_the_network_or_scikit_learn(command):
    code = (
        "import sys\nfrom kcnn.cli.main import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'sklearn' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"usage: kcnn {command}" in run.stdout
    assert run.stdout.splitlines()[-1] == "False False"

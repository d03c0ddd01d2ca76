"""A damaged or forged model folder is refused in one line that names the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import skops.io
import torch
from shared_data import GTZAN_MINI
from sklearn.dummy import DummyClassifier

from kcnn.cli.main import main
from kcnn.errors import ModelError
from kcnn.model import MusicModel
from kcnn.svm import SVMClassifier


def overwrite(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda model: (model / name).write_bytes(data)


def truncate(name: str) -> Callable[[Path], None]:
    return lambda model: (model / name).write_bytes((model / name).read_bytes()[:300])


def edit_settings(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def tamper(model: Path) -> None:
        settings = json.loads((model / "settings.json").read_text())
        change(settings)
        (model / "settings.json").write_text(json.dumps(settings))

    return tamper


def older_format(
    version: int, change: Callable[[dict], None] | None = None
) -> Callable[[Path], None]:
    """A model as format `version` (< 7) saved it: no texture codes, and settings edited by
    `change` (to drop those added since `version`)."""

    def settings_of_then(settings: dict) -> None:
        settings.update(format_version=version)
        settings["words"].pop("texture_parts")
        for field in ("texture_parts", "texture_width"):
            settings["network"].pop(field)
        if change is not None:
            change(settings)

    def tamper(model: Path) -> None:
        edit_settings(settings_of_then)(model)
        weights = safetensors.torch.load_file(model / "network.safetensors")
        weights = {k: w for k, w in weights.items() if not k.startswith("texture")}
        safetensors.torch.save_file(weights, model / "network.safetensors")
        with np.load(model / "codebook.npz") as stored:
            arrays = {k: a for k, a in stored.items() if not k.endswith("/texture")}
        np.savez(model / "codebook.npz", **arrays)

    return tamper


def nan_weights(model: Path) -> None:
    weights = safetensors.torch.load_file(model / "network.safetensors")
    next(iter(weights.values())).view(-1)[0] = float("nan")
    safetensors.torch.save_file(weights, model / "network.safetensors")


def inf_centroid(model: Path) -> None:
    with np.load(model / "codebook.npz") as stored:
        arrays = dict(stored)
    arrays["mel/centroids"][0, 0] = np.inf
    np.savez(model / "codebook.npz", **arrays)


def texture_of_another_shape(model: Path) -> None:
    with np.load(model / "codebook.npz") as stored:
        arrays = dict(stored)
    arrays["mel/texture"] = arrays["mel/texture"][:4]
    np.savez(model / "codebook.npz", **arrays)


def svm_of(estimator: object) -> Callable[[Path], None]:
    return lambda model: skops.io.dump(estimator, model / "svm.skops")


def fitted(estimator, labels):
    return estimator.fit(np.random.default_rng(0).normal(size=(8, 10)), labels * 4)


RANDOM = np.random.default_rng(0).bytes(4000)
TAMPERED = {
    "svm.skops random": ("svm.skops", overwrite("svm.skops", RANDOM)),
    "svm.skops truncated": ("svm.skops", truncate("svm.skops")),
    "svm.skops empty": ("svm.skops", overwrite("svm.skops", b"")),
    "svm.skops DummyClassifier": (
        "svm.skops",
        svm_of(fitted(DummyClassifier(strategy="constant", constant="blues"), ["blues", "metal"])),
    ),
    "svm.skops other classes": ("svm.skops", svm_of(fitted(SVMClassifier(), ["jazz", "pop"]))),
    "network random": ("network.safetensors", overwrite("network.safetensors", RANDOM)),
    "network truncated": ("network.safetensors", truncate("network.safetensors")),
    "network empty": ("network.safetensors", overwrite("network.safetensors", b"")),
    "network NaN": ("network.safetensors", nan_weights),
    "codebook truncated": ("codebook.npz", truncate("codebook.npz")),
    "codebook random": ("codebook.npz", overwrite("codebook.npz", RANDOM)),
    "codebook inf": ("codebook.npz", inf_centroid),
    "codebook texture of another shape": ("codebook.npz", texture_of_another_shape),
    "settings words texture_parts 4": (
        "settings.json",
        edit_settings(lambda s: s["words"].update(texture_parts=4)),
    ),
    "settings []": ("settings.json", overwrite("settings.json", b"[]")),
    "settings null": ("settings.json", overwrite("settings.json", b"null")),
    "settings not UTF-8": ("settings.json", overwrite("settings.json", b'{"a": "\xff\xfe"}')),
    "settings classes 5": ("settings.json", edit_settings(lambda s: s.update(classes=5))),
    "settings one class": ("settings.json", edit_settings(lambda s: s.update(classes=["x"]))),
    "settings kcnn k '5'": ("settings.json", edit_settings(lambda s: s["kcnn"].update(k="5"))),
    "settings network k '5'": (
        "settings.json",
        edit_settings(lambda s: s["network"].update(k="5")),
    ),
    "settings network k 0": ("settings.json", edit_settings(lambda s: s["network"].update(k=0))),
    "settings words missing": ("settings.json", edit_settings(lambda s: s.pop("words"))),
    "settings format '1'": (
        "settings.json",
        edit_settings(lambda s: s.update(format_version="1")),
    ),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_model_is_a_one_line_model_error_naming_the_file(tiny_model, tmp_path, case):
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    file, tamper = TAMPERED[case]
    tamper(tmp_path / "m")
    with pytest.raises(ModelError) as refused:
        MusicModel.load(tmp_path / "m")
    message = str(refused.value)
    assert "\n" not in message and str(tmp_path / "m" / file) in message, message


def test_the_untampered_copy_loads(tiny_model, tmp_path):
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    assert list(MusicModel.load(tmp_path / "m").classes) == ["blues", "metal"]


def test_a_model_of_format_3_loads_unless_its_convolutions_are_stacked(tiny_model, tmp_path):
    # format 3 put sigmoids between stacked convolutions, format 4 tanh: one layer is the same
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    older_format(3)(tmp_path / "m")
    assert list(MusicModel.load(tmp_path / "m").classes) == ["blues", "metal"]
    edit_settings(lambda s: s["network"].update(conv_units=[8, 8]))(tmp_path / "m")
    with pytest.raises(ModelError, match=r"model format 3 .*retrain the model"):
        MusicModel.load(tmp_path / "m")


@pytest.mark.parametrize("version", [3, 4])
def test_a_model_saved_before_words_came_in_phases_reads_one_phase(version, tiny_model, tmp_path):
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    assert MusicModel.load(tmp_path / "m").pipeline.named_steps["words"].phases == 2
    older_format(version, lambda s: s["words"].pop("phases"))(tmp_path / "m")
    assert MusicModel.load(tmp_path / "m").pipeline.named_steps["words"].phases == 1


@pytest.mark.parametrize("version", [3, 4, 5])
def test_a_model_saved_before_layer_norm_is_read_without_it(version, tiny_model, tmp_path):
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    kcnn = MusicModel.load(tmp_path / "m").pipeline.named_steps["kcnn"]
    assert kcnn.layer_norm and isinstance(kcnn.network_.norm, torch.nn.LayerNorm)

    def before_layer_norm(settings: dict) -> None:
        settings["kcnn"].pop("layer_norm")
        settings["network"].pop("layer_norm")

    older_format(version, before_layer_norm)(tmp_path / "m")
    kcnn = MusicModel.load(tmp_path / "m").pipeline.named_steps["kcnn"]
    assert not kcnn.layer_norm and isinstance(kcnn.network_.norm, torch.nn.Identity)


@pytest.mark.parametrize("version", [5, 6])
def test_a_model_saved_before_texture_codes_is_read_without_them(version, tiny_model, tmp_path):
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    clip = GTZAN_MINI / "blues" / "blues.00005.wav"
    loaded = MusicModel.load(tmp_path / "m")
    features = loaded.pipeline.named_steps["features"].transform([clip])
    assert loaded.pipeline.named_steps["words"].texture_parts == 8
    assert loaded.pipeline.named_steps["kcnn"].network_.config.texture_parts == 8
    older_format(version)(tmp_path / "m")
    old = MusicModel.load(tmp_path / "m")
    assert old.pipeline.named_steps["words"].texture_parts == 0
    assert old.pipeline.named_steps["words"].encode(features[0]).shape[1] == 3  # words only
    assert old.predict_proba(features, "softmax").shape == (1, 2)


def test_the_cli_reports_a_damaged_model_in_one_line(tiny_model, tmp_path, capsys):
    _, model, _ = tiny_model
    shutil.copytree(model, tmp_path / "m")
    truncate("svm.skops")(tmp_path / "m")
    clip = GTZAN_MINI / "blues" / "blues.00005.wav"
    assert main(["predict", str(tmp_path / "m"), str(clip), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kcnn: error: ") and err.count("\n") == 1, err

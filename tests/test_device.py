"""Where the network runs: --device auto|cpu|cuda, the CPU by default where CUDA is absent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from kcnn.cli.main import main
from kcnn.errors import KcnnError
from kcnn.model import MusicModel
from kcnn.network import KCNN, HostDropout, KCNNConfig
from kcnn.training import KCNNClassifier, pad_batch, resolve_device
from kcnn.words import WordSequences


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, even where the tests run on one with a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def toy_task(n_songs: int = 24) -> tuple[WordSequences, list[str]]:
    rng = np.random.default_rng(1)
    cents = (rng.normal(size=(6, 4)).astype(np.float32),)
    songs, labels = [], []
    for i in range(n_songs):
        song = rng.integers(0, 6, size=(1, 1, 15))
        song[0, 0, 5:8] = 1 if i % 2 else 4
        songs.append(song)
        labels.append("up" if i % 2 else "down")
    return WordSequences(songs, ("mel",), cents), labels


SMALL = dict(conv_units=(8,), hidden_units=(4,), epochs=3, crop_words=(8, 15), patience=None)


def test_auto_is_the_cpu_where_cuda_is_absent(no_cuda):
    assert KCNNClassifier().device == "auto"
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("gpu")


def test_cpu_asked_for_trains_and_predicts_as_the_default(no_cuda):
    X, y = toy_task()
    default = KCNNClassifier(**SMALL).fit(X, y)
    cpu = KCNNClassifier(**SMALL, device="cpu").fit(X, y)
    assert all(p.device.type == "cpu" for p in cpu.network_.parameters())
    assert cpu.loss_curve_ == default.loss_curve_
    assert np.array_equal(cpu.predict_proba(X), default.predict_proba(X))
    assert np.array_equal(cpu.transform(X), default.transform(X))


def test_cuda_is_refused_in_one_line_where_absent(no_cuda):
    X, y = toy_task()
    with pytest.raises(KcnnError) as refused:
        KCNNClassifier(**SMALL, device="cuda").fit(X, y)
    message = str(refused.value)
    assert "\n" not in message and "'cuda'" in message and "'cpu'" in message, message
    with pytest.raises(InvalidParameterError, match="device"):
        KCNNClassifier(**SMALL, device="gpu").fit(X, y)
    fitted = KCNNClassifier(**SMALL, device="cpu").fit(X, y)
    with pytest.raises(KcnnError, match="'cuda'"):
        fitted.set_params(device="cuda").predict(X)


def test_dropout_masks_come_from_the_cpu_generator():
    x = torch.randn(200, 50, requires_grad=True)
    torch.manual_seed(5)
    kept = torch.rand(x.shape) < 0.7
    torch.manual_seed(5)
    out = HostDropout(0.3).train()(x)
    assert torch.equal(out, x * (kept.float() / 0.7))
    assert 0.28 < 1 - kept.float().mean() < 0.32
    out.sum().backward()  # the gradient passes where the unit was kept, scaled alike
    assert torch.equal(x.grad, kept.float() / 0.7)
    assert HostDropout(0.5).eval()(x) is x and HostDropout(0.0).train()(x) is x


@pytest.mark.parametrize("training", [False, True])
def test_the_network_keeps_every_tensor_on_the_device_of_its_input(training):
    """On PyTorch's data-less "meta" device: a tensor made on the CPU inside would fail."""
    config = KCNNConfig(
        n_words=(7, 5), embed_dims=(3, 2), n_classes=4, conv_units=(8, 8), hidden_units=(6,)
    )
    net = KCNN(config).to("meta").train(training)
    rng = np.random.default_rng(0)
    songs = [np.stack([rng.integers(0, 7, n), rng.integers(0, 5, n)]) for n in (3, 20)]
    words, lengths = pad_batch(songs)
    scores = net(words.to("meta"), lengths.to("meta"))
    assert scores.device.type == "meta" and scores.shape == (2, 4)


def test_a_model_keeps_no_device_and_loads_on_the_one_asked_for(tiny_model, no_cuda):
    _, model, _ = tiny_model
    settings = json.loads((model / "settings.json").read_text())
    assert "device" not in settings["kcnn"]
    loaded = MusicModel.load(model, device="cpu")
    assert loaded.pipeline.named_steps["kcnn"].device == "cpu"
    assert MusicModel.load(model).pipeline.named_steps["kcnn"].device == "auto"


COMMANDS = {
    "train": ["train", "data", "--out", "model"],
    "benchmark": ["benchmark", "data", "--out", "report"],
    "evaluate": ["evaluate", "model", "data"],
    "predict": ["predict", "model", "song.wav"],
    "embed": ["embed", "model", "song.wav", "--out", "vectors.npz"],
    "index": ["index", "model", "music", "--out", "music.index"],
    "similar": ["similar", "music.index", "song.wav"],
    "serve": ["serve", "model"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_device_cuda_is_refused_by_every_command_where_absent(command, no_cuda, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*COMMANDS[command], "--device", "cuda"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device" in err and "device 'cuda'" in err, err

import numpy as np
import torch

from kcnn.network import KCNN, KCNNConfig
from kcnn.training import KCNNClassifier, pad_batch
from kcnn.words import WordSequences


def small_config(**kw) -> KCNNConfig:
    base = dict(n_words=(7, 5), embed_dims=(3, 2), n_classes=4, conv_units=(8,), hidden_units=(6,))
    base.update(kw)
    return KCNNConfig(**base)


def test_lookup_tables_start_at_the_centroids_with_a_zero_padding_row():
    net = KCNN(small_config())
    cents = (torch.randn(7, 3), torch.randn(5, 2))
    net.init_lookups(cents)
    assert torch.equal(net.lookups[0].weight[1:], cents[0])
    assert torch.equal(net.lookups[1].weight[1:], cents[1])
    assert net.lookups[0].weight[0].abs().sum() == 0


def test_a_song_scores_the_same_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    net = KCNN(small_config(conv_units=(8, 8))).eval()
    rng = np.random.default_rng(0)
    short = np.stack([rng.integers(0, 7, 3), rng.integers(0, 5, 3)])
    long = np.stack([rng.integers(0, 7, 20), rng.integers(0, 5, 20)])
    alone = net(*pad_batch([short]))
    words, lengths = pad_batch([short, long])
    together = net(words, lengths)
    assert torch.allclose(alone[0], together[0], atol=1e-6)


def test_frozen_lookup_tables_do_not_change_in_training():
    rng = np.random.default_rng(0)
    cents = (rng.normal(size=(6, 4)).astype(np.float32),)
    songs = [rng.integers(0, 6, size=(1, 12)) for _ in range(12)]
    X = WordSequences(songs, ("mel",), cents)
    y = ["a", "b"] * 6
    frozen = KCNNClassifier(
        conv_units=(8,), hidden_units=(4,), epochs=3, freeze_embeddings=True
    ).fit(X, y)
    tuned = KCNNClassifier(conv_units=(8,), hidden_units=(4,), epochs=3).fit(X, y)
    assert np.allclose(frozen.network_.lookups[0].weight[1:].detach().numpy(), cents[0])
    assert not np.allclose(tuned.network_.lookups[0].weight[1:].detach().numpy(), cents[0])


def test_learns_a_separable_toy_task_and_is_repeatable():
    # class "up" songs contain word 1 runs, class "down" songs word 4 runs
    rng = np.random.default_rng(1)
    cents = (rng.normal(size=(6, 4)).astype(np.float32),)
    songs, y = [], []
    for i in range(40):
        song = rng.integers(0, 6, size=(1, 15))
        song[0, 5:8] = 1 if i % 2 else 4
        songs.append(song)
        y.append("up" if i % 2 else "down")
    X = WordSequences(songs, ("mel",), cents)
    kw = dict(conv_units=(16,), hidden_units=(8,), epochs=30, random_state=3)
    first = KCNNClassifier(**kw).fit(X, y)
    assert (first.predict(X) == np.asarray(y)).mean() == 1.0
    assert first.loss_curve_[-1] < first.loss_curve_[0]
    second = KCNNClassifier(**kw).fit(X, y)
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.transform(X).shape == (40, 8)

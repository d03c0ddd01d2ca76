import numpy as np
import torch

from kcnn.network import KCNN, KCNNConfig
from kcnn.training import KCNNClassifier, pad_batch, random_crops
from kcnn.words import WordSequences

BATCHED = {"rtol": 1e-4, "atol": 1e-5}
"""Tolerance between float32 results computed in batches of other sizes or padding, or in
another run: their sums are rounded in another order (by the CPU's kernels and threads)."""


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
    assert torch.allclose(alone[0], together[0], **BATCHED)


def test_frozen_lookup_tables_do_not_change_in_training():
    rng = np.random.default_rng(0)
    cents = (rng.normal(size=(6, 4)).astype(np.float32),)
    songs = [rng.integers(0, 6, size=(1, 1, 12)) for _ in range(12)]
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
        song = rng.integers(0, 6, size=(1, 1, 15))
        song[0, 0, 5:8] = 1 if i % 2 else 4
        songs.append(song)
        y.append("up" if i % 2 else "down")
    X = WordSequences(songs, ("mel",), cents)
    kw = dict(
        conv_units=(16,),
        hidden_units=(8,),
        epochs=30,
        random_state=3,
        crop_words=(15, 15),
        crops_per_song=1,
        batch_size=8,
        dropout=0.0,
        patience=None,
    )
    first = KCNNClassifier(**kw).fit(X, y)
    assert (first.predict(X) == np.asarray(y)).mean() == 1.0
    assert first.loss_curve_[-1] < first.loss_curve_[0]
    second = KCNNClassifier(**kw).fit(X, y)
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X), **BATCHED)
    assert first.transform(X).shape == (40, 8)


def test_crops_lie_inside_one_view_of_their_song():
    rng = np.random.default_rng(2)
    songs = [rng.integers(0, 50, size=(3, 2, n)) for n in (5, 40, 70)]
    crops, owner = random_crops(songs, 20, 8, 30, rng)
    assert len(crops) == 60 and sorted(set(owner)) == [0, 1, 2]
    for crop, i in zip(crops, owner, strict=True):
        song = songs[i]
        length = crop.shape[1]
        assert 8 <= length <= 30 or length == song.shape[2] == 5
        starts = [
            (v, s)
            for v in range(song.shape[0])
            for s in range(song.shape[2] - length + 1)
            if np.array_equal(song[v, :, s : s + length], crop)
        ]
        assert starts, "a crop is not a run of one view of its song"


def test_early_stopping_keeps_the_best_epoch():
    # random labels: the validation loss is lowest early, then rises as songs are memorised
    # (at this learning rate it ends far above its minimum, whatever the seed)
    rng = np.random.default_rng(4)
    cents = (rng.normal(size=(20, 4)).astype(np.float32),)
    X = WordSequences([rng.integers(0, 20, size=(1, 1, 30)) for _ in range(60)], ("mel",), cents)
    y = rng.choice(["a", "b", "c"], size=60)
    net = KCNNClassifier(
        conv_units=(32,),
        hidden_units=(16,),
        epochs=25,
        patience=25,
        dropout=0.0,
        learning_rate=0.05,
        validation_fraction=0.3,
        random_state=1,
    ).fit(X, y)
    curve = net.validation_curve_
    assert len(curve) == 25 and net.best_epoch_ == int(np.argmin(curve))
    assert net.best_epoch_ < len(curve) - 1  # so restoring the best epoch changes something
    val = net.validation_songs_
    proba = net.predict_proba(WordSequences([X.words[i] for i in val], ("mel",), cents))
    target = np.searchsorted(net.classes_, y[val])
    loss = -np.log(proba[np.arange(len(val)), target]).mean()
    assert abs(loss - min(curve)) < 1e-4


def test_validation_stops_training_when_it_stops_helping():
    rng = np.random.default_rng(5)
    cents = (rng.normal(size=(20, 4)).astype(np.float32),)
    X = WordSequences([rng.integers(0, 20, size=(1, 1, 30)) for _ in range(40)], ("mel",), cents)
    y = rng.choice(["a", "b"], size=40)
    net = KCNNClassifier(
        conv_units=(16,), hidden_units=(8,), epochs=200, patience=3, learning_rate=0.2
    ).fit(X, y)
    assert len(net.loss_curve_) == net.best_epoch_ + 4 < 200


def test_views_are_averaged_in_prediction():
    rng = np.random.default_rng(6)
    cents = (rng.normal(size=(10, 4)).astype(np.float32),)
    two = [rng.integers(0, 10, size=(2, 1, 12)) for _ in range(8)]
    net = KCNNClassifier(conv_units=(8,), hidden_units=(4,), epochs=2, patience=None)
    net.fit(WordSequences(two, ("mel",), cents), ["a", "b"] * 4)
    views = [WordSequences([s[v : v + 1] for s in two], ("mel",), cents) for v in (0, 1)]
    both = WordSequences(two, ("mel",), cents)
    mean = (net.predict_proba(views[0]) + net.predict_proba(views[1])) / 2
    np.testing.assert_allclose(net.predict_proba(both), mean, **BATCHED)
    mean = (net.transform(views[0]) + net.transform(views[1])) / 2
    np.testing.assert_allclose(net.transform(both), mean, **BATCHED)


def test_dynamic_k_scores_a_song_the_same_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    net = KCNN(small_config(conv_units=(8, 8), dynamic_k=True, k=3)).eval()
    rng = np.random.default_rng(0)
    short = np.stack([rng.integers(0, 7, 4), rng.integers(0, 5, 4)])
    long = np.stack([rng.integers(0, 7, 30), rng.integers(0, 5, 30)])
    alone = net(*pad_batch([short]))
    together = net(*pad_batch([short, long]))
    assert torch.allclose(alone[0], together[0], **BATCHED)
    assert not torch.allclose(together[0], together[1], **BATCHED)

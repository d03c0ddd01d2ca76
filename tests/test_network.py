import numpy as np
import pytest
import torch

from kcnn.config import TEXTURE_CODES
from kcnn.network import KCNN, KCNNConfig
from kcnn.training import KCNNClassifier, length_batches, pad_batch, random_crops
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


@pytest.mark.parametrize("dynamic", [False, True])
def test_stacked_convolutions_learn(dynamic):
    # 10 classes of songs drawing their words from 10 distributions; as wide as
    # `--conv-units 500 500`, where sigmoids between the layers kept the loss near ln 10
    rng = np.random.default_rng(0)
    cents = (rng.normal(size=(32, 16)).astype(np.float32),)
    probs = rng.dirichlet(np.full(32, 0.3), size=10)
    songs = [rng.choice(32, size=(1, 1, 30), p=probs[i % 10]) for i in range(60)]
    y = [f"class {i % 10}" for i in range(60)]
    net = KCNNClassifier(
        conv_units=(500, 500), dynamic_k=dynamic, epochs=5, patience=None, random_state=0
    ).fit(WordSequences(songs, ("mel",), cents), y)
    assert net.loss_curve_[-1] < 0.5 * np.log(10)


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


def random_batch(config: KCNNConfig, lengths: list[int], seed: int) -> tuple[torch.Tensor, ...]:
    """Random words (batch, n_types, max length), -1 past each length, and the lengths."""
    rng = np.random.default_rng(seed)
    songs = [np.stack([rng.integers(0, n, size) for n in config.n_words]) for size in lengths]
    return pad_batch(songs)


def outputs_and_gradients(net: KCNN, words: torch.Tensor, lengths: torch.Tensor) -> dict:
    """Class scores and the gradient of a weighted sum of them w.r.t. every parameter."""
    net.zero_grad()
    scores = net(words, lengths)
    (scores * torch.linspace(-1, 2, scores.shape[1], dtype=scores.dtype)).sum().backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    return {"scores": scores.detach(), **grads}


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(n_words=(30, 20, 12), embed_dims=(4, 3, 2)),
        dict(window=3),
        dict(window=4),
        dict(conv_units=(8, 6)),
        dict(conv_units=(8, 6), dynamic_k=True, k=3),
        dict(freeze_embeddings=True),
    ],
)
def test_the_gathered_first_layer_computes_the_plain_convolution(settings):
    config = small_config(**{"n_words": (30, 20), "embed_dims": (4, 3), **settings})
    torch.manual_seed(0)
    net = KCNN(config).double()
    words, lengths = random_batch(config, [17, 3, 9, 1, 12, 5], seed=1)
    net.first_layer = "plain"
    plain = outputs_and_gradients(net, words, lengths)
    net.first_layer = "gathered"
    gathered = outputs_and_gradients(net, words, lengths)
    assert plain.keys() == gathered.keys()
    for name, value in plain.items():
        if value is None:  # frozen lookup tables
            assert gathered[name] is None and config.freeze_embeddings
        else:
            torch.testing.assert_close(gathered[name], value, rtol=1e-9, atol=1e-12, msg=name)
    if not config.freeze_embeddings:  # the padding rows stay fixed
        assert all(lookup.weight.grad[0].abs().max() == 0 for lookup in net.lookups)


def test_the_gathered_first_layer_matches_in_single_precision_too():
    config = small_config(n_words=(64, 64, 64), embed_dims=(12, 12, 12), conv_units=(40,))
    torch.manual_seed(0)
    net = KCNN(config)
    words, lengths = random_batch(config, list(range(16, 65, 4)), seed=2)
    net.first_layer = "plain"
    plain = outputs_and_gradients(net, words, lengths)
    net.first_layer = "gathered"
    gathered = outputs_and_gradients(net, words, lengths)
    for name, value in plain.items():
        torch.testing.assert_close(gathered[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_the_gathered_first_layer_does_not_depend_on_the_thread_count():
    config = small_config(n_words=(64, 64), embed_dims=(12, 12), conv_units=(40,))
    torch.manual_seed(0)
    net = KCNN(config)
    net.first_layer = "gathered"
    words, lengths = random_batch(config, list(range(16, 65, 2)), seed=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = outputs_and_gradients(net, words, lengths)
        torch.set_num_threads(4)
        four = outputs_and_gradients(net, words, lengths)
    finally:
        torch.set_num_threads(threads)
    for name, value in one.items():
        torch.testing.assert_close(four[name], value, **BATCHED, msg=name)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_layer_norm_makes_the_representation_blind_to_the_scale_of_the_pooled_features(
    layer_norm,
):
    torch.manual_seed(0)
    net = KCNN(small_config(layer_norm=layer_norm)).eval()
    words, lengths = random_batch(net.config, [9, 4, 12], seed=1)
    before = net.represent(words, lengths)
    with torch.no_grad():  # the convolution's outputs, hence the pooled features, x 5
        net.convs[0].weight.mul_(5)
        net.convs[0].bias.mul_(5)
    after = net.represent(words, lengths)
    assert torch.allclose(before, after, **BATCHED) == layer_norm
    if layer_norm:
        pooled = net.norm(torch.randn(3, net.norm.normalized_shape[0]) * 7 + 2)
        torch.testing.assert_close(pooled.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(pooled.std(1, unbiased=False), torch.ones(3), **BATCHED)


def test_the_parameters_keep_their_names():
    net = KCNN(small_config(conv_units=(8, 8)))
    assert list(net.state_dict()) == [
        "lookups.0.weight",
        "lookups.1.weight",
        "convs.0.weight",
        "convs.0.bias",
        "convs.1.weight",
        "convs.1.bias",
        "hidden.1.weight",
        "hidden.1.bias",
        "output.1.weight",
        "output.1.bias",
    ]


def test_batches_hold_crops_of_similar_length_in_random_order():
    rng = np.random.default_rng(7)
    lengths = rng.integers(16, 65, size=250)
    batches = length_batches(lengths, 32, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(250))
    assert sorted(len(b) for b in batches) == [26] + [32] * 7
    spans = [np.ptp(lengths[b]) for b in batches]
    assert max(spans) <= 10  # a random batch of 32 spans about 45 lengths
    longest = [lengths[b].max() for b in batches]
    assert longest != sorted(longest)
    again = length_batches(lengths, 32, np.random.default_rng(8))
    assert [b.tolist() for b in again] != [b.tolist() for b in batches]


def test_the_texture_head_reads_the_mean_and_spread_of_the_decoded_segments():
    torch.manual_seed(0)
    net = KCNN(small_config(texture_parts=2, texture_width=3)).eval()
    table = torch.randn(2 * 2, TEXTURE_CODES, 3)  # (types x parts, codes, width)
    net.init_texture((table[:2], table[2:]))
    rng = np.random.default_rng(9)
    short = np.concatenate([rng.integers(0, 5, (2, 6)), rng.integers(0, TEXTURE_CODES, (4, 6))])
    long = np.concatenate([rng.integers(0, 5, (2, 15)), rng.integers(0, TEXTURE_CODES, (4, 15))])
    # the segments' vectors (time, 12): each row's codes decoded, side by side
    x = torch.cat([table[r, torch.from_numpy(short[2 + r])] for r in range(4)], dim=1)
    stats = torch.cat([x.mean(0), x.std(0, unbiased=False)])
    assert torch.allclose(net.texture_stats(*pad_batch([short, long]))[0], stats, **BATCHED)
    # standardised by the statistics it was shown
    shown = torch.randn(50, 24) * torch.rand(24) * 3 + torch.randn(24)
    net.standardise_texture(shown.mean(0), shown.std(0))
    expected = net.texture_head((stats - shown.mean(0)) / shown.std(0))
    scores = net.texture_scores(*pad_batch([short, long]))
    assert torch.allclose(scores[0], expected, **BATCHED)
    # the prediction is the mean of the two heads' softmaxes
    heads = net.scores(*pad_batch([short]))
    mean = (heads[0].softmax(1) + heads[1].softmax(1)) / 2
    assert torch.allclose(net(*pad_batch([short])).exp(), mean, **BATCHED)


def texture_task(rng: np.random.Generator, n_songs: int, n_classes: int = 2):
    """Songs whose words are noise and whose segments are decoded near one of `n_classes`
    levels in dimension 0, the level of their class; their labels; codebook; quantiser."""
    cents = (rng.normal(size=(6, 4)).astype(np.float32),)
    quantiser = np.zeros((1, TEXTURE_CODES, 2), dtype=np.float32)
    quantiser[0, :, 0] = np.linspace(-2, 2, TEXTURE_CODES)
    levels = np.linspace(-1, 1, n_classes)
    songs, y = [], []
    for i in range(n_songs):
        level = levels[i % n_classes]
        codes = np.clip(np.round((level + rng.normal(0, 0.7, 20) + 2) / 4 * 255), 0, 255)
        songs.append(np.stack([rng.integers(0, 6, 20), codes])[None].astype(np.int16))
        y.append(f"level {i % n_classes}")
    return songs, y, cents, quantiser


def test_the_texture_head_learns_what_only_the_texture_codes_tell():
    songs, y, cents, quantiser = texture_task(np.random.default_rng(10), 60)
    X = WordSequences(songs[:40], ("mel",), cents, (quantiser,))
    net = KCNNClassifier(conv_units=(8,), hidden_units=(4,), epochs=15, random_state=0)
    net.fit(X, y[:40])
    new = WordSequences(songs[40:], ("mel",), cents, (quantiser,))
    assert (net.predict(new) == np.array(y[40:])).mean() >= 0.9
    # its input standardised as over crops of the songs it was fitted on (their statistics
    # near the whole songs'; the spread of dimension 0 about 0.7, not the default 0 or 1)
    fitted_on = [songs[i][0] for i in range(40) if i not in set(net.validation_songs_)]
    with torch.no_grad():
        stats = net.network_.texture_stats(*pad_batch(fitted_on))
    assert len(fitted_on) < 40 and stats[:, 2].mean() > 0.5
    assert torch.allclose(net.network_.texture_mean, stats.mean(0), atol=0.1)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_texture_head_is_fitted_once_on_the_fit_songs_and_stays_fixed(n_classes):
    songs, y, cents, quantiser = texture_task(np.random.default_rng(11), 45, n_classes)
    X = WordSequences(songs, ("mel",), cents, (quantiser,))
    kw = {"conv_units": (8,), "hidden_units": (4,), "patience": None, "random_state": 0}
    one = KCNNClassifier(epochs=1, **kw).fit(X, y)
    four = KCNNClassifier(epochs=4, **kw).fit(X, y)
    head = one.network_.texture_head[1]
    assert torch.equal(head.weight, four.network_.texture_head[1].weight)
    assert not torch.equal(one.network_.output[1].weight, four.network_.output[1].weight)
    # a logistic regression's: the songs' own crops, told apart by the head alone
    with torch.no_grad():
        scores = one.network_.texture_scores(*pad_batch([s[0] for s in songs]))
    assert (scores.argmax(1).numpy() == np.unique(y, return_inverse=True)[1]).mean() >= 0.9
    # the validation songs do not shape it
    validated = KCNNClassifier(epochs=1, **{**kw, "patience": 5}).fit(X, y)
    held = set(validated.validation_songs_)
    noisy = [s.copy() for s in songs]
    for i in held:
        noisy[i][0, 1] = np.random.default_rng(i).integers(0, TEXTURE_CODES, noisy[i].shape[2])
    again = KCNNClassifier(epochs=1, **{**kw, "patience": 5}).fit(
        WordSequences(noisy, ("mel",), cents, (quantiser,)), y
    )
    assert held and set(again.validation_songs_) == held
    for name in ("texture_head.1.weight", "texture_mean", "texture_scale"):
        assert torch.equal(
            validated.network_.state_dict()[name], again.network_.state_dict()[name]
        ), name

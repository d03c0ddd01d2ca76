import torch

from kcnn.kmax import dynamic_k, kmax_pool, scan_positions, topk_positions


def test_keeps_the_k_largest_in_time_order():
    x = torch.tensor([[[1.0, 9.0, 3.0, 7.0, 2.0, 8.0]]])
    assert kmax_pool(x, 3).tolist() == [[[9.0, 7.0, 8.0]]]


def test_each_channel_selects_its_own_positions():
    x = torch.tensor([[[5.0, 1.0, 4.0, 0.0], [0.0, 6.0, 1.0, 7.0]]])
    assert kmax_pool(x, 2).tolist() == [[[5.0, 4.0], [6.0, 7.0]]]


def test_gradient_reaches_only_selected_positions():
    x = torch.tensor([[[1.0, 9.0, 3.0, 7.0, 2.0, 8.0]]], requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0])
    (kmax_pool(x, 3) * weights).sum().backward()
    assert x.grad.tolist() == [[[0.0, 1.0, 0.0, 2.0, 0.0, 3.0]]]


def test_padded_positions_are_never_selected():
    # the second item has 2 real positions; its padding holds large values
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]], [[5.0, 1.0, 100.0, 100.0]]], requires_grad=True)
    out = kmax_pool(x, 2, lengths=torch.tensor([4, 2]))
    assert out.tolist() == [[[3.0, 4.0]], [[5.0, 1.0]]]
    out.sum().backward()
    assert x.grad[1, 0, 2:].tolist() == [0.0, 0.0]


def test_song_shorter_than_k_keeps_all_positions_then_zeros():
    x = torch.tensor([[[3.0, -1.0, 7.0]]], requires_grad=True)
    out = kmax_pool(x, 5, lengths=torch.tensor([2]))
    assert out.tolist() == [[[3.0, -1.0, 0.0, 0.0, 0.0]]]
    out.sum().backward()
    assert x.grad.tolist() == [[[1.0, 1.0, 0.0]]]


def test_batch_shorter_than_k():
    x = torch.tensor([[[2.0, 1.0]]])
    assert kmax_pool(x, 4).tolist() == [[[2.0, 1.0, 0.0, 0.0]]]


def test_ties_keep_time_order():
    x = torch.tensor([[[1.0, 5.0, 5.0, 5.0, 0.0]]])
    assert kmax_pool(x, 3).tolist() == [[[5.0, 5.0, 5.0]]]


def test_each_item_keeps_its_own_k():
    x = torch.tensor([[[1.0, 9.0, 3.0, 7.0]], [[4.0, 2.0, 6.0, 5.0]]])
    out = kmax_pool(x, torch.tensor([1, 3]))
    assert out.tolist() == [[[9.0, 0.0, 0.0]], [[4.0, 6.0, 5.0]]]


def test_a_full_batch_pools_as_the_general_path_does():
    x = torch.randn(4, 6, 9, requires_grad=True)
    weights = torch.randn(4, 6, 3)
    fast = kmax_pool(x, 3, torch.full((4,), 9))  # every item fills the batch
    (fast * weights).sum().backward()
    fast_grad, x.grad = x.grad.clone(), None
    general = kmax_pool(x, torch.full((4,), 3))  # a k per item takes the general path
    (general * weights).sum().backward()
    assert torch.equal(fast, general) and torch.equal(fast_grad, x.grad)


def test_dynamic_k_follows_the_song_length_and_layer():
    lengths = torch.tensor([100, 10, 3])
    # two convolution layers: the lower one keeps half of each song, at least k_top
    assert dynamic_k(lengths, 5, layer=1, n_layers=2).tolist() == [50, 5, 5]
    assert dynamic_k(lengths, 5, layer=2, n_layers=2).tolist() == [5, 5, 5]
    assert dynamic_k(lengths, 4, layer=1, n_layers=3).tolist() == [67, 7, 4]


def test_the_cpu_scan_finds_the_positions_topk_finds():
    x = torch.randn(6, 7, 12, generator=torch.Generator().manual_seed(0))  # no ties
    lengths = torch.tensor([12, 12, 3, 1, 8, 12])
    for k in (1, 5, 15, torch.tensor([5, 2, 5, 3, 12, 7])):
        assert torch.equal(scan_positions(x, k, lengths), topk_positions(x, k, lengths))
    assert torch.equal(scan_positions(x, 5), topk_positions(x, 5))


def test_of_equal_values_the_earliest_are_kept():
    x = torch.tensor([[[2.0, 5.0, 1.0, 5.0, 5.0], [4.0, 4.0, 4.0, 4.0, 9.0]]])
    assert scan_positions(x, 2).tolist() == [[[1, 3], [0, 4]]]

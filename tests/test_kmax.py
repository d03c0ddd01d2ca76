import torch

from kcnn.kmax import kmax_pool


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

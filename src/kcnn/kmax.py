"""Order-preserving k-max pooling over time, aware of padded positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kmax_pool(x: torch.Tensor, k: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the k largest values of each channel, in their original time order.

    x: (batch, channels, time); lengths: (batch,) number of real positions of each
    item (the rest is padding and is never selected). Returns (batch, channels, k).
    An item with fewer than k real positions keeps all of them, in order, followed
    by zeros that carry no gradient. Gradients reach only the selected positions.
    """
    batch, _, time = x.shape
    if lengths is None:
        lengths = torch.full((batch,), time, dtype=torch.long, device=x.device)
    positions = torch.arange(max(time, k), device=x.device)
    valid = positions[None, :] < lengths[:, None]  # (batch, max(time, k))
    if time < k:
        x = F.pad(x, (0, k - time))
    scores = x.detach().masked_fill(~valid[:, None, :], float("-inf"))
    top = scores.topk(k, dim=-1).indices.sort(dim=-1).values  # (batch, channels, k)
    picked = x.gather(-1, top)
    real = top < lengths[:, None, None]
    return torch.where(real, picked, torch.zeros_like(picked))

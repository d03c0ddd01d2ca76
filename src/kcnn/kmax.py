"""Order-preserving k-max pooling over time, aware of padded positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kmax_pool(
    x: torch.Tensor, k: int | torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Keep the k largest values of each channel, in their original time order.

    x: (batch, channels, time); k: an int, or (batch,) ints, one per item; lengths:
    (batch,) number of real positions of each item (the rest is padding and is never
    selected). Returns (batch, channels, max k). An item keeps min(k, length) values, in
    order, followed by zeros that carry no gradient. Gradients reach only the selected
    positions.
    """
    batch, _, time = x.shape
    full = lengths is None or (x.device.type == "cpu" and bool((lengths == time).all()))
    if isinstance(k, int) and k <= time and full:
        # no padding and no item shorter than k (most training batches): nothing to mask;
        # elsewhere than on the CPU, looking at the lengths would wait for the device
        return x.gather(-1, x.detach().topk(k, dim=-1).indices.sort(dim=-1).values)
    if lengths is None:
        lengths = torch.full((batch,), time, dtype=torch.long, device=x.device)
    per_item = torch.as_tensor(k, device=x.device).expand(batch)
    k_max = k if isinstance(k, int) else int(k.max())  # an int needs no wait for a GPU
    positions = torch.arange(max(time, k_max), device=x.device)
    valid = positions[None, :] < lengths[:, None]  # (batch, max(time, k))
    if time < k_max:
        x = F.pad(x, (0, k_max - time))
    scores = x.detach().masked_fill(~valid[:, None, :], float("-inf"))
    top = scores.topk(k_max, dim=-1).indices  # (batch, channels, k_max), by value
    kept = torch.arange(k_max, device=x.device) < torch.minimum(per_item, lengths)[:, None]
    top = top.masked_fill(~kept[:, None, :], x.shape[-1])  # dropped ones sort last
    top = top.sort(dim=-1).values
    real = top < x.shape[-1]
    picked = x.gather(-1, top.clamp(max=x.shape[-1] - 1))
    return torch.where(real, picked, torch.zeros_like(picked))


def dynamic_k(lengths: torch.Tensor, k_top: int, layer: int, n_layers: int) -> torch.Tensor:
    """Kalchbrenner et al. (2014)'s k of pooling layer `layer` (1-based) of `n_layers`:
    max(k_top, ceil((n_layers - layer) / n_layers * length)), per item, (batch,)."""
    fraction = (n_layers - layer) / n_layers
    k = torch.ceil(lengths.to(torch.float64) * fraction).to(torch.long)
    return k.clamp(min=k_top) if fraction else torch.full_like(lengths, k_top)

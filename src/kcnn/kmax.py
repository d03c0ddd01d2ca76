"""Order-preserving k-max pooling over time, aware of padded positions."""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import torch

Positions = Callable[[torch.Tensor, int | torch.Tensor, torch.Tensor | None], torch.Tensor]
"""How k-max pooling finds the positions it keeps: `scan_positions`, `topk_positions`."""


def kmax_pool(
    x: torch.Tensor,
    k: int | torch.Tensor,
    lengths: torch.Tensor | None = None,
    find: Positions | None = None,
) -> torch.Tensor:
    """Keep the k largest values of each channel, in their original time order.

    x: (batch, channels, time); k: an int, or (batch,) ints, one per item; lengths:
    (batch,) number of real positions of each item (the rest is padding and is never
    selected). Returns (batch, channels, max k). An item keeps min(k, length) values, in
    order, followed by zeros that carry no gradient. Gradients reach only the selected
    positions.

    `find` finds the positions; by default `scan_positions` on the CPU (about 5 times
    faster than `torch.topk` on the network's batches; of equal values it keeps the
    earliest), `topk_positions` elsewhere (which of equal values it keeps is unspecified).
    """
    if find is None:
        find = scan_positions if x.device.type == "cpu" else topk_positions
    top = find(x.detach(), k, lengths)  # (batch, channels, max k), x.shape[-1]: none
    time = x.shape[-1]
    picked = x.gather(-1, top.clamp(max=time - 1))
    if x.device.type == "cpu" and bool((top < time).all()):  # nothing to zero
        return picked
    return torch.where(top < time, picked, torch.zeros_like(picked))


def scan_positions(
    x: torch.Tensor, k: int | torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """The positions `kmax_pool` keeps of CPU tensor x (batch, channels, time), in time
    order, x.shape[-1] where an item keeps fewer than max k: (batch, channels, max k)."""
    batch, _, time = x.shape
    per_item = torch.as_tensor(k).expand(batch).numpy().astype(np.int64)
    real = np.full(batch, time) if lengths is None else lengths.numpy().astype(np.int64)
    by_time = x.transpose(1, 2).contiguous().numpy()  # the gathered convolution's layout
    k_max = k if isinstance(k, int) else int(k.max())
    return torch.from_numpy(_scan(by_time, per_item, real, k_max))


@numba.njit(cache=True, nogil=True)
def _scan(x: np.ndarray, k: np.ndarray, lengths: np.ndarray, k_max: int) -> np.ndarray:
    """x (batch, time, channels): every channel's kept positions (batch, channels, k_max).
    One pass over time keeps, per channel, the k largest so far by value (of equal values,
    the earliest); the innermost loops run over the channels, contiguous in memory."""
    batch, time, channels = x.shape
    out = np.full((batch, channels, k_max), time, dtype=np.int64)
    values = np.empty((k_max, channels), dtype=x.dtype)
    kept = np.empty((k_max, channels), dtype=np.int32)
    value = np.empty(channels, dtype=x.dtype)
    where = np.empty(channels, dtype=np.int32)
    for b in range(batch):
        n = min(lengths[b], time)
        kk = min(k[b], n)
        values[:kk] = -np.inf
        kept[:kk] = time
        for t in range(n):
            value[:] = x[b, t]
            where[:] = t
            for j in range(kk):  # insert into the descending values[:kk, c]
                for c in range(channels):
                    v, w = value[c], values[j, c]
                    i, u = where[c], kept[j, c]
                    larger = v > w or (v == w and i < u)
                    values[j, c] = v if larger else w
                    kept[j, c] = i if larger else u
                    value[c] = w if larger else v
                    where[c] = u if larger else i
        for j in range(1, kk):  # the kept positions into time order
            for a in range(j, 0, -1):
                for c in range(channels):
                    early, late = kept[a - 1, c], kept[a, c]
                    swap = early > late
                    kept[a - 1, c] = late if swap else early
                    kept[a, c] = early if swap else late
        out[b, :, :kk] = kept[:kk].T
    return out


def topk_positions(
    x: torch.Tensor, k: int | torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """`scan_positions` by `torch.topk`, on any device: (batch, channels, max k)."""
    batch, _, time = x.shape
    if isinstance(k, int) and k <= time and lengths is None:  # nothing to mask
        return x.topk(k, dim=-1).indices.sort(dim=-1).values
    if lengths is None:
        lengths = torch.full((batch,), time, dtype=torch.long, device=x.device)
    per_item = torch.as_tensor(k, device=x.device).expand(batch)
    k_max = k if isinstance(k, int) else int(k.max())  # an int needs no wait for a GPU
    positions = torch.arange(max(time, k_max), device=x.device)
    valid = positions[None, :] < lengths[:, None]  # (batch, max(time, k))
    if time < k_max:
        x = torch.nn.functional.pad(x, (0, k_max - time))
    scores = x.masked_fill(~valid[:, None, :], float("-inf"))
    top = scores.topk(k_max, dim=-1).indices  # (batch, channels, k_max), by value
    kept = torch.arange(k_max, device=x.device) < torch.minimum(per_item, lengths)[:, None]
    return top.masked_fill(~kept[:, None, :], time).sort(dim=-1).values  # none: last


def dynamic_k(lengths: torch.Tensor, k_top: int, layer: int, n_layers: int) -> torch.Tensor:
    """Kalchbrenner et al. (2014)'s k of pooling layer `layer` (1-based) of `n_layers`:
    max(k_top, ceil((n_layers - layer) / n_layers * length)), per item, (batch,)."""
    fraction = (n_layers - layer) / n_layers
    k = torch.ceil(lengths.to(torch.float64) * fraction).to(torch.long)
    return k.clamp(min=k_top) if fraction else torch.full_like(lengths, k_top)

"""The KCNN: lookup tables, convolution over texture windows, k-max pooling, layer
normalisation, sigmoid layers; beside it, a texture head on the statistics of the segments."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kcnn.config import TEXTURE_CODES, KCNNSettings
from kcnn.kmax import dynamic_k, kmax_pool


@dataclass(frozen=True)
class KCNNConfig:
    """Shape of the network (defaults: those of `KCNNSettings`, but no dropout)."""

    n_words: tuple[int, ...]  # codebook size of each feature type
    embed_dims: tuple[int, ...]  # lookup-table dimension of each feature type
    n_classes: int
    window: int = KCNNSettings.window  # convolution window, in audio words
    conv_units: tuple[int, ...] = KCNNSettings.conv_units  # one entry per convolution layer
    k: int = KCNNSettings.k  # k of k-max pooling
    dynamic_k: bool = KCNNSettings.dynamic_k  # k-max pooling after every lower convolution
    layer_norm: bool = KCNNSettings.layer_norm  # pooled features standardised per example
    hidden_units: tuple[int, ...] = KCNNSettings.hidden_units  # the last is the representation
    dropout: float = 0.0  # dropout rate on the pooled features and the hidden layers
    freeze_embeddings: bool = KCNNSettings.freeze_embeddings  # "ULT": lookup tables fixed
    texture_parts: int = 0  # texture codes per segment and type (0: no texture head)
    texture_width: int = 0  # whitened dimensions each texture code stands for

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KCNNConfig:
        tuples = ("n_words", "embed_dims", "conv_units", "hidden_units")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


class _RowSums(torch.autograd.Function):
    """out[n] = sum over s of table[rows[n, s]]: table (n_rows, units), rows (n, slots).

    The gradient is a gather too: each table row sums the output gradients of the
    positions that read it, found by sorting `rows` (not a scatter-add row by row).
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.n_rows = len(table)
        return F.embedding_bag(rows, table, mode="sum")  # (n, units)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        flat = rows.flatten()
        readers = flat.sort(stable=True).indices // rows.shape[1]  # positions, by row read
        counts = torch.bincount(flat, minlength=ctx.n_rows)
        starts = counts.cumsum(0) - counts
        return F.embedding_bag(readers, grad.contiguous(), starts, mode="sum"), None


class HostDropout(nn.Dropout):
    """Dropout whose mask the CPU's random generator draws, whatever the device: a unit
    is kept where a uniform draw falls below 1 - p (three times faster than
    `nn.Dropout`'s Bernoulli draws on the CPU). On a GPU it drops the units the CPU would
    have dropped, so that training there follows training on the CPU.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        mask = torch.rand(x.shape, dtype=x.dtype).lt_(keep).div_(keep)  # 0 or 1 / keep
        return x * mask.to(x.device)


class KCNN(nn.Module):
    """Audio-word sequences -> class log-probabilities; `represent` gives the song-level
    vector.

    Input words: int64 (batch, n_rows, time): rows 0..n_types-1 indices in [0, n_words) of
    each type, then (with `texture_parts`) the texture codes of each type, as in
    `WordSequences`; lengths: (batch,) real positions per song (the rest of `time` is
    padding). Index 0 of every lookup table is reserved for padding (a fixed zero vector).

    The texture head, a softmax layer on the mean and standard deviation over the crop of
    the segments' whitened vectors (decoded from their texture codes, fixed), standardised
    as over the training songs (`standardise_texture`), is set by `init_texture_head` (a
    logistic regression fitted beside the network, not by its gradient steps); the
    prediction is the mean of the KCNN's and the texture head's softmaxes.
    """

    def __init__(self, config: KCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.lookups = nn.ModuleList(
            nn.Embedding(n + 1, d, padding_idx=0)
            for n, d in zip(config.n_words, config.embed_dims, strict=True)
        )
        if config.freeze_embeddings:
            for table in self.lookups:
                table.weight.requires_grad_(False)
        convs: list[nn.Module] = []
        width = sum(config.embed_dims)
        for units in config.conv_units:
            convs.append(nn.Conv1d(width, units, config.window, padding=config.window // 2))
            width = units
        self.convs = nn.ModuleList(convs)
        width *= config.k
        # each example's pooled features to mean 0 and variance 1 (no learned scale or shift)
        self.norm = (
            nn.LayerNorm(width, elementwise_affine=False) if config.layer_norm else nn.Identity()
        )
        hidden: list[nn.Module] = []
        for units in config.hidden_units:
            hidden += [HostDropout(config.dropout), nn.Linear(width, units), nn.Sigmoid()]
            width = units
        self.hidden = nn.Sequential(*hidden)
        self.output = nn.Sequential(HostDropout(config.dropout), nn.Linear(width, config.n_classes))
        if config.texture_parts:
            rows = len(config.n_words) * config.texture_parts
            # row r, code c: the whitened dimensions part r % parts of type r // parts stands for
            self.register_buffer("texture", torch.zeros(rows, TEXTURE_CODES, config.texture_width))
            stats = 2 * rows * config.texture_width  # mean and standard deviation
            # the statistics' mean and standard deviation over the training songs
            self.register_buffer("texture_mean", torch.zeros(stats))
            self.register_buffer("texture_scale", torch.ones(stats))
            # fixed: set by `init_texture_head` (the Identity keeps saved models' key names)
            self.texture_head = nn.Sequential(nn.Identity(), nn.Linear(stats, config.n_classes))
            self.texture_head.requires_grad_(False)
        # how `first_conv` computes: a Conv1d over the vectors ("plain"), or sums of the
        # products W_j M formed once per batch ("gathered"); "auto": see `first_path`
        self.first_layer: Literal["auto", "plain", "gathered"] = "auto"

    def init_lookups(self, centroids: tuple[torch.Tensor, ...]) -> None:
        """Set each lookup table's rows 1..n to its codebook's centroids (n, d)."""
        with torch.no_grad():
            for table, cents in zip(self.lookups, centroids, strict=True):
                table.weight[1:].copy_(torch.as_tensor(cents, dtype=table.weight.dtype))
                table.weight[0].zero_()

    def init_texture(self, quantisers: tuple[torch.Tensor, ...]) -> None:
        """Set the texture decoding table from each type's quantiser (parts, codes, width)."""
        with torch.no_grad():
            self.texture.copy_(torch.cat([torch.as_tensor(q) for q in quantisers]))

    def init_texture_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the texture head's softmax layer: weight (n_classes, 2 * dims), bias (n_classes,)."""
        with torch.no_grad():
            self.texture_head[1].weight.copy_(weight)
            self.texture_head[1].bias.copy_(bias)

    def represent(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, n_rows, time), (batch,) -> (batch, hidden_units[-1])."""
        words = words[:, : len(self.config.n_words)]  # (batch, n_types, time)
        time = torch.arange(words.shape[-1], device=words.device)
        mask = (time[None, :] < lengths[:, None]).unsqueeze(1)  # (batch, 1, time)
        x = self.first_conv(words, mask)  # (batch, units, time)
        n_layers = len(self.convs)
        for layer, conv in enumerate(self.convs[1:], start=1):
            if self.config.dynamic_k:  # (batch, units, max k_l): the song shrinks
                k = dynamic_k(lengths, self.config.k, layer, n_layers)
                x, lengths = kmax_pool(x, k, lengths), torch.minimum(k, lengths)
                positions = torch.arange(x.shape[-1], device=x.device)
                mask = (positions[None, :] < lengths[:, None]).unsqueeze(1)
            # tanh, centred on 0 (Kalchbrenner et al. 2014): after sigmoids (mean 0.5) the
            # upper layer's input barely varied, and stacked layers did not learn
            x = conv(torch.tanh(x) * mask)  # (batch, units, time)
        pooled = kmax_pool(x, self.config.k, lengths).flatten(1)  # (batch, units * k)
        return self.hidden(self.norm(pooled))

    def first_path(self, words: torch.Tensor) -> Literal["plain", "gathered"]:
        """How `first_conv` computes on `words` (batch, n_types, time): `first_layer`, or if
        "auto" the faster, by a cost rule fitted to measurements (64 to 1024 words, 16 to 48
        dimensions, 100 to 500 units). Per unit and offset, gathering saves positions *
        channels multiply-adds, less about 8 a product read, and spends 2 * words * dims to
        form the products (counted half in training, where the plain backward is dearer)."""
        if self.first_layer != "auto":
            return self.first_layer
        dims, n_words = self.config.embed_dims, self.config.n_words
        saved = words.shape[0] * words.shape[2] * (sum(dims) - 8 * len(dims))
        spent = 2 * sum(n * d for n, d in zip(n_words, dims, strict=True))
        return "gathered" if saved > spent / (2 if torch.is_grad_enabled() else 1) else "plain"

    def first_conv(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The first convolution of the lookup-table vectors of `words` (batch, n_types, time)
        where `mask` (batch, 1, time) is true (zero elsewhere) -> (batch, units, time)."""
        conv, cfg = self.convs[0], self.config
        window, dims = cfg.window, cfg.embed_dims
        if self.first_path(words) == "plain":
            x = torch.cat([table(words[:, i] + 1) for i, table in enumerate(self.lookups)], dim=-1)
            return conv(x.transpose(1, 2) * mask)
        # table[(i * n + v + 1) * window + j] = (W_j M_i)[v + 1]: offset j's weights on word
        # v of type i, from one batched product of the tables and weights, each zero-padded
        # to n = 1 + the most words and to the most dimensions; row 0 of each type is zero
        units, n, d = conv.out_channels, 1 + max(cfg.n_words), max(dims)
        weight = conv.weight.permute(1, 2, 0).reshape(sum(dims), window * units)
        lookups = [  # (n, d) each: rows 1.. the words', row 0 zero (padding, fixed)
            F.pad(t.weight[1:], (0, d - t.embedding_dim, 1, n - t.num_embeddings))
            for t in self.lookups
        ]
        weights = [F.pad(w, (0, 0, 0, d - len(w))) for w in weight.split(dims)]
        # (n_types, n, window * units)
        table = torch.bmm(torch.stack(lookups), torch.stack(weights))
        # rows[b, t, i, j]: the product read for word t + j - window // 2 of type i (-1 past
        # the song: the zero row)
        words = F.pad(words.masked_fill(~mask, -1), (window // 2, window // 2), value=-1)
        words = words.unfold(2, window, 1).transpose(1, 2)  # (batch, time, n_types, window)
        first = torch.arange(len(dims), device=words.device)[:, None] * n + 1  # (n_types, 1)
        rows = (first + words) * window + torch.arange(window, device=words.device)
        x = _RowSums.apply(table.view(-1, units), rows.flatten(2).flatten(0, 1))  # (b * t, units)
        return (x.view(*rows.shape[:2], units) + conv.bias).transpose(1, 2)

    def standardise_texture(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise the texture head's input (2 * dims,) by this mean and standard
        deviation (those of `texture_stats` over the training songs)."""
        with torch.no_grad():
            self.texture_mean.copy_(mean)
            self.texture_scale.copy_(std.clamp(min=1e-6))

    def texture_stats(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, n_rows, time), (batch,) -> the mean and standard deviation over time of
        the segments' whitened vectors, decoded from their texture codes (batch, 2 * dims)."""
        codes = words[:, len(self.config.n_words) :].clamp(min=0)  # (batch, rows, time)
        rows = torch.arange(codes.shape[1], device=codes.device)[None, :, None]
        x = self.texture[rows, codes].permute(0, 2, 1, 3).flatten(2)  # (batch, time, dims)
        time = torch.arange(x.shape[1], device=x.device)
        mask = (time[None, :] < lengths[:, None]).unsqueeze(2)  # (batch, time, 1)
        n = lengths[:, None].to(x.dtype)
        mean = (x * mask).sum(1) / n  # (batch, dims)
        std = ((x - mean[:, None]).square() * mask).sum(1).div(n).sqrt()  # (batch, dims)
        return torch.cat([mean, std], 1)

    def texture_scores(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, n_rows, time), (batch,) -> the texture head's class scores (batch, n_classes)."""
        stats = self.texture_stats(words, lengths)
        return self.texture_head((stats - self.texture_mean) / self.texture_scale)

    def scores(self, words: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """(batch, n_rows, time), (batch,) -> each head's class scores (batch, n_classes): the
        KCNN's, then the texture head's (if any)."""
        heads = [self.output(self.represent(words, lengths))]
        if self.config.texture_parts:
            heads.append(self.texture_scores(words, lengths))
        return heads

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, n_rows, time), (batch,) -> class log-probabilities (batch, n_classes):
        the log of the mean of the heads' softmaxes."""
        heads = torch.stack([h.log_softmax(1) for h in self.scores(words, lengths)])
        return heads.logsumexp(0) - math.log(len(heads))

"""The KCNN: lookup tables, convolution over texture windows, k-max pooling, sigmoid layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from kcnn.kmax import dynamic_k, kmax_pool


@dataclass(frozen=True)
class KCNNConfig:
    """Shape of the network (paper Table 1 gives the defaults)."""

    n_words: tuple[int, ...]  # codebook size of each feature type
    embed_dims: tuple[int, ...]  # lookup-table dimension of each feature type
    n_classes: int
    window: int = 5  # convolution window, in audio words
    conv_units: tuple[int, ...] = (500,)  # one entry per stacked convolution layer
    k: int = 5  # k of k-max pooling
    dynamic_k: bool = False  # k-max pooling after every lower convolution, k by song length
    hidden_units: tuple[int, ...] = (300,)  # sigmoid layers; the last is the representation
    dropout: float = 0.0  # dropout rate on the pooled features and the hidden layers
    freeze_embeddings: bool = False  # the paper's "ULT": lookup tables fixed after init

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KCNNConfig:
        tuples = ("n_words", "embed_dims", "conv_units", "hidden_units")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


class HostDropout(nn.Dropout):
    """Dropout whose mask the CPU's random generator draws, whatever the device.

    On the CPU it is nn.Dropout, bit for bit; on a GPU it drops the units the CPU would
    have dropped, so that training there follows training on the CPU.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        mask = torch.empty(x.shape, dtype=x.dtype).bernoulli_(keep).div_(keep)
        return x * mask.to(x.device)


class KCNN(nn.Module):
    """Audio-word sequences -> class scores; `represent` gives the song-level vector.

    Input words: int64 (batch, n_types, time), indices in [0, n_words) of each type;
    lengths: (batch,) real positions per song (the rest of `time` is padding).
    Index 0 of every lookup table is reserved for padding (a fixed zero vector).
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
        hidden: list[nn.Module] = []
        width *= config.k
        for units in config.hidden_units:
            hidden += [HostDropout(config.dropout), nn.Linear(width, units), nn.Sigmoid()]
            width = units
        self.hidden = nn.Sequential(*hidden)
        self.output = nn.Sequential(HostDropout(config.dropout), nn.Linear(width, config.n_classes))

    def init_lookups(self, centroids: tuple[torch.Tensor, ...]) -> None:
        """Set each lookup table's rows 1..n to its codebook's centroids (n, d)."""
        with torch.no_grad():
            for table, cents in zip(self.lookups, centroids, strict=True):
                table.weight[1:].copy_(torch.as_tensor(cents, dtype=table.weight.dtype))
                table.weight[0].zero_()

    def represent(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, n_types, time), (batch,) -> (batch, hidden_units[-1])."""
        x = torch.cat([table(words[:, i] + 1) for i, table in enumerate(self.lookups)], dim=-1)
        mask = (
            torch.arange(words.shape[-1], device=words.device)[None, :] < lengths[:, None]
        ).unsqueeze(1)
        x = x.transpose(1, 2)  # (batch, channels, time)
        n_layers = len(self.convs)
        for layer, conv in enumerate(self.convs, start=1):
            x = conv(x * mask)  # (batch, units, time)
            if layer == n_layers:
                break
            if self.config.dynamic_k:  # (batch, units, max k_l): the song shrinks
                k = dynamic_k(lengths, self.config.k, layer, n_layers)
                x, lengths = kmax_pool(x, k, lengths), torch.minimum(k, lengths)
                positions = torch.arange(x.shape[-1], device=x.device)
                mask = (positions[None, :] < lengths[:, None]).unsqueeze(1)
            x = torch.sigmoid(x)
        pooled = kmax_pool(x, self.config.k, lengths)  # (batch, units, k)
        return self.hidden(pooled.flatten(1))

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, n_types, time), (batch,) -> class scores (batch, n_classes)."""
        return self.output(self.represent(words, lengths))

"""Per-table feature encoders and the relative-time encoding.

A row enters the GNN as the sum of its column encodings (a linear map of the
standardised numbers, one embedding per categorical column) and of how long
before the seed's anchor time it happened. The relative time, not the
absolute one, is what lets a model trained on 2023 anchors score 2024.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .columns import ColumnSpec
from .graph import STATIC_TIME

US_PER_DAY = 86_400 * 1_000_000


class TableEncoder(nn.Module):
    """``(x_num [n, F], x_cat [n, C], x_ts [n, T], anchor_us [n]) -> [n, channels]`` for one node type."""

    def __init__(self, spec: ColumnSpec, channels: int):
        super().__init__()
        self.num = nn.Linear(spec.num_dim, channels) if spec.num_dim else None
        self.cats = nn.ModuleList(nn.Embedding(size, channels) for size in spec.cat_sizes)
        self.ts = nn.Linear(2 * len(spec.timestamps), channels) if spec.timestamps else None
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self) -> None:
        for lin in (self.num, self.ts):
            if lin is not None:
                lin.reset_parameters()
        for emb in self.cats:
            emb.reset_parameters()
        nn.init.zeros_(self.bias)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor, x_ts: torch.Tensor | None = None,
                anchor_us: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bias.expand(max(x_num.shape[0], x_cat.shape[0]), -1)
        if self.num is not None:
            out = out + self.num(x_num)
        for i, emb in enumerate(self.cats):
            out = out + emb(x_cat[:, i])
        if self.ts is not None:
            out = out + self.ts(timestamp_features(x_ts, anchor_us))
        return out


def timestamp_features(x_ts: torch.Tensor, anchor_us: torch.Tensor) -> torch.Tensor:
    """Days from each timestamp to the anchor (log scale) and a missing flag; a later timestamp is missing."""
    days = (anchor_us.double().unsqueeze(1) / 1e6 - x_ts) / 86_400
    missing = ~(days >= 0)  # NaN (NULL) and future dates alike
    value = torch.where(missing, torch.zeros_like(days), torch.log1p(days.clamp(min=0)) / 5)
    return torch.cat([value, missing.double()], 1).float()


class RelativeTimeEncoder(nn.Module):
    """``anchor - time`` in days -> [n, channels]: log scale, periodic terms, static flag."""

    PERIODS_DAYS = (1.0, 7.0, 30.0, 365.0)

    def __init__(self, channels: int):
        super().__init__()
        self.lin = nn.Linear(2 + 2 * len(self.PERIODS_DAYS), channels)
        self.register_buffer("freq", torch.tensor([2 * math.pi / p for p in self.PERIODS_DAYS]))

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, time_us: torch.Tensor, anchor_us: torch.Tensor) -> torch.Tensor:
        static = time_us == STATIC_TIME
        days = ((anchor_us - torch.where(static, anchor_us, time_us)).float() / US_PER_DAY).clamp(min=0)
        ang = days.unsqueeze(1) * self.freq
        feats = torch.cat([torch.log1p(days).unsqueeze(1) / 5, static.float().unsqueeze(1),
                           torch.sin(ang), torch.cos(ang)], 1)
        return self.lin(feats)

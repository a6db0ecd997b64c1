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

    #: in training, the share of rows whose key is hidden (read as an unseen key)
    KEY_DROPOUT = 0.5

    def __init__(self, spec: ColumnSpec, channels: int, deep: bool = False):
        super().__init__()
        self.has_key = spec.key is not None
        self.num = None
        if spec.num_dim:
            # ``deep`` (format 4): numbers through a small MLP, so a threshold (age over 60) can be learnt
            # before the row's encoding is summed and passed on
            self.num = (nn.Sequential(nn.Linear(spec.num_dim, channels), nn.ReLU(), nn.Linear(channels, channels))
                        if deep else nn.Linear(spec.num_dim, channels))
        self.cats = nn.ModuleList(nn.Embedding(size, channels) for size in spec.cat_sizes)
        self.ts = nn.Linear(2 * len(spec.timestamps), channels) if spec.timestamps else None
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self) -> None:
        for module in (self.num, self.ts):
            for lin in module.modules() if module is not None else ():
                if isinstance(lin, nn.Linear):
                    lin.reset_parameters()
        for emb in self.cats:
            emb.reset_parameters()
        nn.init.zeros_(self.bias)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor, x_ts: torch.Tensor | None = None,
                anchor_us: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bias.expand(max(x_num.shape[0], x_cat.shape[0]), -1)
        if self.num is not None:
            out = out + self.num(x_num)
        if self.has_key and self.training:
            # a per-row embedding learns fast and alone would soon explain every training label; hidden
            # for half the rows, the model must also score from the columns, and the unseen code learns
            # what a row added after training should get
            hide = torch.rand(x_cat.shape[0]) < self.KEY_DROPOUT
            x_cat = torch.cat([x_cat[:, :-1], torch.where(hide, 0, x_cat[:, -1]).unsqueeze(1)], 1)
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


class CalendarEncoder(nn.Module):
    """An anchor time -> [n, channels]: where it falls in each of ``periods`` (days), as sines and cosines.

    Relative times say how long ago each row happened, never when "now" is:
    whether a ski customer books in the next month depends on whether the
    anchor is in November or in May, and a carrier's delays tomorrow on
    whether tomorrow is a Friday. A period is only worth reading once the
    training anchors have covered it whole (``periods_seen``): trained on
    January to October, the model would meet December's phase of the year
    for the first time in the test window, with weights that never saw it.
    """

    PERIODS_DAYS = (1.0, 7.0, 365.2425)

    def __init__(self, channels: int, periods: tuple[float, ...] = PERIODS_DAYS):
        super().__init__()
        self.periods = tuple(periods)
        self.lin = nn.Linear(2 * len(self.periods), channels)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    @classmethod
    def periods_seen(cls, anchors_us: torch.Tensor) -> tuple[float, ...]:
        """The periods whose every phase lies between the first and the last of ``anchors_us``."""
        if anchors_us.numel() == 0:
            return ()
        span_days = float(anchors_us.max() - anchors_us.min()) / US_PER_DAY
        return tuple(p for p in cls.PERIODS_DAYS if span_days >= p)

    @classmethod
    def features(cls, anchor_us: torch.Tensor, periods: tuple[float, ...] = PERIODS_DAYS) -> torch.Tensor:
        """``[n, 2P]``: the sine of each period's phase, then the cosines."""
        # float64: microseconds since 1970 lose the time of day in float32
        freq = torch.tensor([2 * math.pi / p for p in periods], dtype=torch.float64)
        ang = (anchor_us.double() / US_PER_DAY).unsqueeze(1) * freq
        return torch.cat([torch.sin(ang), torch.cos(ang)], 1).float()

    def forward(self, anchor_us: torch.Tensor) -> torch.Tensor:
        return self.lin(self.features(anchor_us, self.periods))

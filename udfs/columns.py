"""Column encodings: how one table's columns become the model's input tensors.

A ``ColumnSpec`` is fitted once on a table's extracted rows (means and
deviations of numbers, vocabularies of categories, which columns are
timestamps) and stored with the model, so the rows of a later scoring are
encoded exactly as the training rows were. Encoding is per table and knows
nothing about links; ``graph.py`` puts the encoded tables into a graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

#: categories kept per column, the most frequent first; the rest share code 0 with NULL
MAX_VOCAB = 1000


@dataclass
class ColumnSpec:
    """How one table's features are encoded; fitted once, stored with a model."""

    numerical: list[str] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    vocabs: list[list[str]] = field(default_factory=list)
    #: timestamp columns other than the row's time: encoded relative to the anchor, and
    #: hidden (as missing) when later than it, so a row visible now cannot reveal a future date
    timestamps: list[str] = field(default_factory=list)
    #: the table's own key, encoded as one more category after ``categorical`` (``extract.key_feature``:
    #: small tables only); None for tables without one and for models stored before it existed
    key: str | None = None
    key_vocab: list[str] = field(default_factory=list)

    @property
    def num_dim(self) -> int:
        return 2 * len(self.numerical)  # value and is-missing flag

    @property
    def cat_sizes(self) -> list[int]:
        keys = [len(self.key_vocab) + 1] if self.key is not None else []
        return [len(v) + 1 for v in self.vocabs] + keys  # code 0: NULL or unseen


def fit_spec(tbl: pa.Table, tinfo, key: str | None = None) -> ColumnSpec:
    """Normalisation statistics and vocabularies of one table's extracted rows.

    ``tbl`` holds the rows the statistics may be fitted on: the graph builder
    passes only those the training examples can see. ``key``: the key column
    extracted with the rows (``extract.key_feature``), given a vocabulary of
    its own: every value seen, sorted.
    """
    spec = ColumnSpec()
    if key is not None and key in tbl.column_names:
        values = pc.unique(pc.drop_null(pc.cast(tbl.column(key), pa.string()))).to_pylist()
        spec.key, spec.key_vocab = key, sorted(values)[:MAX_VOCAB]
    for c in tinfo.features:
        arr = tbl.column(c.name)
        if c.stype == "timestamp":
            spec.timestamps.append(c.name)
        elif c.stype == "categorical":
            counts = pc.value_counts(pc.drop_null(arr)).to_pylist()
            counts.sort(key=lambda d: (-d["counts"], d["values"]))
            spec.categorical.append(c.name)
            spec.vocabs.append([d["values"] for d in counts[:MAX_VOCAB]])
        else:
            x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
            x = x[np.isfinite(x)]
            spec.numerical.append(c.name)
            spec.means.append(float(x.mean()) if x.size else 0.0)
            std = float(x.std()) if x.size else 1.0
            spec.stds.append(std if std > 1e-12 else 1.0)
    return spec


def encode_features(tbl: pa.Table, spec: ColumnSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_num [N, 2F], x_cat [N, C])``: standardised values with missing flags, category codes."""
    n = tbl.num_rows
    nums = []
    for name, m, s in zip(spec.numerical, spec.means, spec.stds):
        x = tbl.column(name).to_numpy(zero_copy_only=False).astype(np.float32) if name in tbl.column_names \
            else np.full(n, np.nan, np.float32)
        missing = ~np.isfinite(x)
        z = np.where(missing, 0.0, np.clip((x - m) / s, -10, 10)).astype(np.float32)
        nums += [z, missing.astype(np.float32)]
    x_num = torch.from_numpy(np.stack(nums, 1)) if nums else torch.zeros(n, 0)
    cats = []
    for name, vocab in zip(spec.categorical, spec.vocabs):
        if name in tbl.column_names:
            cats.append(_codes(tbl.column(name), vocab))
        else:
            cats.append(np.zeros(n, np.int64))
    if spec.key is not None:
        cats.append(_codes(tbl.column(spec.key) if spec.key in tbl.column_names else pa.nulls(n, pa.string()),
                           spec.key_vocab))
    x_cat = torch.from_numpy(np.stack(cats, 1)) if cats else torch.zeros(n, 0, dtype=torch.long)
    return x_num, x_cat


def _codes(arr, vocab: list[str]) -> np.ndarray:
    """1 + the position of each value in ``vocab``; 0 for NULL and for values not in it."""
    idx = pc.index_in(pc.cast(arr, pa.string()), value_set=pa.array(vocab, pa.string()))
    return pc.fill_null(pc.add(idx, 1), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def encode_timestamps(tbl: pa.Table, spec: ColumnSpec) -> torch.Tensor:
    """``x_ts [N, T]``: seconds since the epoch (NaN for NULL), compared with the anchor per batch."""
    n = tbl.num_rows
    cols = [tbl.column(name).to_numpy(zero_copy_only=False).astype(np.float64) if name in tbl.column_names
            else np.full(n, np.nan) for name in spec.timestamps]
    return torch.from_numpy(np.stack(cols, 1)) if cols else torch.zeros(n, 0, dtype=torch.float64)


__all__ = ["ColumnSpec", "fit_spec", "encode_features", "encode_timestamps", "MAX_VOCAB"]

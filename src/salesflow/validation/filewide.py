"""The state that makes a rule file-wide or batch-wide: keys seen so far in the file
(``unique.key``), lines counted per invoice (Online Retail keys), and the keys of other
datasets that references must match (``ref.*``).

Integer ids, the bulk of big files, are kept as sorted numpy arrays (runs of consecutive
ids as intervals) and looked up by binary search: O(chunk x log(seen)) per chunk, where
probing a growing Polars Series rebuilds a hash table of everything seen for every chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

Array = np.ndarray[Any, Any]


@dataclass
class Reference:
    """Keys known to exist, per dataset (from the store plus the same batch).

    >>> ref = Reference.of(products=["1", "2"])
    >>> ref.keys["products"].to_list()
    ['1', '2']
    """

    keys: dict[str, pl.Series]
    contains: Callable[[str, pl.Series], pl.Series] | None = None
    """Where no keys are given for a dataset: ``contains(dataset, values)`` says per value
    whether a record with that key is stored (``Lake.contains``), asked per chunk about the
    keys the chunk mentions only."""

    @classmethod
    def of(cls, **keys: pl.Series | list[str]) -> Reference:
        return cls({k: pl.Series(k, v, dtype=pl.Utf8) for k, v in keys.items()})


def _contains(sorted_values: Array, values: pl.Series) -> pl.Series:
    """Whether each (non-null) value is in ``sorted_values``."""
    if not len(sorted_values):
        return pl.Series(np.zeros(len(values), dtype=bool))
    ints = values.fill_null(0).to_numpy()
    pos = np.searchsorted(sorted_values, ints).clip(0, len(sorted_values) - 1)
    return values.is_not_null() & pl.Series(sorted_values[pos] == ints)


def known_keys(keys: pl.Series, *, integer: bool) -> pl.Series | Array:
    """``keys`` ready for :func:`is_unknown`: sorted ints for an integer column, else Utf8
    (keys that are not integers cannot match an integer column and are dropped)."""
    if integer:
        return keys.cast(pl.Int64, strict=False).drop_nulls().unique().sort().to_numpy()
    return keys.cast(pl.Utf8)


def is_unknown(values: pl.Series, known: pl.Series | Array) -> pl.Series:
    """True where a present value is not among ``known``."""
    if isinstance(known, np.ndarray):
        return values.is_not_null() & ~_contains(known, values)
    return values.is_not_null() & ~values.cast(pl.Utf8).is_in(known.implode())


class SeenKeys:
    """Record keys already met in the file; the first occurrence owns the key.

    Integer ids are kept in two forms. Runs of consecutive ids (an export's auto-increment
    ids are one run a chunk) are kept as intervals, 16 bytes a run; the ids outside a run of
    ``RUN`` or more are kept one by one in a sorted buffer, 8 bytes each plus growth room.
    A 20M-row file numbered 1..20M holds 80 intervals instead of 160 MB of ids. The two
    forms never overlap: an id is remembered once, when first met.
    """

    _GROWTH = 1.25
    """The integer buffer grows by a quarter when full (in place where the allocator can)."""
    RUN = 4
    """Consecutive ids kept as an interval from this length on (shorter: one by one)."""

    def __init__(self) -> None:
        self._buffer: Array = np.empty(0, dtype=np.int64)
        self._n = 0
        self._lows: Array = np.empty(0, dtype=np.int64)
        self._highs: Array = np.empty(0, dtype=np.int64)
        self._texts = pl.Series("_key", [], dtype=pl.Utf8)

    @property
    def _ints(self) -> Array:
        """The integer keys seen so far one by one, sorted (a view of the buffer's used
        part)."""
        return self._buffer[: self._n]

    def _in_runs(self, values: pl.Series) -> pl.Series:
        """Whether each (non-null) value lies in one of the remembered intervals."""
        if not len(self._lows):
            return pl.Series(np.zeros(len(values), dtype=bool))
        ints = values.fill_null(0).to_numpy()
        at = np.searchsorted(self._lows, ints, side="right") - 1
        inside = (at >= 0) & (ints <= self._highs[at.clip(0)])
        return values.is_not_null() & pl.Series(inside)

    def _remember(self, fresh: Array) -> None:
        """Remember the sorted, distinct, never-seen ``fresh`` ids: their runs of ``RUN`` or
        more as intervals, the rest merged into the sorted buffer in the buffer itself: it
        grows in place (``ndarray.resize`` reallocates, which moves no pages of a big array)
        and the stable sort (timsort) merges the two sorted runs in linear time."""
        if not len(fresh):
            return
        starts = np.flatnonzero(np.diff(fresh) != 1) + 1
        firsts = np.concatenate(([0], starts))
        lengths = np.diff(np.concatenate((firsts, [len(fresh)])))
        long = lengths >= self.RUN
        if long.any():
            lows, highs = fresh[firsts[long]], fresh[firsts[long] + lengths[long] - 1]
            order = np.argsort(np.concatenate((self._lows, lows)), kind="stable")
            self._lows = np.concatenate((self._lows, lows))[order]
            self._highs = np.concatenate((self._highs, highs))[order]
            fresh = fresh[np.repeat(~long, lengths)]
        need = self._n + len(fresh)
        if need > len(self._buffer):
            self._buffer.resize(max(need, int(need * self._GROWTH)), refcheck=False)
        self._buffer[self._n : need] = fresh
        self._buffer[:need].sort(kind="stable")
        self._n = need

    def duplicates(self, ident: pl.Series) -> pl.Series:
        """True where ``ident`` (non-null) appeared earlier in this chunk or in an earlier
        one; the others are remembered."""
        present = ident.is_not_null()
        dup = present & ~ident.is_first_distinct()
        if ident.dtype.is_integer():
            dup = dup | _contains(self._ints, ident) | self._in_runs(ident)
            self._remember(np.sort(ident.filter(present & ~dup).to_numpy()))
        else:
            dup = dup | (present & ident.is_in(self._texts.implode()))
            self._texts = pl.concat([self._texts, ident.filter(present & ~dup).cast(pl.Utf8)])
        return dup


class LineCounter:
    """Numbers records within their group (an invoice) in file order, across chunks."""

    def __init__(self) -> None:
        self._base = pl.DataFrame(schema={"_group": pl.Utf8, "_base": pl.Int64})

    def number(self, groups: pl.Series) -> pl.Series:
        """1-based position of each record within its group (null group: its own count)."""
        frame = groups.cast(pl.Utf8).to_frame("_group")
        lines = (
            frame.join(self._base, on="_group", how="left", maintain_order="left")
            .select(pl.int_range(1, pl.len() + 1).over("_group") + pl.col("_base").fill_null(0))
            .to_series()
            .alias("_line")
        )
        last = (
            frame.with_columns(lines.alias("_base"))
            .drop_nulls("_group")
            .group_by("_group")
            .agg(pl.col("_base").max())
        )
        self._base = pl.concat([self._base, last]).group_by("_group").agg(pl.col("_base").max())
        return lines

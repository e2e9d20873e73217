"""Building blocks of the sample-data generator: fault plans, manifests, time columns.

A :class:`FaultPlan` assigns each record at most one fault kind (the rule it must trip),
each kind at ``invalid_rate`` of the records, chosen at random but seeded. Generators
build clean string columns with numpy/Polars and overwrite the planned cells, so millions
of rows take seconds and the manifest says exactly which record must fail which rule.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

CLEAN = -1

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class InjectedFault:
    """Record ``record`` (1-based) of ``file`` (a file name) must be rejected for ``rule``."""

    file: str
    record: int
    rule: str


@dataclass
class Manifest:
    """What a ``generate`` call wrote and which faults it injected where."""

    dataset: str
    rows: int
    seed: int
    invalid_rate: float
    files: list[Path] = field(default_factory=list)
    faults: list[InjectedFault] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)

    def expected(self, file: str) -> dict[int, str]:
        """Record number -> rule, for the faults injected in ``file``."""
        return {f.record: f.rule for f in self.faults if f.file == file}

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, Counter[str]] = {}
        for f in self.faults:
            counts.setdefault(f.file, Counter())[f.rule] += 1
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "seed": self.seed,
            "invalid_rate": self.invalid_rate,
            "files": [p.name for p in self.files],
            "records": dict(self.records),
            "fault_counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
            "faults": [{"file": f.file, "record": f.record, "rule": f.rule} for f in self.faults],
        }

    def write(self, path: Path) -> None:
        """Write the manifest as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


@dataclass
class FaultPlan:
    """Per-record fault codes (``CLEAN`` or an index into ``kinds``)."""

    kinds: tuple[str, ...]
    codes: Array

    @classmethod
    def draw(
        cls, rng: np.random.Generator, n: int, kinds: tuple[str, ...], rate: float
    ) -> FaultPlan:
        """Each kind on ``round(n * rate)`` distinct records (scaled down if they exceed n)."""
        codes = np.full(n, CLEAN, dtype=np.int16)
        per_kind = round(n * rate) if kinds else 0
        if per_kind * len(kinds) >= n:  # keep at least one clean record
            per_kind = (n - 1) // len(kinds)
        if per_kind:
            rows = rng.permutation(n)[: per_kind * len(kinds)]
            codes[rows] = np.repeat(np.arange(len(kinds), dtype=np.int16), per_kind)
        return cls(kinds, codes)

    def code(self, rule: str) -> int:
        return self.kinds.index(rule) if rule in self.kinds else -2

    def mask(self, rule: str) -> Array:
        return self.codes == self.code(rule)

    @property
    def clean(self) -> Array:
        return self.codes == CLEAN

    def is_(self, rule: str) -> pl.Expr:
        """True on the rows planned to break ``rule`` (the frame needs a ``_fault`` column)."""
        return pl.col("_fault") == self.code(rule)

    def earlier_clean(self, rng: np.random.Generator, rule: str) -> Array:
        """For each row planned for ``rule`` (a duplicate key), a random earlier clean row
        to copy the key from. Rows with no earlier clean row are made clean."""
        rows = np.flatnonzero(self.mask(rule))
        clean = np.flatnonzero(self.clean)
        before = np.searchsorted(clean, rows)
        self.codes[rows[before == 0]] = CLEAN
        rows, before = rows[before > 0], before[before > 0]
        sources = clean[(rng.random(len(rows)) * before).astype(np.int64)]
        out = np.arange(len(self.codes))
        out[rows] = sources
        return out

    def series(self) -> pl.Series:
        return pl.Series("_fault", self.codes)

    def faults(self, file: str) -> list[InjectedFault]:
        rows = np.flatnonzero(~self.clean)
        return [
            InjectedFault(file, int(r) + 1, self.kinds[int(c)])
            for r, c in zip(rows, self.codes[rows], strict=True)
        ]


def utc(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime, truncated to whole seconds (default: the current time)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def past(
    rng: np.random.Generator, n: int, now: datetime, lo_days: float, hi_days: float
) -> pl.Series:
    """``n`` naive UTC datetimes between ``hi_days`` and ``lo_days`` before ``now``."""
    seconds = rng.uniform(lo_days * 86400, hi_days * 86400, n).astype(np.int64)
    base = np.datetime64(now.replace(tzinfo=None), "s")
    return pl.Series((base - seconds.astype("timedelta64[s]")).astype("datetime64[us]"))


def future(rng: np.random.Generator, n: int, now: datetime) -> pl.Series:
    """``n`` naive UTC datetimes 1 to 30 days after ``now`` (for ``date.future`` faults)."""
    seconds = rng.uniform(86400, 30 * 86400, n).astype(np.int64)
    base = np.datetime64(now.replace(tzinfo=None), "s")
    return pl.Series((base + seconds.astype("timedelta64[s]")).astype("datetime64[us]"))


def money(values: Array) -> pl.Series:
    """Prices rounded to cents, as a Float64 Series."""
    return pl.Series(np.round(values, 2))


def write_csv(frame: pl.DataFrame, path: Path, *, bom: bool = False) -> None:
    """Write ``frame`` (all columns strings or numbers) as CSV, optionally with a UTF-8 BOM."""
    if bom:
        with path.open("wb") as fh:
            fh.write(b"\xef\xbb\xbf")
            frame.write_csv(fh)
    else:
        frame.write_csv(path)


Edit = tuple[str, str, "pl.Expr | str | None"]


def inject(frame: pl.DataFrame, plan: FaultPlan, edits: list[Edit]) -> pl.DataFrame:
    """Overwrite cells with faulty values: ``(rule, column, value)`` applies ``value`` to
    ``column`` on the rows planned for ``rule`` (``frame`` needs the ``_fault`` column).
    A str is a literal, None a missing value, an expression is evaluated per row."""
    by_column: dict[str, list[tuple[str, pl.Expr]]] = {}
    for rule, column, value in edits:
        if isinstance(value, pl.Expr):
            expr = value
        else:
            expr = pl.lit(value, dtype=pl.Utf8)
        by_column.setdefault(column, []).append((rule, expr))
    exprs = []
    for column, changes in by_column.items():
        expr = pl.col(column)
        for rule, value in reversed(changes):
            expr = pl.when(plan.is_(rule)).then(value).otherwise(expr)
        exprs.append(expr.alias(column))
    return frame.with_columns(exprs)

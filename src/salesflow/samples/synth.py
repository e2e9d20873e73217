"""Building blocks of the sample-data generator: fault plans, manifests, time columns.

A :class:`FaultPlan` gives ``invalid_rate`` of the records one fault each (the rule it must
trip), the fault kinds sharing them evenly, chosen at random but seeded. Generators
build clean string columns with numpy/Polars and overwrite the planned cells, so millions
of rows take seconds and the manifest says exactly which record must fail which rule.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
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
    note: str = ""
    """Why more than the one dataset asked for was written, if it was."""

    def expected(self, file: str) -> dict[int, str]:
        """Record number -> rule, for the faults injected in ``file``."""
        return {f.record: f.rule for f in self.faults if f.file == file}

    def to_dict(self) -> dict[str, Any]:
        """The summary plus every injected fault (``record``, ``rule``) per file."""
        return self.summary() | {
            "faults": [{"file": f.file, "record": f.record, "rule": f.rule} for f in self.faults]
        }

    def summary(self) -> dict[str, Any]:
        """What was written, without the per-record fault list (``generate --json``)."""
        counts: dict[str, Counter[str]] = {}
        for f in self.faults:
            counts.setdefault(f.file, Counter())[f.rule] += 1
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "seed": self.seed,
            "invalid_rate": self.invalid_rate,
            "files": [p.name for p in self.files],
            "paths": [str(p) for p in self.files],
            "records": dict(self.records),
            "faulty_records": len(self.faults),
            "fault_counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
            "note": self.note,
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
        """``round(n * rate)`` distinct records get one fault each (at least one record stays
        clean), the kinds sharing them as evenly as the count allows."""
        codes = np.full(n, CLEAN, dtype=np.int16)
        total = min(round(n * rate), n - 1) if kinds else 0
        if total > 0:
            rows = rng.choice(n, total, replace=False)
            k = len(kinds)
            even = np.repeat(np.arange(k, dtype=np.int16), total // k)
            extra = rng.choice(k, total % k, replace=False).astype(np.int16)
            codes[rows] = np.concatenate([even, extra])
        return cls(kinds, codes)

    def code(self, rule: str) -> int:
        return self.kinds.index(rule) if rule in self.kinds else -2

    def mask(self, rule: str) -> Array:
        return np.asarray(self.codes == self.code(rule), dtype=np.bool_)

    @property
    def clean(self) -> Array:
        return np.asarray(self.codes == CLEAN, dtype=np.bool_)

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


def pick(values: Sequence[str], index: Array) -> pl.Series:
    """``values[index]`` as a Utf8 Series (much faster than numpy string arrays)."""
    return pl.Series(list(values), dtype=pl.Utf8).gather(index)


def format_times(times: pl.Series, date_fmt: str, sep: str, time_fmt: str) -> pl.Series:
    """``times`` (whole seconds) rendered as ``<date_fmt><sep><time_fmt>``; nulls stay null.

    strftime costs ~0.35 us a row; sample data spans a few hundred days, so render each day
    and each second of a day once and gather (~10x faster on millions of rows)."""
    days = times.dt.epoch("d")
    first = int(days.min() or 0)  # type: ignore[arg-type]
    span = int(days.max() or 0) - first + 1  # type: ignore[arg-type]
    day_table = pl.Series(
        np.arange(first, first + span, dtype="int64").astype("datetime64[D]")
    ).dt.strftime(date_fmt)
    clock = pl.Series(
        np.arange(86400, dtype="int64").astype("datetime64[s]").astype("datetime64[us]")
    )
    time_table = clock.dt.strftime(time_fmt)
    seconds = (times.dt.epoch("s") - days * 86400).cast(pl.Int64)
    out = pl.DataFrame(
        {
            "d": day_table.gather((days - first).cast(pl.Int64)),
            "t": time_table.gather(seconds),
        }
    ).select(pl.concat_str(pl.col("d"), pl.lit(sep), pl.col("t")).alias(times.name))
    return out.to_series()


def write_csv(
    frame: pl.DataFrame, path: Path, *, bom: bool = False, datetime_format: str | None = None
) -> None:
    """Write ``frame`` as CSV (nulls as empty cells), optionally with a UTF-8 BOM."""
    with path.open("wb") as fh:
        if bom:
            fh.write(b"\xef\xbb\xbf")
        frame.write_csv(fh, datetime_format=datetime_format)


Value = pl.Expr | str | int | None | Callable[[int], pl.Series]
"""A faulty value: a literal (None: missing), an expression evaluated on the faulty rows,
or a function of how many rows need one."""


def inject(
    frame: pl.DataFrame, plan: FaultPlan, edits: list[tuple[str, str, Value]]
) -> pl.DataFrame:
    """Overwrite cells with faulty values: ``(rule, column, value)`` puts ``value`` into
    ``column`` on the rows planned for ``rule``. Only those rows are computed and
    scattered in, so injecting costs little even on millions of rows."""
    for rule, column, value in edits:
        rows = np.flatnonzero(plan.mask(rule))
        if not len(rows):
            continue
        if isinstance(value, pl.Expr):
            values = frame[rows].select(value.alias(column)).to_series()
        elif callable(value):
            values = value(len(rows))
        else:
            values = pl.Series(column, [value] * len(rows))
        target = frame.get_column(column)
        frame = frame.with_columns(target.scatter(rows, values.cast(target.dtype)))
    return frame

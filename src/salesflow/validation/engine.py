"""Validate one file chunk by chunk: typed values, one Boolean mask per rule, and the
split into valid rows and rejected rows with every reason.

A chunk arrives as strings (``_s:<field>`` per field, plus what its raw expression needs);
the engine types them (``parse``), adds the file-wide flags (``filewide``: duplicate keys,
unknown references), evaluates every mask of ``checks`` over the whole chunk and splits
the rows. Messages and raw JSON are built for rejected rows only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from salesflow.datasets.spec import DatasetSpec
from salesflow.rules import to_polars
from salesflow.validation.checks import (
    Mask,
    dangling,
    group,
    miss,
    reference_mask,
    spec_masks,
    src,
)
from salesflow.validation.filewide import (
    LineCounter,
    Reference,
    SeenKeys,
    is_unknown,
    known_keys,
)
from salesflow.validation.parse import parse_fields
from salesflow.validation.report import REJECTED_SCHEMA, Chunk, ChunkReport

STRUCTURE = "_structure"
STRUCTURE_MSG = "_structure_msg"

__all__ = ["STRUCTURE", "STRUCTURE_MSG", "Arrived", "ChunkValidator", "Reference", "src"]


@dataclass
class Arrived:
    """One chunk as it arrived: ``_record`` (Int64), ``_s:<field>`` (Utf8, null or blank
    when missing), optional ``_structure``/``_structure_msg`` (a structural rule id and its
    message on records that cannot be read), and how to get ``raw`` and ``_extra``.

    ``raw`` is an expression over the frame, or a function from record numbers to raw JSON
    texts (JSON sources render a record only if it is rejected)."""

    frame: pl.DataFrame
    raw: pl.Expr | Callable[[pl.Series], pl.Series]
    extra: pl.Expr


@dataclass
class ChunkValidator:
    """Validates the chunks of one file in order, keeping the file-wide state."""

    spec: DatasetSpec
    now: datetime
    processing_day: date
    reference: Reference | None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            self.now = self.now.replace(tzinfo=UTC)
        self._seen = SeenKeys()
        self._lines = LineCounter()
        self._known: dict[str, pl.Series | np.ndarray[Any, Any]] = {}
        self._lookups: dict[str, str] = {}
        self._masks = spec_masks(self.spec, self.now) + self._reference_masks()

    def _reference_masks(self) -> list[Mask]:
        """A ``ref.<column>`` rule per reference the caller gave keys for (else a warning)."""
        masks = []
        for column, dataset in self.spec.references.items():
            keys = None if self.reference is None else self.reference.keys.get(dataset)
            if keys is None and self.reference is not None and self.reference.contains:
                self._lookups[column] = dataset
                masks.append(reference_mask(column, dataset))
                continue
            if keys is None:
                self.warnings.append(
                    f"ref.{column} not checked: no reference keys of {dataset} were given"
                )
                continue
            integer = self.spec.get_field(column).dtype.is_integer()
            self._known[column] = known_keys(keys, integer=integer)
            masks.append(reference_mask(column, dataset))
        return masks

    def _typed(self, arrived: pl.DataFrame) -> pl.DataFrame:
        """Add the typed field columns, ``_miss:<field>`` and ``_g:<group>`` flags."""
        spec = self.spec
        typed = parse_fields(arrived, [(src(f.name), f) for f in spec.fields])
        columns: list[pl.Series] = []
        for f, (value, missing) in zip(spec.fields, typed, strict=True):
            columns += [value.alias(f.name), missing.alias(miss(f.name))]
        groups = [
            pl.any_horizontal(
                [~pl.col(miss(f.name)) for f in spec.fields if f.group == g.name]
            ).alias(group(g.name))
            for g in spec.groups
        ]
        frame = arrived.with_columns(columns)
        return frame.with_columns(groups) if groups else frame

    def _keyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add ``_key``, ``_dup`` (the key appeared earlier) and ``_ref:<column>`` flags."""
        spec = self.spec
        if spec.line_key is not None:
            groups = frame.get_column(spec.line_key).cast(pl.Utf8)
            lines = self._lines.number(groups).cast(pl.Utf8)
            key = pl.concat_str([pl.lit(groups), pl.lit(lines)], separator="|")
            # unique by construction: a line number never repeats within its group
            frame = frame.with_columns(key.alias("_key"), pl.lit(False).alias("_dup"))
        else:
            key = pl.concat_str([pl.col(k).cast(pl.Utf8) for k in spec.key], separator="|")
            frame = frame.with_columns(key.alias("_key"))
            single = len(spec.key) == 1 and frame.schema[spec.key[0]].is_integer()
            ident = frame.get_column(spec.key[0] if single else "_key")
            frame = frame.with_columns(self._seen.duplicates(ident).alias("_dup"))
        flags = [
            is_unknown(frame.get_column(column), known).alias(dangling(column))
            for column, known in self._known.items()
        ]
        flags += [
            self._unknown_stored(frame, column, name) for column, name in self._lookups.items()
        ]
        return frame.with_columns(flags) if flags else frame

    def _unknown_stored(self, frame: pl.DataFrame, column: str, dataset: str) -> pl.Series:
        """True where a present value of ``column`` is not a stored key of ``dataset``, asking
        the store about this chunk's distinct values only."""
        values = frame.get_column(column)  # integers stay integers: cheaper to hash
        distinct = values.drop_nulls().unique()
        contains = self.reference.contains if self.reference is not None else None
        if contains is None or distinct.is_empty():
            return values.is_not_null().alias(dangling(column)) & False
        stored = distinct.filter(contains(dataset, distinct))
        return (values.is_not_null() & ~values.is_in(stored.implode())).alias(dangling(column))

    def validate(self, arrived: Arrived, index: int) -> Chunk:
        """Split one arrived chunk into valid and rejected rows."""
        frame = self._keyed(self._typed(arrived.frame))
        structural = (
            pl.col(STRUCTURE).is_not_null() if STRUCTURE in frame.columns else pl.lit(False)
        )
        names = [f"_m{i}" for i in range(len(self._masks))]
        frame = frame.with_columns(
            structural.alias("_m_structure"),
            *[
                (to_polars(m.broken).fill_null(False) & ~structural).alias(n)
                for m, n in zip(self._masks, names, strict=True)
            ],
        ).with_columns(pl.any_horizontal(["_m_structure", *names]).alias("_bad"))
        counts = self._count(frame, names)
        valid = self._valid(frame, arrived)
        rejected = self._rejected(frame.filter(pl.col("_bad")), arrived, names)
        report = ChunkReport(index, frame.height, valid.height, rejected.height, counts)
        warnings = list(self.warnings) if index == 0 else []
        return Chunk(index, frame.height, valid, rejected, report, warnings)

    def _count(self, frame: pl.DataFrame, names: list[str]) -> dict[str, int]:
        by_rule: dict[str, list[str]] = {}
        for m, n in zip(self._masks, names, strict=True):
            by_rule.setdefault(m.rule, []).append(n)
        exprs = [pl.any_horizontal(cols).sum().alias(rule) for rule, cols in by_rule.items()]
        row = frame.select(exprs).row(0, named=True)
        counts = {rule: int(n) for rule, n in row.items() if n}
        if STRUCTURE in frame.columns:
            for rule, n in frame.get_column(STRUCTURE).drop_nulls().value_counts().iter_rows():
                counts[str(rule)] = counts.get(str(rule), 0) + int(n)
        return counts

    def _valid(self, frame: pl.DataFrame, arrived: Arrived) -> pl.DataFrame:
        spec = self.spec
        day = (
            pl.col(spec.day_column).dt.date()
            if spec.day_column is not None
            else pl.lit(self.processing_day, dtype=pl.Date)
        )
        cols = [pl.col(f.name) for f in spec.fields]
        cols += [pl.col("_record").cast(pl.Int64), pl.col("_key"), day.alias("_day")]
        if spec.amount is not None:
            cols.append(to_polars(spec.amount).cast(pl.Float64).alias("amount"))
        cols += [to_polars(expr).alias(name) for name, expr in spec.derived.items()]
        cols.append(arrived.extra.cast(pl.Utf8).alias("_extra"))
        # Filter after projecting: filtering the wide working frame would copy every column.
        return frame.lazy().filter(~pl.col("_bad")).select(cols).collect()

    def _rejected(self, frame: pl.DataFrame, arrived: Arrived, names: list[str]) -> pl.DataFrame:
        """Rejected rows with every reason, in rule order.

        One struct column per rule (null where the rule holds), stacked into a long table
        and grouped back by record: linear, where a per-row list of when/then structs makes
        Polars' optimiser blow up with two dozen rules."""
        if frame.height == 0:
            return pl.DataFrame(schema=REJECTED_SCHEMA)
        reasons = [
            pl.when(pl.col(n)).then(
                pl.struct(
                    pl.lit(m.rule).alias("rule"),
                    pl.lit(m.field, dtype=pl.Utf8).alias("field"),
                    to_polars(m.message).cast(pl.Utf8).alias("message"),
                )
            )
            for m, n in zip(self._masks, names, strict=True)
        ]
        if STRUCTURE in frame.columns:
            structure = pl.struct(
                pl.col(STRUCTURE).alias("rule"),
                pl.lit(None, dtype=pl.Utf8).alias("field"),
                pl.col(STRUCTURE_MSG).cast(pl.Utf8).alias("message"),
            )
            reasons.insert(0, pl.when(pl.col("_m_structure")).then(structure))
        wide = frame.select(
            pl.col("_record").cast(pl.Int64),
            *[r.alias(f"_r{i}") for i, r in enumerate(reasons)],
        )
        long = pl.concat(
            [wide.select("_record", pl.col(f"_r{i}").alias("reason")) for i in range(len(reasons))]
        )
        grouped = (
            long.filter(pl.col("reason").is_not_null())
            .group_by("_record", maintain_order=True)
            .agg(pl.col("reason").alias("reasons"))
        )
        if isinstance(arrived.raw, pl.Expr):
            raw = arrived.raw
        else:
            raw = pl.lit(arrived.raw(frame.get_column("_record")))
        rows = frame.select(
            pl.col("_record").cast(pl.Int64),
            pl.col("_key"),
            raw.cast(pl.Utf8).alias("raw"),
        )
        return rows.join(grouped, on="_record", how="left", maintain_order="left").select(
            list(REJECTED_SCHEMA)
        )

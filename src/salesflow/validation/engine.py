"""The rules of a spec as Polars expressions over a whole chunk: valid rows and rejected
rows with every reason.

A chunk arrives as strings (one ``_s:<field>`` column per field, plus whatever its raw
expression needs); the engine strips and types them, evaluates one Boolean mask per check,
and splits the rows. Messages and raw JSON are built for rejected rows only. The only state
kept across chunks is what makes a rule file-wide: the keys seen so far (``unique.key``)
and, for Online Retail, lines counted per invoice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from salesflow.datasets.spec import DatasetSpec, FieldSpec, text
from salesflow.validation.parse import parse_field, type_rule
from salesflow.validation.report import REJECTED_SCHEMA, Chunk, ChunkReport

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
STRUCTURE = "_structure"
STRUCTURE_MSG = "_structure_msg"


def src(name: str) -> str:
    """Column holding the string ``name`` arrived with."""
    return f"_s:{name}"


def miss(name: str) -> str:
    """Column flagging the rows where ``name`` is missing (null or blank)."""
    return f"_miss:{name}"


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
class Reference:
    """Keys known to exist, per dataset (from the store plus the same batch).

    >>> ref = Reference.of(products=["1", "2"])
    >>> ref.keys["products"].to_list()
    ['1', '2']
    """

    keys: dict[str, pl.Series]

    @classmethod
    def of(cls, **keys: pl.Series | list[str]) -> Reference:
        return cls({k: pl.Series(k, v, dtype=pl.Utf8) for k, v in keys.items()})


@dataclass(frozen=True)
class _Mask:
    rule: str
    field: str | None
    broken: pl.Expr
    message: pl.Expr


def _quoted(name: str) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), pl.col(src(name)).fill_null(""), pl.lit("'"))


def _field_masks(f: FieldSpec, spec: DatasetSpec, now: datetime) -> list[_Mask]:
    missing = pl.col(miss(f.name))
    masks: list[_Mask] = []
    if f.required:
        broken = missing if f.group is None else missing & pl.col(f"_g:{f.group}")
        masks.append(_Mask("presence.required", f.name, broken, pl.lit(f"{f.name} is missing")))
    rule = type_rule(f)
    if rule is not None:
        kind = {"type.date": "a date/time", "type.number": "a number"}.get(rule, "an integer")
        masks.append(
            _Mask(
                rule,
                f.name,
                ~missing & pl.col(f.name).is_null(),
                pl.concat_str(pl.lit(f"{f.name} "), _quoted(f.name), pl.lit(f" is not {kind}")),
            )
        )
    if f.is_date and f.not_future:
        masks.append(
            _Mask(
                "date.future",
                f.name,
                pl.col(f.name) > pl.lit(now),
                pl.concat_str(
                    pl.lit(f"{f.name} "),
                    text(f.name),
                    pl.lit(f" is after now ({now:%Y-%m-%d %H:%M:%S} UTC)"),
                ),
            )
        )
    if f.email:
        masks.append(
            _Mask(
                "email.format",
                f.name,
                ~missing & ~pl.col(f.name).str.contains(EMAIL),
                pl.concat_str(pl.lit(f"{f.name} "), _quoted(f.name), pl.lit(" is not an e-mail")),
            )
        )
    if f.allowed:
        masks.append(
            _Mask(
                f"enum.{f.name}",
                f.name,
                ~missing & ~pl.col(f.name).is_in(list(f.allowed)),
                pl.concat_str(
                    pl.lit(f"{f.name} "),
                    _quoted(f.name),
                    pl.lit(f" is not one of {', '.join(f.allowed)}"),
                ),
            )
        )
    return masks


@dataclass
class ChunkValidator:
    """Validates the chunks of one file in order, keeping the file-wide state."""

    spec: DatasetSpec
    now: datetime
    processing_day: date
    reference: Reference | None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            self.now = self.now.replace(tzinfo=UTC)
        self._seen = pl.Series("_key", [], dtype=pl.Utf8)
        self._seen_ints = np.empty(0, dtype=np.int64)
        self._lines = pl.DataFrame(schema={"_line_group": pl.Utf8, "_line_base": pl.Int64})
        self.warnings: list[str] = []
        self._masks = self._build_masks()

    def _build_masks(self) -> list[_Mask]:
        spec = self.spec
        masks = [
            _Mask(
                g.rule,
                None,
                ~pl.col(f"_g:{g.name}"),
                pl.lit(f"{g.label} is missing or empty"),
            )
            for g in spec.groups
        ]
        for f in spec.fields:
            masks.extend(_field_masks(f, spec, self.now))
        masks.extend(_Mask(c.rule, c.field, c.broken, c.message) for c in spec.checks)
        masks.append(
            _Mask(
                "unique.key",
                ",".join(spec.key),
                pl.col("_dup"),
                pl.concat_str(pl.lit("key '"), pl.col("_key"), pl.lit("' appeared earlier")),
            )
        )
        masks.extend(self._reference_masks())
        return masks

    def _reference_masks(self) -> list[_Mask]:
        """One ``ref.<column>`` rule per reference the caller gave keys for; the lookup
        itself runs in :meth:`_dangling` (a binary search for integer ids)."""
        masks = []
        self._known: dict[str, pl.Series | np.ndarray[Any, Any]] = {}
        for column, dataset in self.spec.references.items():
            keys = None if self.reference is None else self.reference.keys.get(dataset)
            if keys is None:
                self.warnings.append(
                    f"ref.{column} not checked: no reference keys of {dataset} were given"
                )
                continue
            if self.spec.get_field(column).dtype.is_integer():
                ints = keys.cast(pl.Int64, strict=False).drop_nulls().unique().sort()
                self._known[column] = ints.to_numpy()
            else:
                self._known[column] = keys.cast(pl.Utf8)
            masks.append(
                _Mask(
                    f"ref.{column}",
                    column,
                    pl.col(f"_ref:{column}"),
                    pl.concat_str(
                        pl.lit(f"{column} "), text(column), pl.lit(f" is not a known {dataset} key")
                    ),
                )
            )
        return masks

    def _dangling(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add ``_ref:<column>``: true where a present value is not a known key."""
        flags = []
        for column, known in self._known.items():
            values = frame.get_column(column)
            if isinstance(known, np.ndarray):
                ints = values.fill_null(0).to_numpy()
                pos = np.searchsorted(known, ints).clip(0, max(len(known) - 1, 0))
                found = known[pos] == ints if len(known) else np.zeros(len(ints), dtype=bool)
                flags.append((values.is_not_null() & ~pl.Series(found)).alias(f"_ref:{column}"))
            else:
                dangling = values.is_not_null() & ~values.cast(pl.Utf8).is_in(known.implode())
                flags.append(dangling.alias(f"_ref:{column}"))
        return frame.with_columns(flags) if flags else frame

    def _typed(self, arrived: pl.DataFrame) -> pl.DataFrame:
        """Add the typed field columns and a ``_miss:<field>`` flag per field."""
        spec = self.spec
        columns: list[pl.Series] = []
        for f in spec.fields:
            value, missing = parse_field(arrived.get_column(src(f.name)), f)
            columns += [value.alias(f.name), missing.alias(miss(f.name))]
        frame = arrived.with_columns(columns)
        groups = [
            pl.any_horizontal(
                [~pl.col(miss(f.name)) for f in spec.fields if f.group == g.name]
            ).alias(f"_g:{g.name}")
            for g in spec.groups
        ]
        return frame.with_columns(groups) if groups else frame

    def _line_numbers(self, group: pl.Series) -> pl.Series:
        """Position of each record within its group, counted in file order across chunks."""
        narrow = group.to_frame("_line_group").join(
            self._lines, on="_line_group", how="left", maintain_order="left"
        )
        lines = narrow.select(
            (
                pl.int_range(1, pl.len() + 1).over("_line_group")
                + pl.col("_line_base").fill_null(0)
            ).alias("_line")
        ).to_series()
        counts = (
            pl.DataFrame({"_line_group": group, "_line_base": lines})
            .drop_nulls("_line_group")
            .group_by("_line_group")
            .agg(pl.col("_line_base").max())
        )
        self._lines = (
            pl.concat([self._lines, counts]).group_by("_line_group").agg(pl.col("_line_base").max())
        )
        return lines

    def _duplicates(self, ident: pl.Series) -> pl.Series:
        """True where ``ident`` (non-null) already appeared, earlier in this chunk or in an
        earlier one. Integer keys are kept in a sorted numpy array (a binary search per
        key); others in a Series probed with ``is_in``."""
        present = ident.is_not_null()
        dup = present & ~ident.is_first_distinct()
        if ident.dtype.is_integer():
            values = ident.fill_null(0).to_numpy()
            seen = self._seen_ints
            pos = np.searchsorted(seen, values).clip(0, max(len(seen) - 1, 0))
            earlier = seen[pos] == values if len(seen) else np.zeros(len(values), dtype=bool)
            dup = dup | (present & pl.Series(earlier))
            fresh = ident.filter(present & ~dup).to_numpy()
            self._seen_ints = np.sort(np.concatenate([seen, np.sort(fresh)]), kind="stable")
        else:
            dup = dup | (present & ident.is_in(self._seen.implode()))
            self._seen = pl.concat([self._seen, ident.filter(present & ~dup).cast(pl.Utf8)])
        return dup

    def _keyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add ``_key`` and ``_dup`` (the key already appeared in the file)."""
        spec = self.spec
        if spec.line_key is not None:
            group = frame.get_column(spec.line_key).cast(pl.Utf8)
            lines = self._line_numbers(group)
            key = pl.concat_str([pl.lit(group), pl.lit(lines).cast(pl.Utf8)], separator="|")
            # unique by construction: a line number never repeats within its group
            return frame.with_columns(key.alias("_key"), pl.lit(False).alias("_dup"))
        key = pl.concat_str([pl.col(k).cast(pl.Utf8) for k in spec.key], separator="|")
        frame = frame.with_columns(key.alias("_key"))
        single = len(spec.key) == 1 and frame.schema[spec.key[0]].is_integer()
        ident = frame.get_column(spec.key[0] if single else "_key")
        return frame.with_columns(self._duplicates(ident).alias("_dup"))

    def validate(self, arrived: Arrived, index: int) -> Chunk:
        """Split one arrived chunk into valid and rejected rows."""
        frame = self._dangling(self._keyed(self._typed(arrived.frame)))
        structural = (
            pl.col(STRUCTURE).is_not_null() if STRUCTURE in frame.columns else pl.lit(False)
        )
        names = [f"_m{i}" for i in range(len(self._masks))]
        frame = frame.with_columns(
            structural.alias("_m_structure"),
            *[
                (m.broken.fill_null(False) & ~structural).alias(n)
                for m, n in zip(self._masks, names, strict=True)
            ],
        ).with_columns(pl.any_horizontal(["_m_structure", *names]).alias("_bad"))
        counts = self._count(frame, names)
        valid = self._valid(frame, arrived)
        rejected = self._rejected(frame.filter(pl.col("_bad")), arrived, names)
        report = ChunkReport(index, frame.height, valid.height, rejected.height, counts)
        warnings = self.warnings if index == 0 else []
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
            cols.append(spec.amount.cast(pl.Float64).alias("amount"))
        cols += [expr.alias(name) for name, expr in spec.derived.items()]
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
                    m.message.cast(pl.Utf8).alias("message"),
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

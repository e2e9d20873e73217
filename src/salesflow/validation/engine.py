"""The rules of a spec as Polars expressions over a whole chunk: valid rows and rejected
rows with every reason.

A chunk arrives as strings (one ``_s:<field>`` column per field, plus whatever its raw
expression needs); the engine strips and types them, evaluates one Boolean mask per check,
and splits the rows. Messages and raw JSON are built for rejected rows only. The only state
kept across chunks is what makes a rule file-wide: the keys seen so far (``unique.key``)
and, for Online Retail, lines counted per invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from salesflow.datasets.spec import DatasetSpec, FieldSpec, text
from salesflow.validation.parse import type_rule, typed
from salesflow.validation.report import REJECTED_SCHEMA, Chunk, ChunkReport

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
STRUCTURE = "_structure"
STRUCTURE_MSG = "_structure_msg"


def src(name: str) -> str:
    """Column holding the string ``name`` arrived with."""
    return f"_s:{name}"


@dataclass
class Arrived:
    """One chunk as it arrived: ``_record`` (Int64), ``_s:<field>`` (Utf8, null or blank
    when missing), optional ``_structure``/``_structure_msg`` (a structural rule id and its
    message on records that cannot be read), and expressions for ``raw`` and ``_extra``."""

    frame: pl.DataFrame
    raw: pl.Expr
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
    missing = pl.col(src(f.name)).is_null()
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
        masks = []
        for column, dataset in self.spec.references.items():
            keys = None if self.reference is None else self.reference.keys.get(dataset)
            if keys is None:
                self.warnings.append(
                    f"ref.{column} not checked: no reference keys of {dataset} were given"
                )
                continue
            value = pl.col(column).cast(pl.Utf8)
            masks.append(
                _Mask(
                    f"ref.{column}",
                    column,
                    ~value.is_in(keys.cast(pl.Utf8).implode()),
                    pl.concat_str(
                        pl.lit(f"{column} "), value, pl.lit(f" is not a known {dataset} key")
                    ),
                )
            )
        return masks

    def _typed(self, arrived: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        stripped = [
            pl.col(src(f.name)).str.strip_chars().replace("", None).alias(src(f.name))
            for f in spec.fields
        ]
        frame = arrived.with_columns(stripped)
        typed_cols = [typed(pl.col(src(f.name)), f).alias(f.name) for f in spec.fields]
        groups = [
            pl.any_horizontal(
                [pl.col(src(f.name)).is_not_null() for f in spec.fields if f.group == g.name]
            ).alias(f"_g:{g.name}")
            for g in spec.groups
        ]
        return frame.with_columns(typed_cols + groups)

    def _keyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        if spec.line_key is not None:
            group = pl.col(src(spec.line_key))
            frame = (
                frame.with_columns(group.alias("_line_group"))
                .join(self._lines, on="_line_group", how="left")
                .with_columns(
                    (
                        pl.int_range(1, pl.len() + 1).over("_line_group")
                        + pl.col("_line_base").fill_null(0)
                    ).alias("_line")
                )
            )
            counts = (
                frame.filter(pl.col("_line_group").is_not_null())
                .group_by("_line_group")
                .agg(pl.col("_line").max().alias("_line_base"))
            )
            self._lines = (
                pl.concat([self._lines, counts])
                .group_by("_line_group")
                .agg(pl.col("_line_base").max())
            )
            key = pl.concat_str([group, pl.col("_line").cast(pl.Utf8)], separator="|")
        else:
            key = pl.concat_str([pl.col(k).cast(pl.Utf8) for k in spec.key], separator="|")
        frame = frame.with_columns(key.alias("_key"))
        keys = frame.get_column("_key")
        dup = keys.is_not_null() & (~keys.is_first_distinct() | keys.is_in(self._seen.implode()))
        fresh = keys.filter(keys.is_not_null() & ~dup)
        self._seen = pl.concat([self._seen, fresh.rename("_key")])
        return frame.with_columns(dup.alias("_dup"))

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
                (m.broken.fill_null(False) & ~structural).alias(n)
                for m, n in zip(self._masks, names, strict=True)
            ],
        ).with_columns(pl.any_horizontal(["_m_structure", *names]).alias("_bad"))
        counts = self._count(frame, names)
        valid = self._valid(frame.filter(~pl.col("_bad")), arrived)
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
        return frame.select(cols)

    def _rejected(self, frame: pl.DataFrame, arrived: Arrived, names: list[str]) -> pl.DataFrame:
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
            reasons.insert(
                0,
                pl.when(pl.col("_m_structure")).then(
                    pl.struct(
                        pl.col(STRUCTURE).alias("rule"),
                        pl.lit(None, dtype=pl.Utf8).alias("field"),
                        pl.col(STRUCTURE_MSG).alias("message"),
                    )
                ),
            )
        return frame.select(
            pl.col("_record").cast(pl.Int64),
            pl.col("_key"),
            arrived.raw.cast(pl.Utf8).alias("raw"),
            pl.concat_list(reasons).list.drop_nulls().alias("reasons"),
        )

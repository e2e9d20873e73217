"""Validate one file on Spark: the Polars engine's contract, rule for rule.

The masks are the very ones the Polars engine runs (``validation.checks``), compiled by
``rules.to_spark``. File-wide rules become what they are in SQL: ``unique.key`` is a window
over the key ordered by record number (the first occurrence owns the key), Online Retail's
line number is ``row_number`` within the invoice, and ``ref.*`` is an outer join with the
known keys.

The result goes back to the driver in bounded chunks: Spark writes it as Parquet partitioned
by chunk (``(_record - 1) // chunk_rows``), and the driver reads one chunk at a time. With
``bucket_uri`` set (a cluster), that output lives in the bucket, not on the driver's disk.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesflow.datasets.spec import DatasetSpec
from salesflow.engines.spark.read import Source
from salesflow.engines.spark.typed import parse
from salesflow.rules.to_spark import to_spark
from salesflow.validation.checks import (
    Mask,
    dangling,
    group,
    miss,
    reference_mask,
    spec_masks,
    src,
)
from salesflow.validation.engine import STRUCTURE, STRUCTURE_MSG
from salesflow.validation.filewide import Reference, known_keys
from salesflow.validation.report import REJECTED_SCHEMA, Chunk, ChunkReport

CHUNK = "_chunk"


@dataclass
class SparkValidation:
    """The validation of one file on ``spark``, built from the same masks as Polars'."""

    spark: SparkSession
    spec: DatasetSpec
    now: datetime
    processing_day: date
    reference: Reference | None
    warnings: list[str]

    def __post_init__(self) -> None:
        self.types: dict[str, pl.DataType] = {f.name: f.dtype for f in self.spec.fields}
        self.types["_key"] = pl.Utf8()
        self.known: dict[str, pl.Series] = {}
        self.masks: list[Mask] = spec_masks(self.spec, self.now) + self._reference_masks()

    def _reference_masks(self) -> list[Mask]:
        masks = []
        for column, dataset in self.spec.references.items():
            keys = None if self.reference is None else self.reference.keys.get(dataset)
            if keys is None:
                self.warnings.append(
                    f"ref.{column} not checked: no reference keys of {dataset} were given"
                )
                continue
            integer = self.spec.get_field(column).dtype.is_integer()
            known = known_keys(keys, integer=integer)
            self.known[column] = pl.Series("k", known).unique()
            masks.append(reference_mask(column, dataset))
        return masks

    def _typed(self, frame: DataFrame) -> DataFrame:
        keep = [c for c in frame.columns if not c.startswith("_s:")]
        typed: list[Column] = []
        missing: dict[str, Column] = {}
        for f in self.spec.fields:
            value, absent = parse(F.col(f"`{src(f.name)}`"), f)
            missing[f.name] = absent
            typed += [value.alias(f.name), absent.alias(miss(f.name))]
        raws = [F.col(f"`{src(f.name)}`") for f in self.spec.fields]
        groups = []
        for g in self.spec.groups:
            present = F.lit(False)
            for f in self.spec.fields:
                if f.group == g.name:
                    present = present | ~missing[f.name]
            groups.append(present.alias(group(g.name)))
        return frame.select(*[F.col(c) for c in keep], *raws, *typed, *groups)

    def _keyed(self, frame: DataFrame) -> DataFrame:
        spec = self.spec
        order = Window.orderBy("_record")
        if spec.line_key is not None:
            invoice = F.col(spec.line_key).cast("string")
            line = F.row_number().over(order.partitionBy(invoice))
            key = F.concat(invoice, F.lit("|"), line.cast("string"))
            frame = frame.withColumn("_key", key).withColumn("_dup", F.lit(False))
        else:
            parts: list[Column] = []
            for i, k in enumerate(spec.key):
                parts += [F.lit("|")] if i else []
                parts.append(F.col(k).cast("string"))
            frame = frame.withColumn("_key", F.concat(*parts))
            single = len(spec.key) == 1 and spec.get_field(spec.key[0]).dtype.is_integer()
            ident = F.col(spec.key[0] if single else "_key")
            seen = F.row_number().over(order.partitionBy(ident))
            frame = frame.withColumn("_dup", ident.isNotNull() & (seen > 1))
        for i, (column, keys) in enumerate(self.known.items()):
            name = f"__known{i}"
            table = keys.alias(name).to_frame().to_arrow(compat_level=pl.CompatLevel.oldest())
            known = self.spark.createDataFrame(table).distinct()
            frame = frame.join(F.broadcast(known), F.col(column) == F.col(name), "left")
            flag = F.col(column).isNotNull() & F.col(name).isNull()
            frame = frame.withColumn(dangling(column), flag).drop(name)
        return frame

    def result(self, source: Source, chunk_rows: int) -> DataFrame:
        """Every record with ``_bad``, its reasons, raw text and the valid columns."""
        frame = self._keyed(self._typed(source.frame))
        structural = F.col(STRUCTURE).isNotNull()
        broken = [
            F.coalesce(to_spark(m.broken, self.types), F.lit(False)) & ~structural
            for m in self.masks
        ]
        reasons = [
            F.when(
                structural,
                F.struct(
                    F.col(STRUCTURE).alias("rule"),
                    F.lit(None).cast("string").alias("field"),
                    F.col(STRUCTURE_MSG).alias("message"),
                ),
            )
        ]
        for m, b in zip(self.masks, broken, strict=True):
            reason = F.struct(
                F.lit(m.rule).alias("rule"),
                F.lit(m.field).cast("string").alias("field"),
                to_spark(m.message, self.types).cast("string").alias("message"),
            )
            reasons.append(F.when(b, reason))
        bad = structural
        for b in broken:
            bad = bad | b
        spec = self.spec
        day = (
            F.to_date(F.col(spec.day_column))
            if spec.day_column is not None
            else F.lit(self.processing_day)
        )
        valid = [F.col(f.name) for f in spec.fields]
        valid += [F.col("_record"), F.col("_key"), day.alias("_day")]
        if spec.amount is not None:
            valid.append(to_spark(spec.amount, self.types).cast("double").alias("amount"))
        valid += [to_spark(e, self.types).alias(n) for n, e in spec.derived.items()]
        valid.append(F.col("_extra").cast("string"))
        return frame.select(
            *valid,
            bad.alias("_bad"),
            F.when(bad, F.col("raw")).alias("raw"),
            F.when(bad, F.filter(F.array(*reasons), lambda r: r.isNotNull())).alias("reasons"),
            ((F.col("_record") - 1) / chunk_rows).cast("bigint").alias(CHUNK),
        )


def _rules(rejected: pl.DataFrame) -> dict[str, int]:
    """Records per rule: a record counts once per rule it broke (as the Polars engine counts)."""
    counts: Counter[str] = Counter()
    for reasons in rejected.get_column("reasons").to_list():
        counts.update({r["rule"] for r in reasons})
    return dict(counts)


@dataclass
class Output:
    """Where Spark writes a file's result: a local folder, or a URI in the bucket."""

    uri: str
    local: Path | None

    @classmethod
    def create(cls, bucket_uri: str | None) -> Output:
        if bucket_uri:
            return cls(f"{bucket_uri.rstrip('/')}/work/spark/{uuid.uuid4().hex}", None)
        folder = Path(tempfile.mkdtemp(prefix="salesflow-spark-"))
        return cls(folder.as_uri() + "/result", folder)

    def chunk(self, index: int) -> pl.DataFrame:
        base = str(self.local / "result") if self.local is not None else self.uri
        return pl.read_parquet(f"{base}/{CHUNK}={index}/*.parquet", hive_partitioning=False)

    def remove(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)


def chunks(
    validation: SparkValidation,
    source: Source,
    *,
    chunk_rows: int,
    bucket_uri: str | None = None,
) -> Iterator[Chunk]:
    """Run the validation and yield its chunks in record order, one in memory at a time."""
    spec = validation.spec
    schema = spec.valid_schema()
    n = max(1, -(-source.rows // chunk_rows))
    if source.rows == 0:
        empty = ChunkReport(0, 0, 0, 0, {})
        rejected = pl.DataFrame(schema=REJECTED_SCHEMA)
        yield Chunk(0, 0, pl.DataFrame(schema=schema), rejected, empty, validation.warnings)
        return
    output = Output.create(bucket_uri)
    try:
        result = validation.result(source, chunk_rows)
        result.write.partitionBy(CHUNK).mode("overwrite").parquet(output.uri)
        for index in range(n):
            frame = output.chunk(index).sort("_record")
            bad = frame.get_column("_bad")
            valid = frame.filter(~bad).select([pl.col(c).cast(t) for c, t in schema.items()])
            rejected = frame.filter(bad).select(
                pl.col("_record").cast(pl.Int64),
                pl.col("_key").cast(pl.Utf8),
                pl.col("raw").cast(pl.Utf8),
                pl.col("reasons").cast(REJECTED_SCHEMA["reasons"]),
            )
            if source.raw is not None and rejected.height:
                rejected = rejected.with_columns(source.raw(rejected.get_column("_record")))
            report = ChunkReport(index, frame.height, valid.height, rejected.height)
            report.rules = _rules(rejected)
            warnings = list(validation.warnings) if index == 0 else []
            yield Chunk(index, frame.height, valid, rejected, report, warnings)
    finally:
        output.remove()

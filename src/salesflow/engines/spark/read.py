"""Files as Spark frames of strings, each record numbered in file order.

Spark splits a big CSV into byte ranges read in parallel, and nothing in a Spark frame keeps
the file's order. Record numbers (``_record``, 1-based, blank records skipped, as the Polars
engine counts them) are therefore made explicit at read time: a record's place is its split's
start offset (``_metadata.file_block_start``) and its position inside the split
(``monotonically_increasing_id`` grows by one per row within a task). One small aggregation
counts the rows of each split; the offsets become a map literal, so numbering costs no shuffle.

The frame has the columns of ``validation.engine.Arrived``: ``_record``, ``_s:<field>``,
``raw`` and ``_extra`` (JSON text), and ``_structure``/``_structure_msg``.

JSON files are small by design (a batch of orders, one sale event): they are flattened on the
driver by the Polars engine's own reader and handed to Spark as Arrow.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from salesflow.datasets.spec import DatasetSpec
from salesflow.validation.csv_source import OVERFLOW, check_header, read_header, unique_names
from salesflow.validation.engine import STRUCTURE, STRUCTURE_MSG, src
from salesflow.validation.json_source import decode, flatten
from salesflow.validation.text import TextFile

_BLOCK = "__block"
_ROW = "__row"
_JSON_OPTIONS = {"ignoreNullFields": "false"}


@dataclass
class Source:
    """A file as Spark sees it: the frame, its record count, and (JSON only) a function
    giving the raw text of record numbers, evaluated on the driver for rejected records."""

    frame: DataFrame
    rows: int
    raw: Callable[[pl.Series], pl.Series] | None = None


def _number(frame: DataFrame) -> tuple[DataFrame, int]:
    """Add ``_record`` (1-based, in file order) to a frame carrying ``_BLOCK`` and ``_ROW``."""
    stats = (
        frame.groupBy(_BLOCK)
        .agg(F.min(_ROW).alias("first"), F.count(F.lit(1)).alias("rows"))
        .orderBy(_BLOCK)
        .collect()
    )
    total = sum(int(s["rows"]) for s in stats)
    if not stats:
        return frame.withColumn("_record", F.lit(None).cast("bigint")), 0
    # Record number = rows of earlier splits + position in the split + 1. Rows of one split
    # are contiguous in their task, so the position is the id minus the split's first id.
    before = [0, *itertools.accumulate(int(s["rows"]) for s in stats)]
    base = F.create_map(
        *itertools.chain.from_iterable(
            (F.lit(s[_BLOCK]), F.lit(before[i] - int(s["first"]) + 1)) for i, s in enumerate(stats)
        )
    )
    numbered = frame.withColumn("_record", (F.element_at(base, F.col(_BLOCK)) + F.col(_ROW)))
    return numbered.drop(_BLOCK, _ROW), total


def _csv_options(spec: DatasetSpec, text: TextFile, encoding: str) -> dict[str, str]:
    return {
        "header": "true",  # skips the first line; the schema below names the columns
        "enforceSchema": "true",
        "escape": '"',
        "mode": "PERMISSIVE",
        "multiLine": "false",  # splittable; a quoted line break splits the record (README)
        "encoding": encoding,
    }


def read_csv(
    spark: SparkSession,
    text: TextFile,
    spec: DatasetSpec,
    source: str,
    uri: str,
    *,
    encoding: str = "UTF-8",
) -> Source:
    """The CSV at ``uri`` (``text`` is the driver's copy: header, format checks)."""
    header = read_header(text)
    found = check_header(spec, header, source)
    names = unique_names(header)
    cols = [f"c{i}" for i in range(len(header))]
    schema = ", ".join(f"`{c}` string" for c in [*cols, OVERFLOW])
    read = spark.read.format("csv").schema(schema).options(**_csv_options(spec, text, encoding))
    # Spark reads an empty cell as null; Polars (the reference) reads it as "".
    cells = {c: F.coalesce(F.col(c), F.lit("")) for c in cols}
    frame = read.load(uri).select(
        *[cells[c].alias(c) for c in cols],
        F.col(OVERFLOW),
        F.col("_metadata.file_block_start").alias(_BLOCK),
        F.monotonically_increasing_id().alias(_ROW),
    )
    blank = F.lit(True)
    for c in cols:
        blank = blank & (F.col(c) == "")
    frame, rows = _number(frame.filter(~blank))
    matched = set(found.values())
    pairs = list(zip(cols, names, strict=True))
    extras = [F.col(c).alias(n) for i, (c, n) in enumerate(pairs) if i not in matched]
    raw = F.to_json(F.struct(*[F.col(c).alias(n) for c, n in pairs]), _JSON_OPTIONS)
    extra: Column = (
        F.to_json(F.struct(*extras), _JSON_OPTIONS) if extras else F.lit(None).cast("string")
    )
    overflow = F.coalesce(F.col(OVERFLOW), F.lit("")) != ""
    message = F.concat(
        F.lit(f"record has more fields than the {len(header)} header columns (extra: '"),
        F.col(OVERFLOW),
        F.lit("')"),
    )
    fields = [
        (F.col(cols[found[f.name]]) if f.name in found else F.lit(None).cast("string")).alias(
            src(f.name)
        )
        for f in spec.fields
    ]
    arrived = frame.select(
        F.col("_record"),
        *fields,
        raw.alias("raw"),
        extra.alias("_extra"),
        F.when(overflow, F.lit("structure.field_count")).alias(STRUCTURE),
        F.when(overflow, message).alias(STRUCTURE_MSG),
    )
    return Source(arrived, rows)


def read_json(spark: SparkSession, text: TextFile, spec: DatasetSpec, source: str) -> Source:
    """A JSON (or JSON Lines) file, flattened on the driver and handed to Spark as Arrow."""
    flat = flatten(spec, source, decode(text))
    frame = flat.frame
    for name in (STRUCTURE, STRUCTURE_MSG):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(name))
    frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("raw"))
    arrow = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    return Source(spark.createDataFrame(arrow), frame.height, flat.raw)

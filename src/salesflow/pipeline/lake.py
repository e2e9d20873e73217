"""What the pipeline adds to a file's valid records before they go to the lake, and what a
commit changes in the totals.

Identity (``docs/design.md`` §1): every row carries its file version (``_seq``), its arrival
(``_arrived``, µs since the epoch), its source (the file's name) and its record number. Online
Retail lines have no key of their own: a line is ``<source>|<record>``, so files with other
names never touch each other and a re-sent file replaces its earlier version's lines. A
redriven record keeps the identity of the record it was rejected as (``redrive.identities``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import polars as pl

from salesflow.datasets.spec import DatasetSpec
from salesflow.kpis import TOTALS
from salesflow.kpis.aggregates import TOTALS_BY, totals
from salesflow.models import FileRecord
from salesflow.pipeline.redrive import Identity


def micros(when: datetime) -> int:
    """``when`` as µs since the epoch (the lake's ``_arrived``)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def replaces_source(spec: DatasetSpec) -> bool:
    """Whether a file of ``spec`` replaces every line of its source's earlier versions (the
    datasets whose records are lines keyed by their place in the file: Online Retail)."""
    return spec.line_key is not None


def identify(
    spec: DatasetSpec,
    record: FileRecord,
    valid: pl.DataFrame,
    origins: Mapping[int, Identity] | None = None,
) -> pl.DataFrame:
    """``valid`` with the version columns the lake stages: ``_seq``, ``_arrived``, ``_source``,
    ``_record``, and for line datasets ``_key = <source>|<record>``. A record of a redrive file
    named in ``origins`` (by its record number there) takes the identity of the record it was
    rejected as."""
    source = record.source
    frame = valid.with_columns(
        pl.lit(record.seq, dtype=pl.Int64).alias("_seq"),
        pl.lit(micros(record.arrived_at or record.started_at), dtype=pl.Int64).alias("_arrived"),
        pl.lit(source, dtype=pl.String).alias("_source"),
        pl.col("_record").cast(pl.Int64),
    )
    if origins:
        frame = _as_origins(frame, origins)
    if replaces_source(spec):
        frame = frame.with_columns(
            pl.concat_str([pl.col("_source"), pl.col("_record").cast(pl.String)], separator="|")
            .cast(pl.String)
            .alias("_key")
        )
    return frame


def _as_origins(frame: pl.DataFrame, origins: Mapping[int, Identity]) -> pl.DataFrame:
    """``frame``'s version columns replaced by those of ``origins`` where it names a record."""
    mine = frame.get_column("_record").to_list()
    found = [(n, origins[n]) for n in mine if n in origins]
    if not found:
        return frame
    given = pl.DataFrame(
        {
            "_record": [n for n, _ in found],
            "__seq": [x.seq for _, x in found],
            "__arrived": [micros(x.arrived) for _, x in found],
            "__source": [x.source for _, x in found],
            "__record": [x.record for _, x in found],
        },
        schema={
            "_record": pl.Int64,
            "__seq": pl.Int64,
            "__arrived": pl.Int64,
            "__source": pl.String,
            "__record": pl.Int64,
        },
    )
    columns = frame.columns
    return (
        frame.join(given, on="_record", how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("__seq", "_seq").alias("_seq"),
            pl.coalesce("__arrived", "_arrived").alias("_arrived"),
            pl.coalesce("__source", "_source").alias("_source"),
            pl.coalesce("__record", "_record").alias("_record"),
        )
        .select(columns)
    )


def totals_of(dataset: str, rows: pl.DataFrame, *, sign: int = 1) -> pl.DataFrame:
    """The ``TOTALS`` rows ``rows`` make up (negated with ``sign=-1``)."""
    if dataset not in TOTALS_BY or rows.is_empty():
        return pl.DataFrame(schema=TOTALS.schema)
    frame = totals(dataset, rows)
    if sign < 0:
        frame = frame.with_columns(-pl.col("total_amount"), -pl.col("records"))
    return frame


def sum_totals(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """``parts`` (``TOTALS`` rows) added up per group."""
    frames = [p.lazy().select(TOTALS.columns) for p in parts if not p.is_empty()]
    if not frames:
        return pl.DataFrame(schema=TOTALS.schema)
    key = list(TOTALS.key)
    return (  # one query: a query costs ~0.1 ms however few the rows
        pl.concat(frames)
        .group_by(key, maintain_order=True)
        .agg(pl.col(c).sum() for c in TOTALS.columns if c not in key)
        .select(TOTALS.columns)
        .collect(engine="in-memory")  # "auto" may pick streaming: slow to start
    )

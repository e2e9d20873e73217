"""KPIs and totals on Spark, from the lake's Parquet files, with the same definitions as Polars.

The aggregations are ``kpis.aggregates.METRICS``, ``RATIOS`` and ``TOTAL_METRICS`` compiled by
``rules.to_spark``. Records are read by Spark itself when the record store can list its
Parquet fragments (the local lake); the current version of each key is the one with the
highest ``_seq``, as every reader of the lake takes it. A store that only hands out frames
(DynamoDB) is read through the port and passed to Spark as Arrow.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.kpis.aggregates import (
    METRICS,
    RATIOS,
    TOTAL_METRICS,
    TOTALS_BY,
    UNKNOWN,
    totals_columns,
)
from salesflow.ports import AggregateSpec, RecordStore
from salesflow.rules.to_spark import to_spark

KPI_COLUMNS = ["status", "sale_price", "order_id", "product_id"]
META = ["_key", "_seq", "_day"]


@runtime_checkable
class ParquetFiles(Protocol):
    """A record store whose records are Parquet files Spark can read directly."""

    def fragments(self, dataset: str) -> list[Path]: ...


def _months(days: Collection[date]) -> set[str]:
    return {f"year={d.year:04d}/month={d.month:02d}" for d in days}


def read_records(
    spark: SparkSession,
    records: RecordStore,
    dataset: str,
    *,
    columns: Sequence[str],
    days: Collection[date] | None = None,
) -> DataFrame:
    """The current version of each record of ``dataset`` (``_key``, ``_seq``, ``_day`` and
    ``columns``), only of ``days`` when given."""
    paths = records.fragments(dataset) if isinstance(records, ParquetFiles) else None
    if paths is not None and days is not None:
        months = _months(days)
        paths = [p for p in paths if f"{p.parent.parent.name}/{p.parent.name}" in months]
    if not paths:
        stored = records.read(dataset, days=days, columns=list(columns)).select(*META, *columns)
        return spark.createDataFrame(stored.to_arrow(compat_level=pl.CompatLevel.oldest()))
    base = paths[0].parents[2]
    frame = (
        spark.read.option("basePath", str(base))
        .parquet(*[str(p) for p in paths])
        .select(*META, *columns)
    )
    if days is not None:
        frame = frame.filter(F.col("_day").isin(sorted(set(days))))
    newest = F.row_number().over(Window.partitionBy("_key").orderBy(F.col("_seq").desc()))
    return frame.withColumn("__n", newest).filter(F.col("__n") == 1).drop("__n")


def _to_polars(frame: DataFrame, spec: AggregateSpec, sort: list[str]) -> pl.DataFrame:
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    if out.is_empty():
        return pl.DataFrame(schema=spec.schema)
    return out.select([pl.col(c).cast(t) for c, t in spec.schema.items()]).sort(sort)


def _metrics() -> list[Column]:
    return [to_spark(e, {}).alias(n) for n, e in METRICS.items()]


def _ratios(frame: DataFrame) -> DataFrame:
    return frame.select("*", *[to_spark(e, {}).alias(n) for n, e in RATIOS.items()])


def kpis(
    spark: SparkSession, records: RecordStore, days: Collection[date]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Order KPIs and category KPIs of ``days`` (``kpis.order_kpis``/``category_kpis``)."""
    items = read_records(spark, records, "order_items", columns=KPI_COLUMNS, days=days)
    products = read_records(spark, records, "products", columns=["category"]).select(
        F.col("_key").alias("_product"), "category"
    )
    by_day = _ratios(items.groupBy(F.col("_day").alias("day")).agg(*_metrics()))
    joined = items.join(
        F.broadcast(products), F.col("product_id").cast("string") == F.col("_product"), "left"
    ).withColumn("category", F.coalesce(F.col("category"), F.lit(UNKNOWN)))
    by_category = _ratios(joined.groupBy("category", F.col("_day").alias("day")).agg(*_metrics()))
    return (
        _to_polars(by_day, ORDER_KPIS, ["day"]),
        _to_polars(by_category, CATEGORY_KPIS, ["category", "day"]),
    )


def totals(
    spark: SparkSession, records: RecordStore, dataset: str, days: Collection[date] | None = None
) -> pl.DataFrame:
    """Totals of ``dataset`` by each of its groupings (``kpis.totals``)."""
    groupings = TOTALS_BY.get(dataset, {})
    if not groupings:
        return pl.DataFrame(schema=TOTALS.schema)
    frame = read_records(spark, records, dataset, columns=totals_columns(dataset), days=days)
    metrics = [to_spark(e, {}).alias(n) for n, e in TOTAL_METRICS.items()]
    parts = [
        frame.groupBy(F.coalesce(F.col(column).cast("string"), F.lit(UNKNOWN)).alias("id"))
        .agg(*metrics)
        .select(F.lit(f"{dataset}.{by}").alias("scope"), "id", *TOTAL_METRICS)
        for by, column in groupings.items()
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return _to_polars(union, TOTALS, ["scope", "id"])

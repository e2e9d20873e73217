"""Recompute the aggregates a file touched, from the records in the store."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import polars as pl

from salesflow.kpis.aggregates import (
    CATEGORY_KPIS,
    ORDER_KPIS,
    TOTALS,
    TOTALS_BY,
    category_kpis,
    order_kpis,
    totals,
    totals_columns,
)
from salesflow.ports import AggregateSpec, RecordStore, Tables

KPI_COLUMNS = ["status", "sale_price", "order_id", "product_id"]


def _replace(
    tables: Tables,
    spec: AggregateSpec,
    fresh: pl.DataFrame,
    *,
    column: str,
    values: list[object],
) -> None:
    """Replace the stored rows in scope (``column`` in ``values``) with ``fresh``."""
    old = tables.read_aggregates(spec, column=column, values=values)
    key = list(spec.key)
    gone = old.select(key).join(fresh.select(key), on=key, how="anti")
    tables.replace_aggregates(spec, delete=gone, upsert=fresh)


def _by_month(days: Collection[date]) -> list[list[date]]:
    """``days`` sorted and grouped by calendar month (the lake's partitions)."""
    months: dict[tuple[int, int], list[date]] = {}
    for day in sorted(set(days)):
        months.setdefault((day.year, day.month), []).append(day)
    return list(months.values())


def refresh_kpis(records: RecordStore, tables: Tables, days: Collection[date]) -> None:
    """Order and category KPIs for ``days``, from the current order_items and products.

    Every KPI is per day, so the items are read and aggregated a month at a time: memory
    holds one month of records, not all of them (a bulk load touches every day).
    """
    if not days:
        return
    products = records.read("products", columns=["category"]).select("_key", "category")
    orders: list[pl.DataFrame] = []
    categories: list[pl.DataFrame] = []
    for month in _by_month(days):
        items = records.read("order_items", days=month, columns=KPI_COLUMNS)
        items = items.select("_day", *KPI_COLUMNS)
        orders.append(order_kpis(items))
        categories.append(category_kpis(items, products))
        del items  # free this month before the next one is read
    values: list[object] = list(sorted(set(days)))
    _replace(tables, ORDER_KPIS, pl.concat(orders), column="day", values=values)
    _replace(
        tables,
        CATEGORY_KPIS,
        pl.concat(categories).sort("category", "day"),
        column="day",
        values=values,
    )


def refresh_totals(
    records: RecordStore, tables: Tables, dataset: str, days: Collection[date] | None = None
) -> None:
    """The totals of ``dataset``, recomputed from its records.

    Totals grouped only by day (order_items) are recomputed for the touched ``days``, so a
    small file costs the same whatever the store holds; other groupings (invoice, customer,
    product) span days and are recomputed whole (a few columns of the dataset).
    """
    groupings = TOTALS_BY.get(dataset)
    if not groupings:
        return
    if set(groupings) == {"day"} and days is not None:
        scope = f"{dataset}.day"
        wanted = sorted(set(days))
        frame = records.read(dataset, days=wanted, columns=totals_columns(dataset))
        fresh = totals(dataset, frame)
        old = tables.read_aggregates(TOTALS, column="id", values=[d.isoformat() for d in wanted])
        old = old.filter(pl.col("scope") == scope)
        key = list(TOTALS.key)
        gone = old.select(key).join(fresh.select(key), on=key, how="anti")
        tables.replace_aggregates(TOTALS, delete=gone, upsert=fresh)
        return
    frame = records.read(dataset, columns=totals_columns(dataset))
    scopes: list[object] = [f"{dataset}.{by}" for by in groupings]
    _replace(tables, TOTALS, totals(dataset, frame), column="scope", values=scopes)


def refresh_aggregates(
    records: RecordStore, tables: Tables, dataset: str, days: Collection[date]
) -> None:
    """Everything a file of ``dataset`` touching ``days`` can change.

    A products file can move items between categories, so it refreshes every KPI day.
    """
    refresh_totals(records, tables, dataset, days)
    if dataset == "order_items":
        refresh_kpis(records, tables, days)
    elif dataset == "products":
        stored = tables.read_aggregates(ORDER_KPIS)
        refresh_kpis(records, tables, stored.get_column("day").to_list())

"""Recompute the aggregates a file touched, from the records in the store."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.kpis.aggregates import TOTALS_BY
from salesflow.ports import AggregateSpec, RecordStore, Tables

if TYPE_CHECKING:
    from salesflow.engines import Engine


def _default(engine: Engine | None) -> Engine:
    if engine is not None:
        return engine
    from salesflow.engines.polars_engine import PolarsEngine

    return PolarsEngine()


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


def refresh_kpis(
    records: RecordStore, tables: Tables, days: Collection[date], engine: Engine | None = None
) -> None:
    """Order and category KPIs for ``days``, from the current order_items and products,
    computed by ``engine`` (default: Polars, a month at a time)."""
    if not days:
        return
    orders, categories = _default(engine).kpis(records, days)
    values: list[object] = list(sorted(set(days)))
    _replace(tables, ORDER_KPIS, orders, column="day", values=values)
    _replace(tables, CATEGORY_KPIS, categories, column="day", values=values)


def refresh_totals(
    records: RecordStore,
    tables: Tables,
    dataset: str,
    days: Collection[date] | None = None,
    engine: Engine | None = None,
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
        fresh = _default(engine).totals(records, dataset, wanted)
        old = tables.read_aggregates(TOTALS, column="id", values=[d.isoformat() for d in wanted])
        old = old.filter(pl.col("scope") == scope)
        key = list(TOTALS.key)
        gone = old.select(key).join(fresh.select(key), on=key, how="anti")
        tables.replace_aggregates(TOTALS, delete=gone, upsert=fresh)
        return
    scopes: list[object] = [f"{dataset}.{by}" for by in groupings]
    fresh = _default(engine).totals(records, dataset)
    _replace(tables, TOTALS, fresh, column="scope", values=scopes)


def refresh_kpis_of(
    records: RecordStore,
    tables: Tables,
    dataset: str,
    days: Collection[date],
    engine: Engine | None = None,
) -> None:
    """The KPIs a commit of ``dataset`` touching ``days`` can change, recomputed from the
    lake by ``engine`` (totals are kept by deltas: ``Tables.apply_totals``). A products file
    can move items between categories, so it refreshes every KPI day."""
    if dataset == "order_items":
        refresh_kpis(records, tables, days, engine)
    elif dataset == "products":
        stored = tables.read_aggregates(ORDER_KPIS)
        refresh_kpis(records, tables, stored.get_column("day").to_list(), engine)


def refresh_aggregates(
    records: RecordStore,
    tables: Tables,
    dataset: str,
    days: Collection[date],
    engine: Engine | None = None,
) -> None:
    """Everything a file of ``dataset`` touching ``days`` can change, computed by ``engine``
    (default: Polars).

    A products file can move items between categories, so it refreshes every KPI day.
    """
    refresh_totals(records, tables, dataset, days, engine)
    if dataset == "order_items":
        refresh_kpis(records, tables, days, engine)
    elif dataset == "products":
        stored = tables.read_aggregates(ORDER_KPIS)
        refresh_kpis(records, tables, stored.get_column("day").to_list(), engine)

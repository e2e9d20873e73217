"""Read-only views of the state: status, KPIs, totals, alerts, top rejection reasons."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.models import AlertStatus, FileStatus, LetterStatus
from salesflow.pipeline.state import StepState
from salesflow.ports import AggregateSpec, Backend, Tables

if TYPE_CHECKING:
    import polars as pl


def file_rows(backend: Backend, limit: int | None = None) -> list[dict[str, Any]]:
    """Lineage rows as dicts, newest last."""
    files = backend.tables.list_files()
    if limit is not None:
        files = files[-limit:]
    return [
        {
            "file": f.key,
            "dataset": f.dataset,
            "status": f.status.value,
            "rows_in": f.rows_in,
            "valid": f.valid,
            "rejected": f.rejected,
            "seq": f.seq,
            "archive_key": f.archive_key,
            "error": f.error,
        }
        for f in files
    ]


def rules_by_file(backend: Backend, states: Sequence[StepState]) -> list[tuple[str, str, int]]:
    """``(file, rule, records)`` from each file's stored validation report."""
    rows: list[tuple[str, str, int]] = []
    for state in states:
        if not state.report_key or not backend.store.exists(state.report_key):
            continue
        report = json.loads(backend.store.get_bytes(state.report_key))
        rows.extend((state.key, rule, int(n)) for rule, n in sorted(report["rules"].items()))
    return rows


def top_reasons(backend: Backend, limit: int = 10) -> list[tuple[str, int]]:
    """The rules that rejected the most records still open (NEW), aggregated in the store."""
    counts: Counter[str] = Counter()
    for group in backend.letters.counts():
        if group.status == LetterStatus.NEW:
            counts[group.rule] += group.letters
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def status(backend: Backend) -> dict[str, Any]:
    """Counts of files by status, records, dead letters, pending files and alerts."""
    files = backend.tables.list_files()
    by_status = Counter(f.status.value for f in files)
    alerts = {s.value: n for s in AlertStatus if (n := backend.tables.count_alerts(s))}
    done = [f for f in files if f.status == FileStatus.SUCCESS]
    return {
        "files": {s.value: by_status.get(s.value, 0) for s in FileStatus},
        "rows_in": sum(f.rows_in for f in done),
        "valid": sum(f.valid for f in done),
        "rejected": sum(f.rejected for f in done),
        "dead_letters": {s.value: backend.letters.count(status=s) for s in LetterStatus},
        "pending": len(backend.tables.list_pending()),
        "alerts": alerts,
        "top_reasons": dict(top_reasons(backend)),
    }


MONEY = ("revenue", "avg_basket", "total_amount")
"""Columns holding amounts: shown in cents, as a sum of floats is not (22.200000000000003)."""
RATIOS = ("return_rate",)
PLACES = {**dict.fromkeys(MONEY, 2), **dict.fromkeys(RATIOS, 4)}


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    """Money to cents and ratios to 4 places, for people and for ``--json``."""
    for column, places in PLACES.items():
        value = row.get(column)
        if isinstance(value, float):
            row[column] = round(value, places)
    return row


def _sorted(rows: list[dict[str, Any]], spec: AggregateSpec) -> list[dict[str, Any]]:
    return sorted((_rounded(r) for r in rows), key=lambda r: tuple(r[k] for k in spec.key))


def kpi_spec(by: str = "day", category: str | None = None) -> AggregateSpec:
    return CATEGORY_KPIS if by == "category" or category is not None else ORDER_KPIS


def kpi_rows(
    tables: Tables,
    *,
    by: str = "day",
    start: date | None = None,
    end: date | None = None,
    category: str | None = None,
) -> list[dict[str, Any]]:
    """Order KPIs by day, or category KPIs by category and day (money in cents), sorted by
    their key; plain rows, so ``salesflow kpis`` imports no Polars.

    ``start`` and ``end`` bound the day (both included); ``category`` keeps that category's
    rows of the category KPIs (and implies ``by="category"``).
    """
    spec = kpi_spec(by, category)
    rows = tables.aggregate_rows(
        spec,
        column=None if category is None else "category",
        values=None if category is None else [category],
    )
    kept = [
        r for r in rows if (start is None or r["day"] >= start) and (end is None or r["day"] <= end)
    ]
    return _sorted(kept, spec)


def kpis(
    backend: Backend,
    *,
    by: str = "day",
    start: date | None = None,
    end: date | None = None,
    category: str | None = None,
) -> pl.DataFrame:
    """``kpi_rows`` as a frame with the spec's schema."""
    rows = kpi_rows(backend.tables, by=by, start=start, end=end, category=category)
    return _frame(rows, kpi_spec(by, category))


def total_rows(tables: Tables, *, by: str, dataset: str | None = None) -> list[dict[str, Any]]:
    """Totals of every dataset grouped ``by`` (invoice, customer, day, product), in cents,
    sorted by scope and id."""
    if dataset:
        rows = tables.aggregate_rows(TOTALS, column="scope", values=[f"{dataset}.{by}"])
    else:
        rows = [r for r in tables.aggregate_rows(TOTALS) if r["scope"].endswith(f".{by}")]
    return _sorted(rows, TOTALS)


def totals(backend: Backend, *, by: str, dataset: str | None = None) -> pl.DataFrame:
    """``total_rows`` as a frame with the spec's schema."""
    return _frame(total_rows(backend.tables, by=by, dataset=dataset), TOTALS)


def _frame(rows: list[dict[str, Any]], spec: AggregateSpec) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(rows, schema=spec.schema)

"""What the dashboard's first page shows, read from the same tables as ``salesflow kpis``,
``totals``, ``alerts`` and ``status``: daily KPI series over a date range (site-wide or for
one category), the category breakdown of that range, Online Retail totals, recent alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from salesflow.kpis import CATEGORY_KPIS
from salesflow.ops import summaries
from salesflow.ports import Backend

TOTALS_DATASET = "online_retail"
TOTALS_BY = ("invoice", "customer", "day")
SERIES = ("items", "revenue", "orders", "avg_basket", "return_rate")


@dataclass
class KpiSeries:
    """One value per day for each KPI, aligned on ``days`` (ISO dates)."""

    days: list[str] = field(default_factory=list)
    values: dict[str, list[float | int | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, **self.values}


def kpi_series(
    backend: Backend,
    *,
    start: date | None = None,
    end: date | None = None,
    category: str | None = None,
) -> KpiSeries:
    """The daily KPIs between ``start`` and ``end`` (both included), of one category or of
    the whole site: the rows ``salesflow kpis [--category C] --from --to`` prints."""
    frame = summaries.kpis(backend, start=start, end=end, category=category)
    return KpiSeries(
        days=[d.isoformat() for d in frame.get_column("day").to_list()],
        values={name: frame.get_column(name).to_list() for name in SERIES},
    )


def categories(backend: Backend) -> list[str]:
    """Every category the KPIs know, sorted."""
    frame = backend.tables.read_aggregates(CATEGORY_KPIS)
    return sorted(frame.get_column("category").unique().to_list())


def day_range(backend: Backend) -> tuple[date | None, date | None]:
    """The first and last day with KPIs (None, None when there are none)."""
    days = summaries.kpis(backend).get_column("day")
    if days.is_empty():
        return None, None
    return days.min(), days.max()  # type: ignore[return-value]


def category_breakdown(
    backend: Backend, *, start: date | None = None, end: date | None = None
) -> list[dict[str, Any]]:
    """Per category over the range: items, revenue, returned items, return rate and the
    share of revenue; biggest revenue first. (Orders and average basket do not add up
    across days, so they are left to the daily series.)"""
    frame = summaries.kpis(backend, by="category", start=start, end=end)
    if frame.is_empty():
        return []
    out = (
        frame.group_by("category")
        .agg(pl.col("items").sum(), pl.col("revenue").sum(), pl.col("returned").sum())
        .with_columns(
            (pl.col("returned") / pl.col("items")).alias("return_rate"),
            (pl.col("revenue") / pl.col("revenue").sum()).fill_nan(0.0).alias("share"),
        )
        .sort(["revenue", "category"], descending=[True, False])
    )
    return out.to_dicts()


def online_retail_totals(
    backend: Backend, *, by: str, top: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """The Online Retail totals grouped ``by`` invoice, customer or day: the ``top`` biggest
    (by day: the latest days), and how many groups there are in all."""
    frame = summaries.totals(backend, by=by, dataset=TOTALS_DATASET)
    ordered = (
        frame.sort("id", descending=True)
        if by == "day"
        else frame.sort(["total_amount", "id"], descending=[True, False])
    )
    return ordered.head(top).to_dicts(), frame.height


def recent_alerts(backend: Backend, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest alerts first."""
    alerts = backend.tables.list_alerts()
    return [a.to_dict() for a in reversed(alerts[-limit:])] if limit else []


def fingerprint(backend: Backend) -> str:
    """A short text that changes whenever a file is processed, a letter changes status, an
    alert is raised or sent, or a batch file starts or stops waiting: pages poll it to know
    when to refresh."""
    import hashlib

    from salesflow.models import LetterStatus

    files = backend.tables.list_files()
    parts = [
        len(files),
        max((f.seq for f in files), default=0),
        sorted((f.seq, f.status.value, bool(getattr(f, "settled", False))) for f in files[-50:]),
        [backend.letters.count(status=s) for s in LetterStatus],
        sorted((a.status.value, a.attempts) for a in backend.tables.list_alerts()[-50:]),
        len(backend.tables.list_alerts()),
        [p.key for p in backend.tables.list_pending()],
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

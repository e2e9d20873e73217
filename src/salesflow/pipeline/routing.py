"""Turning validation output into dead letters and alerts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from salesflow.models import Alert, DeadLetter, LetterEvent, Reason, utcnow


def dead_letters(dataset: str, source: str, seq: int, rejected: pl.DataFrame) -> list[DeadLetter]:
    """One letter per rejected row; ids are ``<seq>:<record>`` (the file version and the
    record's position in it), so publishing the same file version again is a no-op.

    Columns are converted to Python lists once (not row by row), and the letters of one
    chunk share one ``created_at``: this runs for every rejected record of a big file.
    """
    created = utcnow()
    history = [LetterEvent(at=created, event="rejected", run=seq)]
    columns = [rejected.get_column(c).to_list() for c in ("_record", "raw")]
    return [
        DeadLetter(
            id=f"{seq}:{record}",
            seq=seq,
            dataset=dataset,
            source_file=source,
            record=int(record),
            raw=_raw(raw),
            reasons=reasons,
            created_at=created,
            history=list(history),
        )
        for record, raw, reasons in zip(*columns, _reasons(rejected["reasons"]), strict=True)
    ]


def _reasons(column: pl.Series) -> list[list[Reason]]:
    """Each row's reasons. The structs are read as three flat columns, not as a dict per
    reason (``to_list`` of the list column was 5x slower), and equal reasons share one
    (frozen) ``Reason``: a file's rejected rows mostly break the same few rules."""
    sizes = column.list.len().fill_null(0)
    # Only non-empty lists: how an empty or null one explodes differs between versions.
    flat = column.filter(sizes > 0).explode().struct.unnest()
    made: dict[tuple[Any, ...], Reason] = {}
    reasons: list[Reason] = []
    columns = [flat.get_column(c).to_list() for c in ("rule", "field", "message")]
    for key in zip(*columns, strict=True):
        found = made.get(key)
        if found is None:
            found = made[key] = Reason(*key)
        reasons.append(found)
    rows: list[list[Reason]] = []
    at = 0
    for size in sizes.to_list():
        rows.append(reasons[at : at + size])
        at += size
    return rows


def _raw(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw": raw}
    return parsed if isinstance(parsed, dict) else {"_raw": parsed}


def high_value_alerts(
    dataset: str,
    source: str,
    valid: pl.DataFrame,
    *,
    threshold: float,
    sinks: Sequence[str],
) -> list[Alert]:
    """An alert per sink for each sale whose amount exceeds ``threshold`` (seed 003).

    Ids are ``<dataset>:<record key>@<sink>``: a replay or a restart never alerts twice,
    and each sink is retried on its own.
    """
    if "amount" not in valid.columns or valid.is_empty():
        return []
    hits = valid.filter(pl.col("amount") > threshold).select("_key", "amount")
    alerts = []
    for key, amount in hits.iter_rows():
        message = (
            f"High value sale in {dataset}: {key} for ${amount:,.2f} (threshold ${threshold:,.2f})"
        )
        for sink in sinks:
            alerts.append(
                Alert(
                    id=f"{dataset}:{key}@{sink}",
                    dataset=dataset,
                    record_key=str(key),
                    amount=float(amount),
                    threshold=threshold,
                    source_file=source,
                    message=message,
                )
            )
    return alerts


def sink_of(alert: Alert) -> str:
    """The sink an alert row is for (the part of its id after ``@``)."""
    return alert.id.rpartition("@")[2]

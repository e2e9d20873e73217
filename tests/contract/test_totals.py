"""Totals deltas: each commit's applied exactly once, however often publish retries it."""

from __future__ import annotations

import polars as pl

from salesflow.kpis import TOTALS
from salesflow.ports import Tables


def deltas(*rows: tuple[str, str, float, int]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=TOTALS.schema, orient="row")


def stored(tables: Tables) -> dict[tuple[str, str], tuple[float, int]]:
    frame = tables.read_aggregates(TOTALS)
    return {
        (s, i): (round(a, 6), n)
        for s, i, a, n in frame.select("scope", "id", "total_amount", "records").rows()
    }


def test_a_commit_is_applied_once(tables: Tables) -> None:
    first = deltas(
        ("sale_events.day", "2024-05-01", 10.5, 2), ("sale_events.product", "Desk", 10.5, 2)
    )
    tables.apply_totals(7, first)
    tables.apply_totals(7, first)  # publish retried after a crash
    assert stored(tables) == {
        ("sale_events.day", "2024-05-01"): (10.5, 2),
        ("sale_events.product", "Desk"): (10.5, 2),
    }


def test_corrections_move_amounts_and_empty_groups_vanish(tables: Tables) -> None:
    tables.apply_totals(1, deltas(("sale_events.product", "Desk", 10.0, 1)))
    moved = deltas(
        ("sale_events.product", "Desk", -10.0, -1), ("sale_events.product", "Lamp", 12.0, 1)
    )
    tables.apply_totals(2, moved)
    assert stored(tables) == {("sale_events.product", "Lamp"): (12.0, 1)}


def test_many_groups_in_one_commit(tables: Tables) -> None:
    many = deltas(*[("online_retail.invoice", f"I{n:04d}", 1.25, 1) for n in range(250)])
    tables.apply_totals(3, many)
    tables.apply_totals(3, many)
    got = stored(tables)
    assert len(got) == 250 and set(got.values()) == {(1.25, 1)}

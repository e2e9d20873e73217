"""Read-only commands: status, kpis, totals, audit (alerts: ``alert_cmds``).

``kpis`` and ``totals`` open the state tables alone and read plain rows: they import no
Polars, so a new process shows a file's KPIs within a second of the service storing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer

from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    Json,
    console,
    emit_json,
    open_backend,
    open_tables,
    safe,
    settings_for,
    table,
)
from salesflow.kpis import TOTALS
from salesflow.logs import one_line
from salesflow.ops import summaries as summary


def _rows(title: str, columns: Sequence[str], rows: list[dict[str, Any]], json_out: bool) -> None:
    if json_out:
        emit_json(rows)
    else:
        console.print(table(title, columns, [[r[c] for c in columns] for r in rows]))


def status(
    data_dir: DataDir = None,
    backend: BackendName = None,
    files: Annotated[int, typer.Option(help="show the last N files")] = 20,
    json_out: Json = False,
) -> None:
    """Files by status, records, dead letters, pending batch files and alerts.

    Example: salesflow status --json
    """
    with open_backend(settings_for(data_dir, backend)) as be:
        info = summary.status(be)
        rows = summary.file_rows(be, limit=files)
    if json_out:
        emit_json({**info, "recent": rows})
        return
    console.print(
        table(
            "Files",
            ("file", "dataset", "status", "rows_in", "valid", "rejected"),
            [
                [r["file"], r["dataset"], r["status"], r["rows_in"], r["valid"], r["rejected"]]
                for r in rows
            ],
        )
    )
    counts = [[k, v] for k, v in info["files"].items()]
    console.print(table("Lineage", ("status", "files"), counts))
    console.print(
        f"records: {info['rows_in']:,} in, {info['valid']:,} valid, {info['rejected']:,} rejected; "
        f"dead letters: {info['dead_letters']}; pending batch files: {info['pending']}; "
        f"alerts: {info['alerts']}"
    )


def kpis(
    data_dir: DataDir = None,
    backend: BackendName = None,
    by: Annotated[str, typer.Option(help="day or category")] = "day",
    since: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="first day, YYYY-MM-DD")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="last day, YYYY-MM-DD")
    ] = None,
    category: Annotated[str | None, typer.Option(help="only this category")] = None,
    json_out: Json = False,
) -> None:
    """Daily order KPIs (or by category and day): items, revenue, orders, avg basket,
    return rate.

    Example: salesflow kpis --by category --from 2024-06-01 --to 2024-06-30 --json
    """
    if by not in ("day", "category"):
        raise typer.BadParameter("--by takes day or category")
    with open_tables(settings_for(data_dir, backend)) as tables:
        rows = summary.kpi_rows(
            tables,
            by=by,
            start=since.date() if since else None,
            end=until.date() if until else None,
            category=category,
        )
    title = f"KPIs by {by}" if category is None else f"KPIs of {category}"
    _rows(title, summary.kpi_spec(by, category).columns, rows, json_out)


def totals(
    by: Annotated[str, typer.Option(help="invoice, customer, day or product")] = "day",
    dataset: Annotated[str | None, typer.Option(help="only this dataset")] = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Sales totals per invoice, customer, day or product (invoice and customer: online_retail;
    product: sale_events), money in cents.

    Example: salesflow totals --by invoice
    """
    if by not in ("invoice", "customer", "day", "product"):
        raise typer.BadParameter("--by takes invoice, customer, day or product")
    with open_tables(settings_for(data_dir, backend)) as tables:
        rows = summary.total_rows(tables, by=by, dataset=dataset)
    _rows(f"Totals by {by}", TOTALS.columns, rows, json_out)


def audit(
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Check every invariant; exit code 1 on any violation.

    Example: salesflow audit && echo consistent
    """
    from salesflow.ops.audit import audit as run_audit

    settings = settings_for(data_dir, backend)
    with open_backend(settings) as be:
        report = run_audit(be, rows_at_a_time=settings.audit_rows)
    if json_out:
        emit_json(report.to_dict())
    else:
        console.print(table("Audit", ("check", "times"), sorted(report.checks.items())))
        for violation in report.violations:
            console.print(f"[red]violation[/red] {safe(one_line(str(violation)))}")
        console.print("[green]all invariants hold[/green]" if report.ok else "[red]FAILED[/red]")
    if not report.ok:
        raise typer.Exit(1)


def compact(
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Merge the lake's small fragments into big ones (the pipeline compacts as it goes;
    run it after a bulk load to read faster; safe while readers run).

    Example: salesflow compact --data-dir ./salesflow-data
    """
    from salesflow.datasets import SPECS
    from salesflow.entrypoints.cli.common import processing_lock

    settings = settings_for(data_dir, "local")
    with open_backend(settings) as be, processing_lock(settings):
        merged = {name: be.lake.compact(name).merged for name in SPECS}
    if json_out:
        emit_json(merged)
        return
    console.print(table("Compacted", ("dataset", "fragments merged"), list(merged.items())))

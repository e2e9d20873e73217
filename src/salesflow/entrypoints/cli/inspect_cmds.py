"""Commands to look at the state: ``files`` (lineage), ``query`` (SQL) and ``ui`` (the
dashboard)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    Json,
    console,
    emit_json,
    open_backend,
    settings_for,
    table,
)

LINEAGE_COLUMNS = (
    "seq",
    "file",
    "dataset",
    "status",
    "rows_in",
    "valid",
    "rejected",
    "started_at",
    "duration_s",
    "attempts",
    "error",
)


def _cell(value: object) -> object:
    return f"{value:%Y-%m-%d %H:%M:%S}" if isinstance(value, datetime) else value


def files(
    key: Annotated[
        str | None,
        typer.Argument(help="an inbox, archive or lineage key, a source name, or a folder/"),
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="IN_PROGRESS, SUCCESS, FAILED or DUPLICATE")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="only this dataset")] = None,
    last: Annotated[int | None, typer.Option(help="only the newest N versions")] = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Lineage of every file version: status, counts, times, sha256, attempts, error, archive
    and report; then the batch files waiting and when their batch runs.

    Example: salesflow files inbox/orders/2024-06-01.csv --json
    """
    from salesflow.ops.lineage import list_files, pending_batch

    settings = settings_for(data_dir, backend)
    with open_backend(settings) as be:
        rows = list_files(be, key=key, status=status, dataset=dataset, limit=last)
        waiting = pending_batch(be, settings)
    if json_out:
        emit_json({"files": [r.to_dict() for r in rows], "pending": waiting.to_dict()})
        return
    if key and len(rows) <= 3:
        for row in rows:
            detail = row.to_dict()
            console.print(
                table(f"{row.file} (seq {row.seq})", ("field", "value"), list(detail.items()))
            )
    else:
        shown = [[_cell(getattr(r, c)) for c in LINEAGE_COLUMNS] for r in rows]
        console.print(table("Files", LINEAGE_COLUMNS, shown))
    if not rows:
        console.print("no file matches" if key or status or dataset else "no files yet")
    if waiting.files:
        when = (
            f"runs on the next tick ({waiting.due})"
            if waiting.due
            else f"timer fires at {waiting.fires_at:%Y-%m-%d %H:%M:%S} UTC"
            if waiting.fires_at
            else f"waiting for {', '.join(waiting.missing)}"
        )
        console.print(
            table(
                f"Waiting for their batch: {when}",
                ("file", "dataset", "arrived_at", "waiting_s"),
                [[f.key, f.dataset, f.arrived_at.isoformat(), f.waiting_s] for f in waiting.files],
            )
        )


def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over one view per dataset (order_items, online_retail, ...) and the "
            "tables kpis, category_kpis, totals, lineage, dead_letters, alerts, pending"
        ),
    ],
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """SQL (DuckDB) over the current version of every stored record and the state tables;
    a superseded version of a record is never shown.

    Example: salesflow query "SELECT category, sum(revenue) FROM category_kpis GROUP BY ALL"
    """
    from salesflow.ops.query import query as run_query

    with open_backend(settings_for(data_dir, backend)) as be:
        frame = run_query(be, sql)
    if json_out:
        emit_json(frame.to_dicts())
        return
    console.print(table(f"{frame.height:,} rows", frame.columns, frame.rows()))


def ui(
    host: Annotated[
        str | None, typer.Option(help="address to bind [default 127.0.0.1: this machine only]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port [default 8050; 0: any free port]")] = None,
    new_token: Annotated[
        bool,
        typer.Option(
            "--new-token", help="generate a token (printed once) when SALESFLOW_UI__TOKEN is unset"
        ),
    ] = False,
    data_dir: DataDir = None,
    backend: BackendName = None,
) -> None:
    """Serve the web dashboard: KPI charts, file lineage, and the dead-letter queue with
    redrive and discard. Binding beyond loopback needs a token.

    Example: salesflow ui --port 8050
    """
    from salesflow.entrypoints.ui import serve
    from salesflow.entrypoints.ui.security import new_token as make_token

    settings = settings_for(data_dir, backend)
    secret = settings.ui.token.get_secret_value() if settings.ui.token else None
    token = secret or (make_token() if new_token else None)
    serve(
        settings,
        host=host or settings.ui.host,
        port=settings.ui.port if port is None else port,
        token=token,
        announce=lambda line: typer.echo(line),
    )

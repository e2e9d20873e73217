"""``salesflow alerts``: list high-value sale alerts; ``alerts retry`` delivers them now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    Json,
    console,
    emit_json,
    err_console,
    open_backend,
    settings_for,
    table,
)
from salesflow.logs import mask_email
from salesflow.models import Alert, AlertStatus
from salesflow.ports import Backend
from salesflow.redact import redact_urls

app = typer.Typer()

STATUSES = ", ".join(s.value for s in AlertStatus)
COLUMNS = ("id", "amount", "status", "attempts", "next attempt", "file", "error")


def _status(value: str | None) -> AlertStatus | None:
    if value is None:
        return None
    try:
        return AlertStatus(value.upper())
    except ValueError as exc:
        raise typer.BadParameter(f"--status takes {STATUSES}") from exc


def shown(alert: Alert) -> dict[str, Any]:
    """An alert as printed: URLs in its error redacted, emails masked."""
    data = alert.to_dict()
    data["sink"] = alert.sink
    if alert.error:
        data["error"] = mask_email(redact_urls(alert.error))
    data["message"] = mask_email(alert.message)
    return data


def undelivered_line(be: Backend, keys: Sequence[str]) -> str | None:
    """What ``ingest`` says about the alerts of the files it ingested that are not yet
    delivered (read by source file, which the stores index), or None if all went out."""
    open_ = [
        a
        for key in dict.fromkeys(keys)
        for a in be.tables.list_alerts(source_file=key)
        if a.status != AlertStatus.SENT
    ]
    if not open_:
        return None
    errors = {a.sink: a.error for a in open_ if a.error}
    counts = ", ".join(
        f"{sum(a.status == s for a in open_)} {s.value}"
        for s in AlertStatus
        if any(a.status == s for a in open_)
    )
    why = "; ".join(f"{k}: {mask_email(redact_urls(v))}" for k, v in sorted(errors.items()))
    return (
        f"alerts not delivered yet: {counts}" + (f" ({why})" if why else "") + "; "
        "`salesflow run` retries them with backoff, `salesflow alerts retry` sends them now"
    )


def _row(alert: Alert) -> list[Any]:
    data = shown(alert)
    due = alert.next_attempt_at
    when = f"{due:%Y-%m-%d %H:%M:%S}" if due and alert.status == AlertStatus.PENDING else None
    return [
        alert.id,
        alert.amount,
        alert.status.value,
        alert.attempts,
        when,
        alert.source_file,
        data["error"],
    ]


@app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=f"only this status: {STATUSES}")] = None,
    dataset: Annotated[str | None, typer.Option(help="only alerts of this dataset")] = None,
    file: Annotated[
        str | None, typer.Option("--file", help="only alerts raised by this inbox key")
    ] = None,
    limit: Annotated[int, typer.Option(help="show the newest N", min=1)] = 100,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """High-value sale alerts, one per sale and sink, and whether each sink got them;
    `alerts retry` delivers the open ones now.

    Example: salesflow alerts --status FAILED --dataset sale_events
    """
    if ctx.invoked_subcommand is not None:
        return
    wanted = _status(status)
    with open_backend(settings_for(data_dir, backend)) as be:
        items = be.tables.list_alerts(wanted, dataset=dataset, source_file=file, limit=limit)
        total = (
            be.tables.count_alerts(wanted, dataset=dataset, source_file=file)
            if len(items) == limit
            else len(items)
        )
    if json_out:
        emit_json([shown(a) for a in items])
        return
    console.print(table("Alerts", COLUMNS, [_row(a) for a in items]))
    if total > len(items):
        console.print(f"showing the newest {len(items):,} of {total:,} alerts (--limit)")


@app.command()
def retry(
    failed: Annotated[
        bool, typer.Option("--failed", help="also the FAILED alerts (one more attempt each)")
    ] = False,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="only this alert id (repeatable)")
    ] = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Deliver open alerts now, whatever their backoff says; exit 1 if any stays undelivered.

    Every PENDING alert, with --failed the FAILED ones too, or only those named by --id. For
    users who only run `ingest`; safe while `salesflow run` delivers too (each alert is
    claimed by one process at a time).

    Example: salesflow alerts retry --failed
    """
    from salesflow.pipeline.delivery import courier_for

    settings = settings_for(data_dir, backend)
    with open_backend(settings) as be:
        courier = courier_for(be, settings.alerts)
        result = courier.retry(failed=failed, ids=ids or ())
        missing = sorted(set(ids or ()) - {a.id for a in be.tables.get_alerts(ids or ())})
    errors = {k: mask_email(redact_urls(v)) for k, v in result.errors.items()}
    if json_out:
        emit_json(
            {
                "sent": result.sent,
                "retrying": result.retrying,
                "failed": result.failed,
                "left": result.left,
                "busy": result.busy,
                "unrouted": result.unrouted,
                "unknown_ids": missing,
                "errors": errors,
            }
        )
    else:
        result.errors = errors
        console.print(f"alerts: {result.summary()}")
        for alert_id in missing:
            err_console.print(f"[yellow]no alert with id {alert_id!r}[/yellow]")
        if result.undelivered:
            console.print(
                "still undelivered: see `salesflow alerts --status PENDING` (or FAILED); "
                "`salesflow run` keeps retrying PENDING ones with backoff"
            )
    if result.undelivered or missing:
        raise typer.Exit(1)

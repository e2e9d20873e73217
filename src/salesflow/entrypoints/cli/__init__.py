"""The ``salesflow`` command: a thin Typer layer over the library.

Every command takes ``--data-dir`` (and ``--backend``) and ``--json``. Errors are one line
naming the file, row or key, the cause and what to do; never a traceback for bad input.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from salesflow.entrypoints.cli import aws_cmds, dlq_cmds, inspect_cmds, query_cmds, run_cmds
from salesflow.entrypoints.cli.common import err_console
from salesflow.errors import SalesflowError

app = typer.Typer(
    name="salesflow",
    help="Sales files in; validated, stored, dead-lettered, aggregated, alerted, archived.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
COMMANDS: tuple[Callable[..., None], ...] = (
    run_cmds.demo,
    run_cmds.ingest,
    run_cmds.run,
    run_cmds.validate,
    run_cmds.generate,
    run_cmds.replay,
    query_cmds.status,
    query_cmds.kpis,
    query_cmds.totals,
    query_cmds.alerts,
    query_cmds.audit,
    query_cmds.compact,
    inspect_cmds.files,
    inspect_cmds.query,
    inspect_cmds.ui,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"salesflow {version('salesflow')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Sales files in; validated, stored, dead-lettered, aggregated, alerted, archived."""


for command in COMMANDS:
    app.command()(command)
app.add_typer(dlq_cmds.app, name="dlq")
app.add_typer(aws_cmds.app, name="aws")


def main() -> None:
    """Console-script entry point."""
    from pydantic import ValidationError

    from salesflow.config import load_settings
    from salesflow.logs import configure_logging

    try:
        configure_logging(load_settings().log_level, json=False)
    except ValidationError as exc:
        err_console.print(f"[red]error:[/red] invalid configuration: {exc}")
        sys.exit(2)
    try:
        app(prog_name="salesflow")
    except SalesflowError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        if exc.hint:
            err_console.print(f"[dim]hint: {exc.hint}[/dim]")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, no traceback
        logging.getLogger("salesflow").debug("internal error", exc_info=True)
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc}")
        err_console.print("[dim]hint: run with SALESFLOW_LOG_LEVEL=DEBUG for details[/dim]")
        sys.exit(3)

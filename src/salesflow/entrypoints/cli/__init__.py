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

from salesflow.entrypoints.cli import (
    alert_cmds,
    aws_cmds,
    dlq_cmds,
    inspect_cmds,
    query_cmds,
    run_cmds,
)
from salesflow.entrypoints.cli.common import print_error
from salesflow.errors import SalesflowError, TransientError

EXIT_CODES = """Exit codes: 0 done; 1 done, but something failed (a file ended FAILED, a file could
not be read, validate --strict rejected records, audit found a violation, a store or service
was unavailable); 2 the command line or configuration is wrong (unknown option or dataset,
missing file, malformed salesflow.toml, no data in --data-dir), nothing was changed;
3 internal error (a bug: please report it); 130 interrupted."""

app = typer.Typer(
    name="salesflow",
    help="Sales files in; validated, stored, dead-lettered, aggregated, alerted, archived.",
    epilog=EXIT_CODES,
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
app.add_typer(alert_cmds.app, name="alerts")
app.add_typer(dlq_cmds.app, name="dlq")
app.add_typer(aws_cmds.app, name="aws")


def main() -> None:
    """Console-script entry point: every error is one line on stderr and an exit code (see
    ``EXIT_CODES``), never a traceback."""
    from salesflow.config import load_settings
    from salesflow.logs import configure_logging

    try:
        configure_logging(load_settings().log_level, json=False)
        app(prog_name="salesflow")
    except TransientError as exc:  # a store or service down: worth trying again later
        print_error(exc.message, exc.hint)
        sys.exit(1)
    except SalesflowError as exc:
        print_error(exc.message, exc.hint)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, no traceback
        logging.getLogger("salesflow").debug("internal error", exc_info=True)
        print_error(
            f"{type(exc).__name__}: {exc}",
            "a bug; run with SALESFLOW_LOG_LEVEL=DEBUG for the traceback and report it",
            label="internal error",
        )
        sys.exit(3)

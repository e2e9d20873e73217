"""The heavy steps as container tasks: ``python -m salesflow.entrypoints.tasks <step> ...``.

The image (``infra/Dockerfile``) runs this module; Step Functions starts it as an ECS Fargate
task (``arn:aws:states:::ecs:runTask.sync``) with the step and its inputs as the container's
command, and the stack's names in the task definition's environment (read by ``Settings``)::

    validate_load --key inbox/orders_json/a.json --dataset orders_json --result work/runs/...
    aggregate --results work/runs/<execution>/00/results/

A step writes its result (a ``StepState`` per file) to the bucket, under the keys the
execution's input names (``runs.py``): a container cannot hand Step Functions an output.

Step Functions sees only the exit code, so the step decides what it can:

- ``0``: done. A file that cannot be processed (bad input, a refused write) is failed here,
  with what it stored undone, exactly as ``process_file`` does locally; retrying it would
  only fail again, at the price of another task.
- ``75`` (EX_TEMPFAIL): a ``TransientError`` (throttling after the SDK's retries, a service
  briefly down). The state machine retries the task with backoff.
- anything else: the task crashed (or was killed: 137 is the OOM killer). The state machine
  retries, then sends the file to MarkFileAsFailed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from itertools import groupby
from typing import Any, cast

from salesflow.entrypoints import runs
from salesflow.entrypoints.runtime import Metrics, Runtime, log, runtime
from salesflow.errors import TerminalError, TransientError
from salesflow.logs import mask_email
from salesflow.models import Alert, FileStatus
from salesflow.pipeline.state import StepState
from salesflow.ports import Tables

EXIT_OK = 0
EXIT_TRANSIENT = 75
STEPS = ("validate_load", "aggregate")


def _terminal() -> tuple[type[BaseException], ...]:
    import polars as pl

    return (TerminalError, pl.exceptions.PolarsError, ValueError, UnicodeError)


class _AlertsOf:
    """The tables as one file's alert delivery sees them: only the alerts that file raised,
    so files loading at the same time never send each other's alerts twice."""

    def __init__(self, tables: Tables, source_file: str) -> None:
        self._tables = tables
        self._source = source_file

    def list_alerts(self, status: str | None = None) -> list[Alert]:
        return [a for a in self._tables.list_alerts(status) if a.source_file == self._source]

    def update_alert(self, alert: Alert) -> None:
        self._tables.update_alert(alert)


def _deliver_alerts_of(rt: Runtime, key: str) -> None:
    from salesflow.pipeline.delivery import deliver_alerts

    view = replace(rt.backend, tables=cast(Tables, _AlertsOf(rt.backend.tables, key)))
    result = deliver_alerts(view, max_attempts=rt.settings.alerts.max_attempts)
    log().info("alerts", extra={"key": key, "sent": result.sent, "retrying": result.retrying})


def _failure(key: str, exc: BaseException) -> str:
    from salesflow.errors import FileLevelError

    return str(exc) if isinstance(exc, FileLevelError) else f"{key}: {type(exc).__name__}: {exc}"


def validate_load(rt: Runtime, metrics: Metrics, key: str, dataset: str, result: str) -> StepState:
    """Hash, dedup, validate and load one file; fail it here if it cannot be processed."""
    from salesflow.pipeline.steps import fail_file, load_file, start_file

    backend, settings = rt.backend, rt.settings
    state: StepState | None = None
    try:
        state = start_file(backend, settings, key, dataset=dataset or None)
        if not state.done:
            state = load_file(backend, settings, state)
            _deliver_alerts_of(rt, key)
            metrics.count("RowsIn", state.rows_in)
            metrics.count("RowsValid", state.valid)
            metrics.count("RowsRejected", state.rejected)
    except TransientError:
        raise
    except _terminal() as exc:
        sha = state.sha256 if state else None
        state = fail_file(backend, settings, key, _failure(key, exc), sha256=sha)
        metrics.count("FilesFailed", 1)
    runs.write_state(backend.store, result, state)
    log().info(
        "file loaded",
        extra={"key": key, "status": state.status, "rows_in": state.rows_in, "error": state.error},
    )
    return state


def aggregate(rt: Runtime, metrics: Metrics, results: str) -> list[StepState]:
    """One KPI refresh per dataset of the stage, over the union of the days its files
    touched; if it cannot be done, every file the stage loaded fails (seed 004)."""
    from salesflow.pipeline.steps import aggregate as aggregate_step
    from salesflow.pipeline.steps import fail_file

    backend, settings = rt.backend, rt.settings
    states = runs.read_states(backend.store, results)
    loaded = sorted(
        (s for s in states.values() if s.status == FileStatus.IN_PROGRESS), key=lambda s: s.dataset
    )
    try:
        for dataset, group in groupby(loaded, key=lambda s: s.dataset):
            files = list(group)
            days = sorted({d for s in files for d in s.days})
            aggregate_step(backend, settings, replace(files[0], days=days))
            log().info("aggregated", extra={"dataset": dataset, "files": len(files)})
    except TransientError:
        raise
    except _terminal() as exc:
        message = f"the stage's KPIs could not be computed: {type(exc).__name__}: {exc}"
        for key, state in states.items():
            if state.status == FileStatus.IN_PROGRESS:
                failed = fail_file(backend, settings, state.key, message, sha256=state.sha256)
                runs.write_state(backend.store, key, failed)
                metrics.count("FilesFailed", 1)
        log().error("stage failed", extra={"results": results, "error": mask_email(message)})
    return list(runs.read_states(backend.store, results).values())


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m salesflow.entrypoints.tasks",
        description="Run one heavy salesflow step (the container image's entry point).",
    )
    steps = cli.add_subparsers(dest="step", required=True)
    load = steps.add_parser("validate_load", help="validate and load one inbox file")
    load.add_argument("--key", required=True, help="the inbox key")
    load.add_argument("--dataset", default="", help="the dataset, if the detector knew it")
    load.add_argument("--result", required=True, help="where to write the file's StepState")
    kpis = steps.add_parser("aggregate", help="refresh the KPIs and totals of a stage")
    kpis.add_argument("--results", required=True, help="the stage's results prefix")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the step ``argv`` names and return the process exit code."""
    args = parser().parse_args(argv)
    metrics = Metrics(args.step)
    try:
        rt = runtime(f"task:{args.step}")
        if args.step == "validate_load":
            validate_load(rt, metrics, args.key, args.dataset, args.result)
        else:
            aggregate(rt, metrics, args.results)
    except TransientError as exc:
        log().warning("transient failure, retried", extra={"error": mask_email(str(exc))})
        return EXIT_TRANSIENT
    finally:
        metrics.flush()
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> Any:
    """The ``__main__`` entry: exit with ``main``'s code."""
    sys.exit(main(argv))


if __name__ == "__main__":
    run()

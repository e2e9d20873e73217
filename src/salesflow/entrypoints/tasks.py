"""The heavy steps as container tasks: ``python -m salesflow.entrypoints.tasks <step> ...``.

The image (``infra/Dockerfile``) runs this module; Step Functions starts it as an ECS Fargate
task (``arn:aws:states:::ecs:runTask.sync``) with the step and its inputs as the container's
command, and the stack's names in the task definition's environment (read by ``Settings``)::

    validate_load --key inbox/orders_json/a.json --dataset orders_json --result work/runs/...
    aggregate --results work/runs/<execution>/00/results/

A step writes its result (a ``StepState`` per file) to the bucket, under the keys the
execution's input names (``runs.py``): a container cannot hand Step Functions an output.

Step Functions sees only the exit code, so the step decides what it can:

- ``0``: done. ``validate_load`` claims, loads and commits the file (lineage SUCCESS, not
  yet settled); a file that cannot be processed (bad input, a refused write) is failed here,
  with what it staged dropped, exactly as ``process_file`` does locally: retrying it would
  only fail again, at the price of another task. ``aggregate`` refreshes the stage's totals
  and KPIs once per dataset, then publishes each committed file (letters, alerts, archive
  move, settled).
- ``75`` (EX_TEMPFAIL): a ``TransientError`` (throttling after the SDK's retries, a service
  briefly down). The state machine retries the task with backoff.
- ``1`` from ``aggregate``: the stage could not be published (``NotPublished``). Its files
  stay committed (SUCCESS, not settled: their records are valid, KPIs are derived), never
  failed; the state machine retries, then alarms, and the sweep or the next run publishes
  them (``claim`` returns a committed version as it is).
- anything else: the task crashed (or was killed: 137 is the OOM killer). The state machine
  retries, then sends the file to MarkFileAsFailed (the stage to MarkFilesAsFailed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from salesflow.entrypoints import runs
from salesflow.entrypoints.runtime import Metrics, Runtime, log, runtime
from salesflow.errors import StoreBroken, StoreUnavailable, TerminalError, TransientError
from salesflow.logs import mask_email
from salesflow.models import FileStatus
from salesflow.pipeline.state import StepState

EXIT_OK = 0
EXIT_TRANSIENT = 75
EXIT_NOT_PUBLISHED = 1
STEPS = ("validate_load", "aggregate")


def _terminal() -> tuple[type[BaseException], ...]:
    import polars as pl

    return (TerminalError, pl.exceptions.PolarsError, ValueError, UnicodeError)


class NotPublished(RuntimeError):
    """The stage's totals and KPIs could not be refreshed, or a file could not be published:
    its committed files stay SUCCESS, not settled, for the state machine's retry, then the
    sweep or the next run."""


def _failure(key: str, exc: BaseException) -> str:
    from salesflow.pipeline.steps import describe

    return describe(key, exc)


def validate_load(rt: Runtime, metrics: Metrics, key: str, dataset: str, result: str) -> StepState:
    """Claim, load and commit one file version; fail it here if it cannot be processed.

    A version committed by an earlier attempt (a crash after its commit) is claimed as it
    is, SUCCESS and not settled: the stage's KPI task publishes it with the others."""
    from salesflow.pipeline.steps import _fail_unclaimed, claim, commit, fail, load

    backend, settings = rt.backend, rt.settings
    state: StepState | None = None
    try:
        state = claim(backend, settings, key, dataset=dataset or None)
        if not state.done:
            state = load(backend, settings, state)
            state = commit(backend, settings, state)
            metrics.count("RowsIn", state.rows_in)
            metrics.count("RowsValid", state.valid)
            metrics.count("RowsRejected", state.rejected)
    except TransientError:
        raise
    except _terminal() as exc:
        if state is None:  # not even claimed: claimed as a failed version, as locally
            state = _fail_unclaimed(backend, settings, key, _failure(key, exc), None)
        else:
            state = fail(backend, settings, state, _failure(key, exc))
        metrics.count("FilesFailed", 1)
    runs.write_state(backend.store, result, state)
    log().info(
        "file loaded",
        extra={"key": key, "status": state.status, "rows_in": state.rows_in, "error": state.error},
    )
    return state


def aggregate(rt: Runtime, metrics: Metrics, results: str) -> list[StepState]:
    """Publish the stage's committed files after one KPI refresh per dataset,
    over the union of the days they touched (seed 004: one KPI step per stage).

    If the refresh cannot be done, nothing is failed: the files are committed (their records
    are valid; KPIs are derived from them), so they stay SUCCESS and not settled, with the
    cause in their lineage rows, and ``KpisFailed`` makes the task exit non-zero for the
    state machine to retry it (then alarm). The sweep or the next run publishes them."""
    from salesflow.engines import engine_for
    from salesflow.kpis.refresh import refresh_kpis_of
    from salesflow.pipeline.steps import describe, publish

    backend, settings = rt.backend, rt.settings
    states = runs.read_states(backend.store, results)
    committed: dict[str, StepState] = {
        key: s
        for key, s in states.items()
        if s.status == FileStatus.SUCCESS and not _settled(rt, s)
    }
    by_dataset = sorted(committed.values(), key=lambda s: s.dataset)
    try:
        for dataset, group in groupby(by_dataset, key=lambda s: s.dataset):
            files = list(group)
            days = sorted({d for s in files for d in s.day_dates})
            for state in files:  # their fragments to their final paths first (idempotent)
                backend.lake.publish(dataset, state.seq)
            # Totals move by each commit's deltas in publish; the KPIs are recomputed once.
            refresh_kpis_of(backend.lake, backend.tables, dataset, days, engine_for(settings))
            log().info("aggregated", extra={"dataset": dataset, "files": len(files)})
    except TransientError:
        raise
    except _terminal() as exc:
        message = f"KPIs not refreshed, retried later: {_failure(results, exc)}"
        for state in committed.values():
            _note(rt, state, message)
        metrics.count("FilesUnpublished", len(committed))
        log().error("stage not published", extra={"results": results, "error": mask_email(message)})
        raise NotPublished(message) from exc
    left = 0
    for key, state in committed.items():
        try:
            done = publish(backend, settings, state, refresh=False)
        except (TransientError, StoreUnavailable, StoreBroken):
            raise
        except Exception as exc:  # noqa: BLE001 - one file's publish must not stop the others
            left += 1
            _note(rt, state, f"publish failed, retried later: {describe(state.key, exc)}")
            log().error("publish failed", extra={"key": state.key, "error": mask_email(str(exc))})
            continue
        runs.write_state(backend.store, key, done)
    metrics.count("FilesProcessed", len(committed) - left)
    metrics.count("FilesUnpublished", left)
    if left:
        raise NotPublished(f"{left} committed file(s) of {results} not published")
    return list(runs.read_states(backend.store, results).values())


def _settled(rt: Runtime, state: StepState) -> bool:
    record = rt.backend.tables.get_file(state.seq)
    return record is not None and record.settled


def _note(rt: Runtime, state: StepState, error: str) -> None:
    """Keep ``error`` in the lineage row of a committed version left to publish."""
    record = rt.backend.tables.get_file(state.seq)
    if record is not None:
        record.error = error
        rt.backend.tables.update_file(record)


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
    except NotPublished:
        return EXIT_NOT_PUBLISHED
    finally:
        metrics.flush()
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> Any:
    """The ``__main__`` entry: exit with ``main``'s code."""
    sys.exit(main(argv))


if __name__ == "__main__":
    run()

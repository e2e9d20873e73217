"""The light AWS Lambda handlers: events in, Step Functions executions out, files settled.

``detector`` turns S3 events (a bucket notification, or EventBridge's "Object Created"), the
batching timer and the inbox sweep into Step Functions executions; ``archive`` and
``mark_failed`` are the state machine's light tasks (``infra/statemachine.asl.json``); the
heavy ones (validate-and-load, KPIs) run as ECS tasks from the container image
(``tasks.py``). ``generator`` is seed 003's live feed.

These functions ship in a small zip with no Polars and no numpy
(``salesflow.adapters.aws.package``): nothing they call may import either. The build refuses
a handler module that reaches them, and ``tests/integration/aws/test_package.py`` imports the
handlers and the steps they run (``fail_key``) from the zip alone.

Each handler parses its event, calls ``salesflow.pipeline``, logs structured JSON, emits
CloudWatch metrics in embedded metric format, and returns a small JSON-safe dict.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from salesflow import layout
from salesflow.adapters.aws.errors import error_code, translate
from salesflow.adapters.aws.s3 import decode_event_key
from salesflow.entrypoints import runs
from salesflow.entrypoints.runtime import Metrics, Runtime, log, reraise_as, runtime
from salesflow.errors import InvalidKeyError, TerminalError, TransientError
from salesflow.logs import mask_email
from salesflow.models import AlertStatus, FileRecord, FileStatus, PendingFile, utcnow
from salesflow.pipeline.batching import decide_batch
from salesflow.pipeline.delivery import DUE_BATCH, courier_for
from salesflow.pipeline.state import StepState
from salesflow.samples.live import sale_event

Event = dict[str, Any]
Result = dict[str, Any]
Handler = Callable[[Event, Any], Result]


def _task(function: Callable[[Runtime, Event, Metrics], Result]) -> Handler:
    """A Lambda handler around ``function``: logging context, metrics, error names."""
    name = function.__name__.lstrip("_")

    def run(event: Event, context: Any) -> Result:
        metrics = Metrics(name)
        try:
            return function(runtime(getattr(context, "function_name", name)), event, metrics)
        except TransientError as exc:
            log().warning("transient failure, retried", extra={"error": mask_email(str(exc))})
            reraise_as(TransientError, exc)
        except (TerminalError, ValueError) as exc:
            log().error("terminal failure", extra={"error": mask_email(str(exc))})
            reraise_as(TerminalError, exc)
        finally:
            metrics.flush()

    @functools.wraps(function)
    def handler(event: Event, context: Any) -> Result:
        traced: Handler = log().inject_lambda_context(run, clear_state=True)
        return traced(event, context)

    handler.__name__ = name
    return handler


# ---------------------------------------------------------------------------------- detector


@dataclass(frozen=True)
class Arrival:
    """An object an S3 event announced: its key and what makes this upload unique."""

    key: str
    token: str
    at: datetime


def arrivals(event: Event) -> list[Arrival]:
    """The objects announced by an S3 notification or an EventBridge "Object Created" event.

    Both send the key URL-encoded. The upload's token is its version id (the bucket is
    versioned), else the event's sequencer, else the ETag. A timer or unknown event announces
    nothing.
    """
    found: list[Arrival] = []
    for record in event.get("Records", []):
        obj = record.get("s3", {}).get("object", {})
        if "key" in obj:
            token = str(obj.get("versionId") or obj.get("sequencer") or obj.get("eTag") or "")
            found.append(Arrival(decode_event_key(obj["key"]), token, _when(record, "eventTime")))
    if event.get("detail-type") == "Object Created":
        obj = event.get("detail", {}).get("object", {})
        if "key" in obj:
            token = str(obj.get("version-id") or obj.get("sequencer") or obj.get("etag") or "")
            found.append(Arrival(decode_event_key(obj["key"]), token, _when(event, "time")))
    return found


def _when(source: Event, field_name: str) -> datetime:
    try:
        return datetime.fromisoformat(str(source[field_name]))
    except (KeyError, ValueError):
        return utcnow()


def execution_name(prefix: str, parts: Iterable[str]) -> str:
    """A Step Functions execution name (<= 80 of ``[A-Za-z0-9-_]``) that is the same for the
    same work, so a repeated event starts nothing new (``ExecutionAlreadyExists``)."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]
    return f"{prefix}-{digest}"


def start_execution(rt: Runtime, name: str, payload: Event) -> str:
    """Start the state machine; an execution of the same name means it was started already."""
    arn = rt.settings.aws.state_machine_arn
    if not arn:
        raise TerminalError(
            "no state machine to start",
            hint="set SALESFLOW_AWS__STATE_MACHINE_ARN (the stack output StateMachineArn)",
        )
    try:
        rt.stepfunctions().start_execution(
            stateMachineArn=arn, name=name, input=json.dumps(payload)
        )
    except ClientError as exc:
        if error_code(exc) != "ExecutionAlreadyExists":
            raise translate(exc, f"states start-execution {name}") from exc
        log().info("execution already started", extra={"execution": name})
    except BotoCoreError as exc:
        raise translate(exc, f"states start-execution {name}") from exc
    return name


def start_files(rt: Runtime, prefix: str, token: str, files: list[tuple[str, str]]) -> str:
    """Plan and start one execution for ``files`` (``(key, dataset)``, in dependency order)."""
    name = execution_name(prefix, [token, *(key for key, _ in files)])
    return start_execution(rt, name, runs.plan(rt.backend.store, name, files))


def _running(rt: Runtime) -> bool:
    """Whether any execution of the state machine is running now (one cheap List call)."""
    try:
        found = rt.stepfunctions().list_executions(
            stateMachineArn=rt.settings.aws.state_machine_arn,
            statusFilter="RUNNING",
            maxResults=1,
        )
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "states list-executions") from exc
    return bool(found.get("executions"))


def _sweep(rt: Runtime, metrics: Metrics) -> Result:
    """Start what a lost S3 event left in the inbox; count the files that look stuck.

    An object older than ``aws.sweep_after_seconds`` with no lineage in progress and no
    pending row is started under the name its version gives, so sweeping twice starts it
    once. A file of a batched dataset goes back to pending instead, and only while no
    execution runs (it could be waiting in a running batch). Objects older than
    ``aws.stuck_after_seconds`` are counted in ``FilesStuck``: a file stays in the inbox only
    while it waits or is processed.
    """
    backend, settings = rt.backend, rt.settings
    sweep_after = timedelta(seconds=settings.aws.sweep_after_seconds)
    stuck_after = timedelta(seconds=settings.aws.stuck_after_seconds)
    now = utcnow()
    pending = {p.key for p in backend.tables.list_pending()}
    batched = set(settings.batching.datasets)
    started: list[str] = []
    requeued: list[str] = []
    stuck = 0
    idle: bool | None = None
    for info in backend.store.list(layout.INBOX):
        key = info.key
        if key.endswith("/") or layout.is_temporary(key):
            continue
        age = now - info.modified
        stuck += age >= stuck_after
        if age < sweep_after or key in pending:
            continue
        if backend.tables.list_files(FileStatus.IN_PROGRESS, key=key):
            continue  # claimed: its execution (or the next sweep after it fails) finishes it
        dataset = layout.inbox_dataset(key) or ""
        if dataset in batched:
            idle = (not _running(rt)) if idle is None else idle
            if idle:
                backend.tables.add_pending(PendingFile(key, dataset, info.modified))
                requeued.append(key)
            continue
        token = info.version or f"{info.modified.isoformat()}-{info.size}"
        started.append(start_files(rt, "sweep", token, [(key, dataset)]))
    metrics.count("FilesStuck", stuck)
    metrics.count("ExecutionsStarted", len(started))
    log().info("swept", extra={"started": started, "requeued": requeued, "stuck": stuck})
    return {"started": started, "requeued": requeued, "stuck": stuck}


def _detector(rt: Runtime, event: Event, metrics: Metrics) -> Result:
    backend, settings = rt.backend, rt.settings
    if event.get("sweep"):
        return _sweep(rt, metrics)
    batched = set(settings.batching.datasets)
    started: list[str] = []
    waiting: list[str] = []
    announced = arrivals(event)
    for arrival in announced:
        key = arrival.key
        if not key.startswith(layout.INBOX) or key.endswith("/"):
            log().info("ignored: not an inbox object", extra={"key": key})
            continue
        try:
            layout.check_key(key)
        except InvalidKeyError as exc:
            log().warning("ignored: unsafe key", extra={"key": key, "error": mask_email(str(exc))})
            continue
        if not backend.store.exists(key):
            log().info("ignored: no longer in the inbox", extra={"key": key})
            continue
        dataset = layout.inbox_dataset(key) or ""
        if dataset in batched:
            backend.tables.add_pending(PendingFile(key, dataset, arrival.at))
            waiting.append(key)
            continue
        started.append(start_files(rt, "file", arrival.token, [(key, dataset)]))
    batch = (decide_batch(backend.tables, settings.batching, utcnow()) or [])[
        : settings.batching.max_files
    ]
    if batch:
        started.append(start_files(rt, "batch", "", [(f.key, f.dataset) for f in batch]))
        # Only now that the execution exists: a failed start leaves the batch pending.
        backend.tables.remove_pending([f.key for f in batch])
    metrics.count("ExecutionsStarted", len(started))
    if not announced:  # the every-minute timer: retry the alerts that are due
        _deliver_alerts(rt, metrics, source_file=None)
    log().info("detected", extra={"started": started, "pending": waiting})
    return {"started": started, "pending": waiting, "batch": [f.key for f in batch]}


detector = _task(_detector)


# ------------------------------------------------------------------------- light tasks


def _settled(rt: Runtime, state: StepState) -> bool:
    """Whether the committed version ``state`` is published (its lineage row settled)."""
    record = rt.backend.tables.get_file(state.seq)
    return record is not None and record.settled


def _deliver_alerts(rt: Runtime, metrics: Metrics, *, source_file: str | None) -> None:
    """Deliver alerts within the ingest budget: with ``source_file``, the ones that file
    raised, once it is published (``archive``); without, the retries that are due (the
    every-minute timer) and fresh alerts whose file's invocation died before sending them.

    Claims are conditional writes, so two invocations never send one alert at the same time
    on DynamoDB. Splitting the work this way also keeps them from competing for the same
    alerts at all (moto's emulated conditional writes are not atomic under concurrency)."""
    courier = courier_for(rt.backend, rt.settings.alerts)
    now = utcnow()
    if source_file is not None:
        alerts = [
            a
            for a in rt.backend.tables.list_alerts(AlertStatus.PENDING, source_file=source_file)
            if a.next_attempt_at is None or a.next_attempt_at <= now
        ]
    else:
        orphaned = now - timedelta(seconds=courier.policy.lease_seconds)
        alerts = [
            a
            for a in rt.backend.tables.due_alerts(now, limit=DUE_BATCH)
            if a.attempts > 0 or a.created_at <= orphaned
        ]
    result = courier.deliver(alerts, budget=rt.settings.alerts.ingest_budget_seconds)
    metrics.count("AlertsSent", result.sent)
    log().info(
        "alerts",
        extra={"sent": result.sent, "retrying": result.retrying, "failed": result.failed},
    )


def _archive(rt: Runtime, event: Event, metrics: Metrics) -> Result:
    """Report the stage and deliver the alerts of the files it published.

    The KPI task publishes every committed file of the stage (letters, alerts, archive move,
    settled) and rewrites its result; this light function only reads the results, sends the
    alerts each published file raised, and counts the outcome. Idempotent: an alert is
    claimed before it is sent, so a retry never sends one twice.
    """
    outcome: dict[str, int] = {}
    published = unpublished = 0
    for state in runs.read_states(rt.backend.store, str(event["results"])).values():
        outcome[state.status] = outcome.get(state.status, 0) + 1
        if state.status != FileStatus.SUCCESS:
            continue
        if not _settled(rt, state):
            unpublished += 1
            log().error("file committed, not published", extra={"key": state.key})
            continue
        published += 1
        _deliver_alerts(rt, metrics, source_file=state.key)
        log().info("file archived", extra={"key": state.key, "archive_key": state.archive_key})
    metrics.count("FilesProcessed", published)
    metrics.count("FilesUnpublished", unpublished)
    return {"archived": published, "unpublished": unpublished, "files": outcome}


archive = _task(_archive)


def failure_message(error: Any) -> str:
    """A one-line cause from a Step Functions Catch result (``{"Error", "Cause"}``): the
    Lambda's error message, or the stopped ECS task's reason and exit code."""
    if not isinstance(error, dict):
        return str(error)
    name = error.get("Error", "Error")
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
    except ValueError:
        return f"{name}: {cause}"
    if not isinstance(parsed, dict):
        return f"{name}: {cause}"
    if "errorMessage" in parsed:
        return f"{name}: {parsed['errorMessage']}"
    if "StoppedReason" in parsed or "Containers" in parsed:
        codes = [c.get("ExitCode") for c in parsed.get("Containers", []) if "ExitCode" in c]
        reason = parsed.get("StoppedReason", "stopped")
        return (
            f"{name}: the container task stopped ({reason}), exit code {codes[0] if codes else '?'}"
        )
    return f"{name}: {cause}"


def _fail(rt: Runtime, key: str, message: str, *, unclaimed: bool = False) -> StepState | None:
    """Fail the version of ``key`` not yet committed (``fail_key``); None if there is none:
    a committed version is never failed, only published later. With ``unclaimed``, an
    object no task could even claim (it crashed first) is claimed as a failed version."""
    from salesflow.pipeline.steps import fail_key

    failed = fail_key(rt.backend, rt.settings, key, message)
    if failed is None and unclaimed:
        failed = _fail_unclaimed(rt, key, message)
    if failed is not None:
        log().error("file failed", extra={"key": failed.key, "error": mask_email(message)})
    return failed


def _fail_unclaimed(rt: Runtime, key: str, message: str) -> StepState | None:
    """Claim the object now at ``key`` as a failed version, unless that version has a row.

    ``steps`` does the same for a file it cannot read, but finds the dataset with the
    dataset specs (Polars); here the inbox folder names it, or ``unknown``."""
    from salesflow.pipeline.steps import fail

    backend = rt.backend
    info = backend.store.stat(key)
    if info is None or backend.tables.find_version(key, info.version) is not None:
        return None
    dataset = layout.inbox_dataset(key) or "unknown"
    record = FileRecord(
        key=key,
        sha256="unreadable",
        size=info.size,
        dataset=dataset,
        seq=backend.tables.next_seq(),
        started_at=utcnow(),
        version=info.version,
        arrived_at=info.modified,
        source=layout.source_name(key, dataset),
    )
    record, _ = backend.tables.claim(record)
    return fail(backend, rt.settings, StepState.of(record), message)


def _mark_failed(rt: Runtime, event: Event, metrics: Metrics) -> Result:
    """Archive to failed/ with lineage FAILED what a container task could not finish.

    ``event`` is one file (``{"key", "result", "error"}``, after its validate-and-load task
    failed for good) or a stage (``{"results", "error"}``, after its KPI task failed for
    good). Only versions not yet committed (IN_PROGRESS) are failed: a committed file keeps
    its records and stays SUCCESS, not settled, until the sweep or the next run publishes it.
    The results are rewritten, so the stage's later steps see the failed files.
    """
    message = failure_message(event.get("error"))
    store = rt.backend.store
    failed = 0
    unpublished = 0
    if "results" in event:
        for key, state in runs.read_states(store, str(event["results"])).items():
            if state.status == FileStatus.SUCCESS and not _settled(rt, state):
                unpublished += 1
            if state.status != FileStatus.IN_PROGRESS:
                continue
            done = _fail(rt, state.key, message)
            if done is not None:
                runs.write_state(store, key, done)
                failed += 1
    else:
        known = runs.read_state(store, str(event["result"]))
        if known is None or known.status == FileStatus.IN_PROGRESS:
            done = _fail(rt, str(event["key"]), message, unclaimed=True)
            if done is not None:
                runs.write_state(store, str(event["result"]), done)
                failed += 1
    metrics.count("FilesFailed", failed)
    metrics.count("FilesUnpublished", unpublished)
    if unpublished:
        log().error(
            "committed files left to publish",
            extra={"results": event.get("results"), "files": unpublished, "error": message},
        )
    return {"failed": failed, "unpublished": unpublished}


mark_failed = _task(_mark_failed)


# ----------------------------------------------------------------------------------- live feed


def _generator(rt: Runtime, event: Event, metrics: Metrics) -> Result:
    """Seed 003's live feed: one mock sale written to ``inbox/sale_events/``. Its S3 event
    runs it through the pipeline like any file, so a high-value sale alerts on SNS then."""
    now = utcnow()
    sale = sale_event(random.Random(), now)
    key = f"{layout.INBOX}sale_events/sale-{now:%Y%m%dT%H%M%S%f}-{sale['sale_id'][:8]}.json"
    rt.backend.store.put_bytes(key, json.dumps(sale).encode())
    metrics.count("SalesGenerated", 1)
    log().info("sale generated", extra={"key": key, "amount": sale["price"] * sale["quantity"]})
    return {"key": key, "sale": sale}


generator = _task(_generator)

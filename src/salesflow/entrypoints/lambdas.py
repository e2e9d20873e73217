"""AWS Lambda handlers: thin adapters from events to the pipeline's steps.

``detector`` turns S3 events (a bucket notification, or EventBridge's "Object Created") and the
batching timer into Step Functions executions; ``validate_load``, ``aggregate``, ``archive`` and
``mark_failed`` are the tasks of ``infra/statemachine.asl.json``; ``generator`` is seed 003's
live feed. Each handler parses its event, calls ``salesflow.pipeline``, logs structured JSON
(Powertools Logger) and emits CloudWatch metrics in embedded metric format, and returns a
small JSON-safe dict: a ``StepState`` for the tasks, so the state machine carries no records.

Errors: Step Functions' Retry and Catch match on the ``errorType`` that the Lambda runtime
takes from the exception's class name. Tasks therefore raise exactly ``TransientError``
(retried with backoff) or ``TerminalError`` (not retried; Catch sends the file to failed/);
any other exception keeps its own name and is retried as ``States.TaskFailed``.

The backend is built once per container, on first use, from ``Settings()`` (so from the
function's environment: ``SALESFLOW_BACKEND=aws``, ``SALESFLOW_AWS__BUCKET`` ...).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, NoReturn, cast

import polars as pl
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from botocore.exceptions import BotoCoreError, ClientError

from salesflow import layout
from salesflow.adapters.aws.errors import error_code, translate
from salesflow.adapters.aws.s3 import decode_event_key
from salesflow.config import Settings
from salesflow.errors import InvalidKeyError, SalesflowError, TerminalError, TransientError
from salesflow.logs import MaskEmails, mask_email
from salesflow.models import AlertStatus, FileStatus, PendingFile, utcnow
from salesflow.pipeline.batching import decide_batch
from salesflow.pipeline.delivery import DUE_BATCH, courier_for
from salesflow.pipeline.state import StepState
from salesflow.pipeline.steps import claim, commit, fail_key, load, publish_safely
from salesflow.ports import Backend
from salesflow.samples.live import sale_event

NAMESPACE = "salesflow"
SERVICE = "salesflow"
TERMINAL = (TerminalError, pl.exceptions.PolarsError, ValueError)

Event = dict[str, Any]
Result = dict[str, Any]
Handler = Callable[[Event, Any], Result]


_lock = threading.RLock()


class _Stdout:
    """``sys.stdout`` looked up at each write, so logs follow whatever stdout is now."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_logger: Logger | None = None


def log() -> Logger:
    """The Powertools logger, made on first use (so importing this module configures nothing).

    Records of salesflow's own modules (children of the ``salesflow`` logger) get its JSON
    format too, with emails masked; Powertools keeps the Lambda runtime's root handler from
    printing them a second time.
    """
    global _logger
    with _lock:
        if _logger is None:
            _logger = Logger(service=SERVICE, stream=cast(Any, _Stdout()))
            _logger.registered_handler.addFilter(MaskEmails())
        return _logger


@dataclass
class Runtime:
    """What a warm container keeps between invocations."""

    settings: Settings
    backend: Backend
    _stepfunctions: Any = field(default=None, repr=False)

    def stepfunctions(self) -> Any:
        """A Step Functions client (honours ``AWS_ENDPOINT_URL`` like every other client)."""
        if self._stepfunctions is None:
            from salesflow.adapters.aws import client

            self._stepfunctions = client(self.settings, "stepfunctions")
        return self._stepfunctions


_runtimes: dict[str, Runtime] = {}


def runtime() -> Runtime:
    """The container's runtime, built on first use. Keyed by the settings: a Lambda container
    has one configuration, so one entry; the tests run several functions in one process."""
    settings = Settings()
    fingerprint = settings.model_dump_json()
    with _lock:
        if fingerprint not in _runtimes:
            from salesflow.adapters import build_backend

            _runtimes[fingerprint] = Runtime(settings, build_backend(settings))
        return _runtimes[fingerprint]


class _Metrics:
    """One invocation's metrics, flushed as one EMF document (never shared across calls)."""

    def __init__(self, function: str) -> None:
        self._emf = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=SERVICE)
        self._emf.add_dimension(name="function", value=function)

    def count(self, name: str, value: float) -> None:
        self._emf.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def flush(self, started: float) -> None:
        latency = (time.perf_counter() - started) * 1000
        self._emf.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=latency)
        self._emf.flush_metrics()


def _reraise_as(kind: type[SalesflowError], exc: Exception) -> NoReturn:
    """Raise ``exc`` under the class name Step Functions matches on, keeping it as the cause."""
    if type(exc) is kind:
        raise exc
    if isinstance(exc, SalesflowError):
        raise kind(exc.message, hint=exc.hint) from exc
    raise kind(f"{type(exc).__name__}: {exc}") from exc


def _task(function: Callable[[Runtime, Event, _Metrics], Result]) -> Handler:
    """A Lambda handler around ``function``: logging context, metrics, error names."""
    name = function.__name__.lstrip("_")

    def run(event: Event, context: Any) -> Result:
        started = time.perf_counter()
        metrics = _Metrics(name)
        try:
            return function(runtime(), event, metrics)
        except TransientError as exc:
            log().warning("transient failure, retried", extra={"error": mask_email(str(exc))})
            _reraise_as(TransientError, exc)
        except TERMINAL as exc:
            log().error("terminal failure", extra={"error": mask_email(str(exc))})
            _reraise_as(TerminalError, exc)
        finally:
            metrics.flush(started)

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

    Both send the key URL-encoded. A timer or unknown event announces nothing.
    """
    found: list[Arrival] = []
    for record in event.get("Records", []):
        obj = record.get("s3", {}).get("object", {})
        if "key" in obj:
            token = str(obj.get("sequencer") or obj.get("eTag") or "")
            found.append(Arrival(decode_event_key(obj["key"]), token, _when(record, "eventTime")))
    if event.get("detail-type") == "Object Created":
        obj = event.get("detail", {}).get("object", {})
        if "key" in obj:
            token = str(obj.get("sequencer") or obj.get("etag") or "")
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


def stages(batch: Sequence[PendingFile]) -> list[Event]:
    """A batch in dependency order as consecutive stages of one dataset each."""
    return [
        {"files": [{"key": f.key, "dataset": f.dataset} for f in group]}
        for _, group in groupby(batch, key=lambda f: f.dataset)
    ]


def _detector(rt: Runtime, event: Event, metrics: _Metrics) -> Result:
    backend, settings = rt.backend, rt.settings
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
        dataset = layout.inbox_dataset(key)
        if dataset in batched:
            backend.tables.add_pending(PendingFile(key, dataset, arrival.at))
            waiting.append(key)
            continue
        name = execution_name("file", [key, arrival.token])
        started.append(start_execution(rt, name, {"files": [{"key": key, "dataset": dataset}]}))
    batch = decide_batch(backend.tables, settings.batching, utcnow())
    if batch:
        name = execution_name("batch", sorted(f.key for f in batch))
        started.append(start_execution(rt, name, {"stages": stages(batch)}))
        backend.tables.remove_pending([f.key for f in batch])
    metrics.count("ExecutionsStarted", len(started))
    if not announced:  # the every-minute timer: retry the alerts that are due
        _deliver_alerts(rt, metrics, source_file=None)
    log().info("detected", extra={"started": started, "pending": waiting})
    return {"started": started, "pending": waiting, "batch": [f.key for f in batch or []]}


detector = _task(_detector)


# ------------------------------------------------------------------------------------- tasks


def _deliver_alerts(rt: Runtime, metrics: _Metrics, *, source_file: str | None) -> None:
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


def _validate_load(rt: Runtime, event: Event, metrics: _Metrics) -> Result:
    key = str(event["key"])
    state = claim(rt.backend, rt.settings, key, dataset=event.get("dataset"))
    if state.done:
        metrics.count("FilesProcessed", 1)
        log().info("file already done", extra={"key": key, "status": state.status})
        return state.to_dict()
    state = load(rt.backend, rt.settings, state)
    state = commit(rt.backend, rt.settings, state)
    metrics.count("RowsIn", state.rows_in)
    metrics.count("RowsValid", state.valid)
    metrics.count("RowsRejected", state.rejected)
    log().info(
        "file loaded",
        extra={
            "key": key,
            "dataset": state.dataset,
            "rows_in": state.rows_in,
            "valid": state.valid,
            "rejected": state.rejected,
        },
    )
    return state.to_dict()


validate_load = _task(_validate_load)


def _aggregate(rt: Runtime, event: Event, metrics: _Metrics) -> Result:
    """The stage's files are committed by ValidateLoad; their totals and KPIs are refreshed
    when each is published (Archive). Kept as a state of its own for the state machine."""
    states = [StepState.from_dict(s) for s in event["states"]]
    return {"states": [s.to_dict() for s in states]}


aggregate = _task(_aggregate)


def _archive(rt: Runtime, event: Event, metrics: _Metrics) -> Result:
    state = publish_safely(rt.backend, rt.settings, StepState.from_dict(event))
    _deliver_alerts(rt, metrics, source_file=state.key)
    metrics.count("FilesProcessed", 1)
    log().info("file archived", extra={"key": state.key, "archive_key": state.archive_key})
    return state.to_dict()


archive = _task(_archive)


def failure_message(error: Any) -> str:
    """A one-line cause from a Step Functions Catch result (``{"Error", "Cause"}``)."""
    if not isinstance(error, dict):
        return str(error)
    cause = str(error.get("Cause", ""))
    try:
        cause = str(json.loads(cause).get("errorMessage", cause))
    except (ValueError, AttributeError):
        pass
    return f"{error.get('Error', 'Error')}: {cause}"


def _fail_one(rt: Runtime, file: Event, message: str, metrics: _Metrics) -> Result:
    if file.get("status", FileStatus.IN_PROGRESS) != FileStatus.IN_PROGRESS:
        return file  # already final (DUPLICATE, FAILED): nothing to undo
    state = fail_key(rt.backend, rt.settings, str(file["key"]), message)
    if state is None:
        return file  # nothing IN_PROGRESS under that key: already final
    metrics.count("FilesFailed", 1)
    log().error("file failed", extra={"key": state.key, "error": mask_email(message)})
    return state.to_dict()


def _mark_failed(rt: Runtime, event: Event, metrics: _Metrics) -> Result:
    """Archive to failed/ with lineage FAILED, undoing what the file stored.

    ``event`` is one file (its key, or its whole state) with the Catch result in ``error``,
    or ``{"states": [...], "error": ...}`` for every file of a stage; files already final
    are returned as they are.
    """
    message = failure_message(event.get("error"))
    if "states" in event:
        return {"states": [_fail_one(rt, dict(f), message, metrics) for f in event["states"]]}
    return _fail_one(rt, dict(event), message, metrics)


mark_failed = _task(_mark_failed)


# ----------------------------------------------------------------------------------- live feed


def _generator(rt: Runtime, event: Event, metrics: _Metrics) -> Result:
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

"""What every AWS entry point shares: JSON logs, EMF metrics, the backend, error names.

Used by the light Lambda handlers (``lambdas.py``) and by the container tasks (``tasks.py``).
Nothing here imports Polars or numpy: the light functions' package holds neither.

Errors: Step Functions' Retry and Catch match on the ``errorType`` that the Lambda runtime
takes from the exception's class name, so the Lambda handlers raise exactly
``TransientError`` (retried with backoff) or ``TerminalError`` (not retried; Catch sends the
file to failed/); any other exception keeps its own name and is retried as
``States.TaskFailed``. Container tasks tell Step Functions only by their exit code (see
``tasks.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from salesflow.config import Settings
from salesflow.errors import SalesflowError
from salesflow.logs import MaskEmails
from salesflow.ports import Backend

NAMESPACE = "salesflow"
SERVICE = "salesflow"

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


_runtimes: dict[tuple[str, str], Runtime] = {}


def runtime(function: str = "") -> Runtime:
    """The runtime of ``function``, built on first use.

    A Lambda execution environment serves one function with one configuration, so this
    holds one entry there; keying by function name and settings keeps functions apart when
    several run in one process (the test suite's in-process dispatch)."""
    settings = Settings()
    key = (function, settings.model_dump_json())
    with _lock:
        if key not in _runtimes:
            from salesflow.adapters import build_backend

            _runtimes[key] = Runtime(settings, build_backend(settings))
        return _runtimes[key]


class Metrics:
    """One invocation's metrics, flushed as one EMF document (never shared across calls)."""

    def __init__(self, function: str) -> None:
        self._emf = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=SERVICE)
        self._emf.add_dimension(name="function", value=function)
        self._started = time.perf_counter()

    def count(self, name: str, value: float) -> None:
        self._emf.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def flush(self) -> None:
        latency = (time.perf_counter() - self._started) * 1000
        self._emf.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=latency)
        self._emf.flush_metrics()


def reraise_as(kind: type[SalesflowError], exc: Exception) -> NoReturn:
    """Raise ``exc`` under the class name Step Functions matches on, keeping it as the cause."""
    if type(exc) is kind:
        raise exc
    if isinstance(exc, SalesflowError):
        raise kind(exc.message, hint=exc.hint) from exc
    raise kind(f"{type(exc).__name__}: {exc}") from exc

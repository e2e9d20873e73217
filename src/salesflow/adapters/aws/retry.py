"""Exponential backoff with full jitter, for throttled AWS calls and unprocessed batch items.

Full jitter (sleep a random time between 0 and ``min(cap, base * 2**attempt)``) spreads the
retries of many concurrent Lambdas instead of having them hit DynamoDB again in lock-step; see
"Exponential Backoff And Jitter" on the AWS Architecture Blog. ``sleep`` and ``jitter`` are
injectable so tests run instantly and deterministically.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from salesflow.adapters.aws.errors import error_code, is_transient, translate
from salesflow.errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How often and how long to wait. ``max_attempts`` counts the first try."""

    max_attempts: int = 8
    base: float = 0.05
    cap: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based), full jitter."""
        return self.jitter() * min(self.cap, self.base * 2.0**attempt)

    def pause(self, attempt: int) -> None:
        self.sleep(self.delay(attempt))

    def give_up(self, what: str, detail: str) -> TransientError:
        """The error raised once every attempt was used."""
        return TransientError(
            f"{what}: still failing after {self.max_attempts} attempts ({detail})",
            hint="the table or queue is throttled; the step will be retried later",
        )


def call(backoff: Backoff, what: str, fn: Callable[[], T], *, keep: Collection[str] = ()) -> T:
    """``fn()``, retried with backoff while AWS answers with a transient error.

    Transient errors left after the last attempt raise ``TransientError``; error codes in
    ``keep`` (say ``ConditionalCheckFailedException``) are re-raised unchanged for the caller
    to handle; anything else is translated to ``TerminalError`` at once.
    """
    for attempt in range(backoff.max_attempts):
        try:
            return fn()
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) in keep:
                raise
            if not is_transient(exc):
                raise translate(exc, what) from exc
            if attempt + 1 == backoff.max_attempts:
                raise backoff.give_up(what, str(exc)) from exc
            backoff.pause(attempt)
    raise AssertionError("unreachable")  # pragma: no cover

"""Many small object operations at once: S3 answers each in tens of milliseconds, a local disk
in one fsync, and the lake often does dozens per commit (a file's months, a publish's moves).

Only leaf operations (one put, move, delete or fetch) run on the pool, never work that would
itself wait on the pool, so it cannot deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

IO_THREADS = 8
_T = TypeVar("_T")
_R = TypeVar("_R")
_pool: ThreadPoolExecutor | None = None
_guard = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _guard:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="salesflow-lake")
        return _pool


def settle_all(action: Callable[[_T], _R], items: Sequence[_T]) -> list[Future[_R]]:
    """Run ``action`` on every item (at once when there are several); wait for all of them,
    failed or not, and return their futures in order."""
    if len(items) <= 1:
        done: list[Future[_R]] = []
        for item in items:
            future: Future[_R] = Future()
            try:
                future.set_result(action(item))
            except Exception as exc:  # returned in the future, like the pool's
                future.set_exception(exc)
            done.append(future)
        return done
    futures = [_executor().submit(action, item) for item in items]
    for future in futures:
        future.exception()  # waits
    return futures


def each(action: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[action(item) for item in items]``, at once; the first failure is raised after every
    operation has finished (none is left running)."""
    return [future.result() for future in settle_all(action, items)]

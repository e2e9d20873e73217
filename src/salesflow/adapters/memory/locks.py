"""Named locks within one process: the ``Locks`` port for fast tests (re-entrant per thread,
like ``LocalLocks``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from salesflow.errors import TransientError


class MemoryLocks:
    """``Locks`` as one ``threading.RLock`` per name."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, name: str, *, timeout: float = 600.0) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.RLock())
        if not lock.acquire(timeout=max(timeout, 0.0)):
            raise TransientError(
                f"lock {name!r} is held by another thread",
                hint=f"it was not released within {timeout:g} s; it is retried later",
            )
        try:
            yield
        finally:
            lock.release()

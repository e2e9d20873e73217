"""Named locks across processes on one machine: the ``Locks`` port with ``flock``.

One lock file per name in ``folder``. The kernel releases an ``flock`` when its holder dies,
so a ``kill -9`` never leaves a lock behind. A lock is re-entrant within a thread (holding it
again only counts), and exclusive between threads and processes (each holder opens its own file
description, and ``flock`` locks those, not processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from salesflow.errors import TransientError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
POLL_START = 0.001
POLL_MAX = 0.05
"""``flock`` has no timeout: a waiter retries a non-blocking lock, backing off to 50 ms."""


def lock_file_name(name: str) -> str:
    """A safe, readable and unique file name for lock ``name``.

    >>> lock_file_name("lake:orders")
    'lake_orders-ef905148.lock'
    """
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', name)[:80]}-{digest}.lock"


class LocalLocks:
    """``Locks`` over lock files in ``folder`` (by default ``<data_dir>/locks``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._held = threading.local()

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] | None = getattr(self._held, "counts", None)
        if counts is None:
            counts = self._held.counts = {}
        return counts

    @contextlib.contextmanager
    def hold(self, name: str, *, timeout: float = 600.0) -> Iterator[None]:
        counts = self._counts()
        if counts.get(name):
            counts[name] += 1
            try:
                yield
            finally:
                counts[name] -= 1
            return
        path = self.folder / lock_file_name(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _acquire(fd, name, timeout)
            counts[name] = 1
            try:
                yield
            finally:
                counts[name] = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _acquire(fd: int, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = POLL_START
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransientError(
                    f"lock {name!r} is held by another process",
                    hint=f"it was not released within {timeout:g} s; it is retried later",
                ) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)

"""One SQLite file shared by the service and the CLI: WAL mode, a busy timeout, one lock.

WAL lets a CLI process read ``status`` while the service writes. Each adapter owns one
connection (``check_same_thread=False``) guarded by a re-entrant lock, so the service's
threads can share it. Writes open ``BEGIN IMMEDIATE``: the write lock is taken up front, so
two writers wait on ``busy_timeout`` instead of failing to upgrade a read lock mid-transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from salesflow.errors import StoreBroken, StoreUnavailable, TerminalError

BUSY_TIMEOUT_MS = 30_000


class Database:
    """A connection to ``path`` with the pragmas salesflow relies on."""

    def __init__(self, path: Path, *, busy_seconds: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.path = Path(path)
        busy_ms = int(busy_seconds * 1000)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path,
            timeout=busy_ms / 1000,
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=False,
        )
        self._conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a process crash (kill -9) and the file can
        # never be corrupted; only the last commits may be lost on power loss, which
        # ``recover`` handles by redoing from the archive. FULL cost ~1 ms per commit.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for statements that only read."""
        with self._lock, _mapped(self.path):
            yield self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._lock, _mapped(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def script(self, sql: str) -> None:
        """Run DDL (``CREATE ... IF NOT EXISTS``) in one transaction."""
        with self.transaction() as conn:
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_UNAVAILABLE = ("locked", "busy", "unable to open")
_BROKEN = ("disk is full", "disk i/o error", "malformed", "not a database", "readonly")


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[None]:
    """SQLite errors as salesflow's: a locked or unreachable file is ``StoreUnavailable``
    (wait and retry); a full disk or a corrupt or read-only file is ``StoreBroken`` (stop).
    Anything else (a constraint) is a ``TerminalError``: the file being processed fails."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        message = str(exc).lower()
        if any(word in message for word in _UNAVAILABLE):
            raise StoreUnavailable(
                f"SQLite database {path} is unavailable: {exc}",
                hint="another process may hold its write lock; salesflow waits and retries",
            ) from exc
        if any(word in message for word in _BROKEN):
            raise StoreBroken(f"SQLite database {path}: {exc}", hint=_HINT) from exc
        raise TerminalError(f"SQLite database {path}: {exc}", hint=_HINT) from exc
    except sqlite3.Error as exc:
        if any(word in str(exc).lower() for word in _BROKEN):
            raise StoreBroken(f"SQLite database {path}: {exc}", hint=_HINT) from exc
        raise TerminalError(f"SQLite database {path}: {exc}", hint=_HINT) from exc


_HINT = (
    "free disk space, or check the file with `sqlite3 <file> 'PRAGMA integrity_check'`; "
    "the archive in processed/ can rebuild a data dir"
)

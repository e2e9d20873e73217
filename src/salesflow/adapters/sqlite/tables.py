"""Lineage, pending batches, alerts and aggregates in one SQLite file: the ``Tables`` port.

Plain ``sqlite3``, no ORM. Rows map one to one to the dataclasses in ``salesflow.models``;
times are stored as ISO text. ``rowid`` keeps insertion order, which is what "oldest first"
means for lineage, pending files and alerts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from salesflow.adapters.sqlite import aggregates
from salesflow.adapters.sqlite.db import Database
from salesflow.models import Alert, FileRecord, FileStatus, PendingFile
from salesflow.ports import AggregateSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS file_seq (seq INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS processed_files (
    key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, dataset TEXT NOT NULL,
    status TEXT NOT NULL, seq INTEGER NOT NULL, rows_in INTEGER NOT NULL, valid INTEGER NOT NULL,
    rejected INTEGER NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, archive_key TEXT,
    report_key TEXT, error TEXT, attempts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS processed_files_sha ON processed_files (sha256, status);
CREATE INDEX IF NOT EXISTS processed_files_status ON processed_files (status);
CREATE TABLE IF NOT EXISTS pending_batches (
    key TEXT PRIMARY KEY, dataset TEXT NOT NULL, arrived_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, dataset TEXT NOT NULL, record_key TEXT NOT NULL, amount REAL NOT NULL,
    threshold REAL NOT NULL, source_file TEXT NOT NULL, message TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, created_at TEXT NOT NULL, sent_at TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status)
"""

FILE_COLUMNS = (
    "key sha256 size dataset status seq rows_in valid rejected started_at finished_at "
    "archive_key report_key error attempts"
).split()
ALERT_COLUMNS = (
    "id dataset record_key amount threshold source_file message status attempts created_at "
    "sent_at error"
).split()

_FILE_SELECT = f"SELECT {', '.join(FILE_COLUMNS)} FROM processed_files"
_FILE_UPSERT = (
    f"INSERT INTO processed_files ({', '.join(FILE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in FILE_COLUMNS)}) ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in FILE_COLUMNS[1:])
)
_FILE_UPDATE = (
    "UPDATE processed_files SET "
    + ", ".join(f"{c} = ?" for c in FILE_COLUMNS[1:])
    + " WHERE key = ? AND status = ?"
)
_ALERT_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"


def _file_from_row(row: sqlite3.Row | tuple[Any, ...]) -> FileRecord:
    return FileRecord.from_dict(dict(zip(FILE_COLUMNS, row, strict=True)))


def _alert_from_row(row: tuple[Any, ...]) -> Alert:
    return Alert.from_dict(dict(zip(ALERT_COLUMNS, row, strict=True)))


def _file_values(record: FileRecord) -> list[Any]:
    d = record.to_dict()
    return [d[c] for c in FILE_COLUMNS]


class SqliteTables:
    """The ``Tables`` port over the SQLite file ``path`` (default ``<data_dir>/salesflow.db``)."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path)
        self.db.script(SCHEMA)
        self._ready: set[AggregateSpec] = set()

    def close(self) -> None:
        self.db.close()

    # -- lineage -------------------------------------------------------------------------
    def next_seq(self) -> int:
        """AUTOINCREMENT never reuses a number, even after the row is gone or a rollback."""
        with self.db.transaction() as conn:
            seq = conn.execute("INSERT INTO file_seq DEFAULT VALUES").lastrowid
            conn.execute("DELETE FROM file_seq WHERE seq < ?", (seq,))
        assert seq is not None
        return seq

    def get_file(self, key: str) -> FileRecord | None:
        with self.db.read() as conn:
            row = conn.execute(f"{_FILE_SELECT} WHERE key = ?", (key,)).fetchone()
        return _file_from_row(row) if row else None

    def find_by_sha(
        self, sha256: str, status: FileStatus = FileStatus.SUCCESS
    ) -> FileRecord | None:
        query = f"{_FILE_SELECT} WHERE sha256 = ? AND status = ? ORDER BY rowid LIMIT 1"
        with self.db.read() as conn:
            row = conn.execute(query, (sha256, status.value)).fetchone()
        return _file_from_row(row) if row else None

    def put_file(self, record: FileRecord, *, expect: FileStatus | None = None) -> bool:
        """Upsert; with ``expect``, a conditional write in one statement (see the port)."""
        values = _file_values(record)
        with self.db.transaction() as conn:
            if expect is None:
                conn.execute(_FILE_UPSERT, values)
                return True
            if expect == FileStatus.IN_PROGRESS:
                cursor = conn.execute(
                    f"{_FILE_UPSERT} WHERE processed_files.status = ?", [*values, expect.value]
                )
            else:
                cursor = conn.execute(_FILE_UPDATE, [*values[1:], record.key, expect.value])
            return cursor.rowcount == 1

    def list_files(self, status: FileStatus | None = None) -> list[FileRecord]:
        with self.db.read() as conn:
            if status is None:
                rows = conn.execute(f"{_FILE_SELECT} ORDER BY rowid").fetchall()
            else:
                query = f"{_FILE_SELECT} WHERE status = ? ORDER BY rowid"
                rows = conn.execute(query, (status.value,)).fetchall()
        return [_file_from_row(r) for r in rows]

    # -- batching ------------------------------------------------------------------------
    def add_pending(self, pending: PendingFile) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO pending_batches (key, dataset, arrived_at) VALUES (?, ?, ?)",
                (pending.key, pending.dataset, pending.arrived_at.isoformat()),
            )

    def list_pending(self) -> list[PendingFile]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT key, dataset, arrived_at FROM pending_batches ORDER BY arrived_at, rowid"
            ).fetchall()
        return [PendingFile(k, d, datetime.fromisoformat(a)) for k, d, a in rows]

    def remove_pending(self, keys: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM pending_batches WHERE key = ?", [(k,) for k in keys])

    # -- aggregates ----------------------------------------------------------------------
    def _ensure(self, conn: sqlite3.Connection, spec: AggregateSpec) -> None:
        if spec not in self._ready:
            aggregates.ensure_table(conn, spec)
            self._ready.add(spec)

    def read_aggregates(
        self, spec: AggregateSpec, *, column: str | None = None, values: Sequence[Any] | None = None
    ) -> pl.DataFrame:
        if spec not in self._ready:
            with self.db.transaction() as conn:
                self._ensure(conn, spec)
        with self.db.read() as conn:
            return aggregates.select(conn, spec, column, values)

    def replace_aggregates(
        self, spec: AggregateSpec, *, delete: pl.DataFrame, upsert: pl.DataFrame
    ) -> None:
        """Delete then upsert in one transaction: readers see the old rows or the new ones."""
        with self.db.transaction() as conn:
            self._ensure(conn, spec)
            aggregates.replace(conn, spec, delete, upsert)

    # -- alerts --------------------------------------------------------------------------
    def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """``INSERT OR IGNORE`` each alert; the ones that inserted a row are new."""
        query = (
            f"INSERT OR IGNORE INTO alerts ({', '.join(ALERT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in ALERT_COLUMNS)})"
        )
        new: list[Alert] = []
        with self.db.transaction() as conn:
            for alert in alerts:
                d = alert.to_dict()
                if conn.execute(query, [d[c] for c in ALERT_COLUMNS]).rowcount == 1:
                    new.append(alert)
        return new

    def list_alerts(self, status: str | None = None) -> list[Alert]:
        with self.db.read() as conn:
            if status is None:
                rows = conn.execute(f"{_ALERT_SELECT} ORDER BY rowid").fetchall()
            else:
                query = f"{_ALERT_SELECT} WHERE status = ? ORDER BY rowid"
                rows = conn.execute(query, (str(status),)).fetchall()
        return [_alert_from_row(r) for r in rows]

    def update_alert(self, alert: Alert) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alerts SET status = ?, attempts = ?, error = ?, sent_at = ? WHERE id = ?",
                (
                    alert.status.value,
                    alert.attempts,
                    alert.error,
                    alert.sent_at.isoformat() if alert.sent_at else None,
                    alert.id,
                ),
            )

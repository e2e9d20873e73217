"""Lineage, pending batches, alerts and aggregates in one SQLite file: the ``Tables`` port.

Plain ``sqlite3``, no ORM. Rows map one to one to the dataclasses in ``salesflow.models``;
times are stored as ISO text. ``rowid`` keeps insertion order, which is what "oldest first"
means for lineage, pending files and alerts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesflow.adapters.sqlite import aggregates
from salesflow.adapters.sqlite import alerts as alert_rows
from salesflow.adapters.sqlite._sqlite_utils import sqlite_utils
from salesflow.adapters.sqlite.db import Database
from salesflow.errors import StoreBroken
from salesflow.kpis import TOTALS
from salesflow.models import Alert, AlertStatus, FileRecord, FileStatus, PendingFile, utcnow
from salesflow.ports import AggregateSpec

if TYPE_CHECKING:
    import polars as pl
    from sqlite_utils import Database as Database_

SCHEMA = """
CREATE TABLE IF NOT EXISTS file_seq (seq INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS pending_batches (
    key TEXT PRIMARY KEY, dataset TEXT NOT NULL, arrived_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS totals_applied (commit_id INTEGER PRIMARY KEY)
"""

COMMITS = "commits"
"""The lake's commit markers (``Catalog.committed``); written in ``commit_files``."""

LINEAGE = "lineage"
LINEAGE_COLUMNS: dict[str, type] = {
    "seq": int,
    "key": str,
    "version": str,
    "sha256": str,
    "size": int,
    "dataset": str,
    "status": str,
    "rows_in": int,
    "valid": int,
    "rejected": int,
    "superseded": int,
    "started_at": str,
    "finished_at": str,
    "arrived_at": str,
    "archive_key": str,
    "report_key": str,
    "error": str,
    "attempts": int,
    "source": str,
    "origin": str,
    "commit_id": int,
    "days": str,
    "settled": int,
}
FILE_COLUMNS = list(LINEAGE_COLUMNS)

_FILE_SELECT = f"SELECT {', '.join(FILE_COLUMNS)} FROM {LINEAGE}"
_FILE_INSERT = (
    f"INSERT INTO {LINEAGE} ({', '.join(FILE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in FILE_COLUMNS)}) ON CONFLICT (key, version) DO NOTHING"
)
_FILE_UPDATE = (
    f"UPDATE {LINEAGE} SET "
    + ", ".join(f"{c} = ?" for c in FILE_COLUMNS if c != "seq")
    + " WHERE seq = ?"
)


def _file_from_row(row: sqlite3.Row | tuple[Any, ...]) -> FileRecord:
    d = dict(zip(FILE_COLUMNS, row, strict=True))
    d["commit"] = d.pop("commit_id")
    d["days"] = json.loads(d["days"] or "[]")
    return FileRecord.from_dict(d)


def _file_values(record: FileRecord) -> dict[str, Any]:
    d = record.to_dict()
    d["commit_id"] = d.pop("commit")
    d["days"] = json.dumps(d["days"])
    d["settled"] = int(bool(d["settled"]))
    return {c: d[c] for c in FILE_COLUMNS}


def _create_lineage(conn: sqlite3.Connection) -> None:
    """The lineage and commit tables, with sqlite-utils (idempotent)."""
    db: Database_ = sqlite_utils().Database(conn)
    db[LINEAGE].create(  # type: ignore[union-attr]
        LINEAGE_COLUMNS,
        pk="seq",
        not_null={"key", "version", "sha256", "size", "dataset", "status", "started_at"},
        defaults={"superseded": 0, "source": "", "days": "[]", "settled": 0, "attempts": 1},
        if_not_exists=True,
    )
    lineage = db[LINEAGE]
    lineage.create_index(["key", "version"], unique=True, if_not_exists=True)  # type: ignore[union-attr]
    lineage.create_index(["sha256", "status"], if_not_exists=True)  # type: ignore[union-attr]
    lineage.create_index(["status"], if_not_exists=True)  # type: ignore[union-attr]
    lineage.create_index(["dataset", "source"], if_not_exists=True)  # type: ignore[union-attr]
    db[COMMITS].create({"id": int, "at": str}, pk="id", if_not_exists=True)  # type: ignore[union-attr]


def _refuse_old_layout(conn: sqlite3.Connection, path: Path) -> None:
    """A data dir from salesflow 0.1 kept lineage by key; its lake has no catalog."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "processed_files" in tables and LINEAGE not in tables:
        raise StoreBroken(
            f"{path} was written by salesflow 0.1, whose lineage and lake this version cannot read",
            hint="start a new data dir and re-ingest the archived files: "
            "salesflow ingest <old data dir>/bucket/processed --data-dir <new data dir>",
        )


class _NotInProgress(Exception):
    """A row ``commit_files`` was given is no longer IN_PROGRESS (rolls the commit back)."""


class SqliteTables:
    """The ``Tables`` port over the SQLite file ``path`` (default ``<data_dir>/salesflow.db``)."""

    def __init__(self, path: Path, *, busy_seconds: float = 30.0) -> None:
        self.db = Database(path, busy_seconds=busy_seconds)
        with self.db.read() as conn:
            _refuse_old_layout(conn, self.db.path)
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if (
            not {LINEAGE, COMMITS, "pending_batches", "totals_applied", *alert_rows.OBJECTS}
            <= names
        ):
            with self.db.transaction() as conn:
                _create_lineage(conn)
                alert_rows.create(conn)
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

    def claim(self, record: FileRecord) -> tuple[FileRecord, bool]:
        """``INSERT ... ON CONFLICT (key, version) DO NOTHING``, then read the winner."""
        values = _file_values(record)
        with self.db.transaction() as conn:
            inserted = conn.execute(_FILE_INSERT, list(values.values())).rowcount == 1
            row = conn.execute(
                f"{_FILE_SELECT} WHERE key = ? AND version = ?", (record.key, record.version)
            ).fetchone()
        return _file_from_row(row), inserted

    def get_file(self, seq: int) -> FileRecord | None:
        with self.db.read() as conn:
            row = conn.execute(f"{_FILE_SELECT} WHERE seq = ?", (seq,)).fetchone()
        return _file_from_row(row) if row else None

    def find_version(self, key: str, version: str) -> FileRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                f"{_FILE_SELECT} WHERE key = ? AND version = ?", (key, version)
            ).fetchone()
        return _file_from_row(row) if row else None

    def find_by_sha(
        self, sha256: str, status: FileStatus = FileStatus.SUCCESS
    ) -> FileRecord | None:
        query = f"{_FILE_SELECT} WHERE sha256 = ? AND status = ? ORDER BY seq LIMIT 1"
        with self.db.read() as conn:
            row = conn.execute(query, (sha256, status.value)).fetchone()
        return _file_from_row(row) if row else None

    def update_file(self, record: FileRecord, *, expect: FileStatus | None = None) -> bool:
        values = _file_values(record)
        seq = values.pop("seq")
        query, params = _FILE_UPDATE, [*values.values(), seq]
        if expect is not None:
            query, params = query + " AND status = ?", [*params, FileStatus(expect).value]
        with self.db.transaction() as conn:
            return conn.execute(query, params).rowcount == 1

    def commit_files(self, records: Sequence[FileRecord], *, commit: int) -> bool:
        """Lineage rows and the commit marker in one transaction."""
        try:
            with self.db.transaction() as conn:
                for record in records:
                    values = _file_values(record)
                    seq = values.pop("seq")
                    cursor = conn.execute(
                        _FILE_UPDATE + " AND status = ?",
                        [*values.values(), seq, FileStatus.IN_PROGRESS.value],
                    )
                    if cursor.rowcount != 1:
                        raise _NotInProgress(seq)
                conn.execute(
                    f"INSERT OR IGNORE INTO {COMMITS} (id, at) VALUES (?, ?)",
                    (commit, utcnow().isoformat()),
                )
        except _NotInProgress:
            return False  # rolled back: another process finished or failed the file
        return True

    def apply_totals(self, commit: int, deltas: pl.DataFrame) -> None:
        """The deltas and a marker of them in one transaction; a second call finds the
        marker and does nothing."""
        with self.db.transaction() as conn:
            marked = conn.execute(
                "INSERT OR IGNORE INTO totals_applied (commit_id) VALUES (?)", (commit,)
            ).rowcount
            if marked and not deltas.is_empty():
                self._ensure(conn, TOTALS)
                aggregates.add(conn, TOTALS, deltas)

    def list_files(
        self,
        status: FileStatus | None = None,
        *,
        dataset: str | None = None,
        key: str | None = None,
        source: str | None = None,
        settled: bool | None = None,
        limit: int | None = None,
    ) -> list[FileRecord]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("status", None if status is None else FileStatus(status).value),
            ("dataset", dataset),
            ("key", key),
            ("source", source),
            ("settled", None if settled is None else int(settled)),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        query = _FILE_SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        if limit is not None:
            query = f"SELECT * FROM ({query} ORDER BY seq DESC LIMIT ?)"
            params.append(limit)
        with self.db.read() as conn:
            rows = conn.execute(query + " ORDER BY seq", params).fetchall()
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
        return aggregates.from_rows(self._aggregate(spec, column, values), spec)

    def aggregate_rows(
        self, spec: AggregateSpec, *, column: str | None = None, values: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        return aggregates.to_dicts(self._aggregate(spec, column, values), spec)

    def _aggregate(
        self, spec: AggregateSpec, column: str | None, values: Sequence[Any] | None
    ) -> list[tuple[Any, ...]]:
        if spec not in self._ready:
            with self.db.read() as conn:
                complete = aggregates.is_complete(conn, spec)
            if complete:  # a reader takes no write lock for a table that is all there
                self._ready.add(spec)
            else:
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

    # -- alerts (``alerts.py``) ---------------------------------------------------------
    def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        with self.db.transaction() as conn:
            return alert_rows.insert(conn, alerts)

    def list_alerts(
        self,
        status: AlertStatus | str | None = None,
        *,
        dataset: str | None = None,
        source_file: str | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        with self.db.read() as conn:
            return alert_rows.select(conn, status, dataset, source_file, limit)

    def count_alerts(
        self,
        status: AlertStatus | str | None = None,
        *,
        dataset: str | None = None,
        source_file: str | None = None,
    ) -> int:
        with self.db.read() as conn:
            return alert_rows.count(conn, status, dataset, source_file)

    def get_alerts(self, ids: Sequence[str]) -> list[Alert]:
        with self.db.read() as conn:
            return alert_rows.by_ids(conn, ids)

    def due_alerts(self, now: datetime, *, limit: int) -> list[Alert]:
        with self.db.read() as conn:
            return alert_rows.due(conn, now, limit)

    def update_alert(self, alert: Alert, *, expect: Alert | None = None) -> bool:
        with self.db.transaction() as conn:
            return alert_rows.update(conn, alert, expect)

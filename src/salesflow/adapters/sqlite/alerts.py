"""The alerts table in SQLite: one row per sale and sink, read by status, source or due time.

Indexes serve every read the pipeline and the CLI make without reading the whole table:
``(status, next_attempt_at)`` for the delivery thread's "what is due now", ``(source_file)``
for a file's alerts, ``(dataset, status)`` for ``salesflow alerts --dataset``. Times are ISO
text in UTC with microseconds, so text order is time order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from salesflow.adapters.sqlite._sqlite_utils import sqlite_utils
from salesflow.models import Alert, AlertStatus

if TYPE_CHECKING:
    from sqlite_utils import Database as Database_

TABLE = "alerts"
COLUMNS: dict[str, type] = {
    "id": str,
    "dataset": str,
    "record_key": str,
    "amount": float,
    "threshold": float,
    "source_file": str,
    "message": str,
    "status": str,
    "attempts": int,
    "created_at": str,
    "sent_at": str,
    "error": str,
    "next_attempt_at": str,
}
_NAMES = list(COLUMNS)
_SELECT = f"SELECT {', '.join(_NAMES)} FROM {TABLE}"
_INSERT = (
    f"INSERT OR IGNORE INTO {TABLE} ({', '.join(_NAMES)}) VALUES ({', '.join('?' for _ in _NAMES)})"
)
OBJECTS = (TABLE, "alerts_due", "alerts_source", "alerts_dataset")
"""What ``create`` makes; an older data dir lacks the indexes (and ``next_attempt_at``)."""
_SET = "status = ?, attempts = ?, error = ?, sent_at = ?, next_attempt_at = ?"


def create(conn: sqlite3.Connection) -> None:
    """The table and its indexes (idempotent); adds columns an older data dir lacks."""
    db: Database_ = sqlite_utils().Database(conn)
    table = db.table(TABLE)
    table.create(
        COLUMNS,
        pk="id",
        not_null={c for c in _NAMES if c not in ("sent_at", "error", "next_attempt_at")},
        if_not_exists=True,
    )
    for name, kind in COLUMNS.items():
        if name not in table.columns_dict:
            table.add_column(name, kind)
    conn.execute("DROP INDEX IF EXISTS alerts_status")  # replaced by alerts_due
    table.create_index(["status", "next_attempt_at"], index_name="alerts_due", if_not_exists=True)
    table.create_index(["source_file"], index_name="alerts_source", if_not_exists=True)
    table.create_index(["dataset", "status"], index_name="alerts_dataset", if_not_exists=True)


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def _values(alert: Alert) -> list[Any]:
    d = alert.to_dict()
    d["created_at"] = _time(alert.created_at)
    d["sent_at"] = _time(alert.sent_at)
    d["next_attempt_at"] = _time(alert.next_attempt_at)
    return [d[c] for c in _NAMES]


def _alert(row: Sequence[Any]) -> Alert:
    return Alert.from_dict(dict(zip(_NAMES, row, strict=True)))


def insert(conn: sqlite3.Connection, alerts: Sequence[Alert]) -> list[Alert]:
    """``INSERT OR IGNORE`` each alert; the ones that inserted a row are new."""
    return [a for a in alerts if conn.execute(_INSERT, _values(a)).rowcount == 1]


def _where(
    status: AlertStatus | str | None, dataset: str | None, source_file: str | None
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in (("status", status), ("dataset", dataset), ("source_file", source_file)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def select(
    conn: sqlite3.Connection,
    status: AlertStatus | str | None,
    dataset: str | None,
    source_file: str | None,
    limit: int | None,
) -> list[Alert]:
    """Matching alerts, oldest first (insertion order); with ``limit``, the newest ones."""
    where, params = _where(status, dataset, source_file)
    if limit is None:
        rows = conn.execute(f"{_SELECT}{where} ORDER BY rowid", params).fetchall()
    else:
        query = f"{_SELECT}{where} ORDER BY rowid DESC LIMIT ?"
        rows = conn.execute(query, [*params, limit]).fetchall()[::-1]
    return [_alert(r) for r in rows]


def count(
    conn: sqlite3.Connection,
    status: AlertStatus | str | None,
    dataset: str | None,
    source_file: str | None,
) -> int:
    where, params = _where(status, dataset, source_file)
    return int(conn.execute(f"SELECT count(*) FROM {TABLE}{where}", params).fetchone()[0])


def by_ids(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Alert]:
    found: dict[str, Alert] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        for row in conn.execute(f"{_SELECT} WHERE id IN ({marks})", chunk):
            found[row[0]] = _alert(row)
    return [found[i] for i in dict.fromkeys(ids) if i in found]


def due(conn: sqlite3.Connection, now: datetime, limit: int) -> list[Alert]:
    """PENDING alerts due by ``now`` and SENDING ones whose lease ended, oldest first."""
    at = _time(now)
    pending, sending = AlertStatus.PENDING.value, AlertStatus.SENDING.value
    # Three ranges of alerts_due (SQLite's multi-index OR): never tried, backoff over, lease over.
    rows = conn.execute(
        f"{_SELECT} WHERE (status = ? AND next_attempt_at IS NULL)"
        " OR (status = ? AND next_attempt_at <= ?) OR (status = ? AND next_attempt_at <= ?)"
        " ORDER BY rowid LIMIT ?",
        (pending, pending, at, sending, at, limit),
    ).fetchall()
    return [_alert(r) for r in rows]


def update(conn: sqlite3.Connection, alert: Alert, expect: Alert | None) -> bool:
    """Store the alert's delivery state; with ``expect``, only over that status and attempts."""
    values = [
        alert.status.value,
        alert.attempts,
        alert.error,
        _time(alert.sent_at),
        _time(alert.next_attempt_at),
        alert.id,
    ]
    if expect is None:
        return conn.execute(f"UPDATE {TABLE} SET {_SET} WHERE id = ?", values).rowcount == 1
    query = f"UPDATE {TABLE} SET {_SET} WHERE id = ? AND status = ? AND attempts = ?"
    return conn.execute(query, [*values, expect.status.value, expect.attempts]).rowcount == 1

"""The SQLite alerts table: indexes serve every read, and an older data dir is upgraded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from salesflow.adapters.sqlite.tables import SqliteTables
from salesflow.models import AlertStatus

OLD_SCHEMA = """
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, dataset TEXT NOT NULL, record_key TEXT NOT NULL, amount REAL NOT NULL,
    threshold REAL NOT NULL, source_file TEXT NOT NULL, message TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, created_at TEXT NOT NULL, sent_at TEXT,
    error TEXT
);
CREATE INDEX alerts_status ON alerts (status);
INSERT INTO alerts VALUES ('sale_events:E1@webhook', 'sale_events', 'E1', 512.0, 400.0,
    'inbox/sale_events/a.json', 'm', 'PENDING', 5, '2024-05-01T12:00:00+00:00', NULL, 'HTTP 500');
"""


def plans(tables: SqliteTables, read: Callable[[], object]) -> str:
    """The query plan of every SELECT that ``read`` made, as SQLite would run it."""
    statements: list[str] = []
    conn = tables.db._conn  # the adapter's own connection
    conn.set_trace_callback(statements.append)
    try:
        read()
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    return " | ".join(
        str(row[-1]) for sql in selects for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")
    )


def test_a_data_dir_from_before_backoff_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    tables = SqliteTables(path)
    try:
        (old,) = tables.list_alerts()
        assert (old.status, old.attempts, old.next_attempt_at) == (AlertStatus.PENDING, 5, None)
        now = datetime(2024, 5, 1, 13, tzinfo=UTC)
        assert [a.id for a in tables.due_alerts(now, limit=10)] == [old.id]
    finally:
        tables.close()
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"alerts_due", "alerts_source", "alerts_dataset"} <= indexes
    assert "alerts_status" not in indexes


def test_reads_by_status_source_and_due_time_use_an_index(tmp_path: Path) -> None:
    tables = SqliteTables(tmp_path / "salesflow.db")
    try:
        now = datetime(2024, 5, 1, 13, tzinfo=UTC)
        due = plans(tables, lambda: tables.due_alerts(now, limit=100))
        # never tried, backoff over, lease over: three ranges of the index, no full read
        assert due.count("USING INDEX alerts_due (status=? AND next_attempt_at") == 3, due
        by_status = plans(tables, lambda: tables.list_alerts(AlertStatus.FAILED, limit=5))
        assert "alerts_due (status=?)" in by_status
        by_file = plans(tables, lambda: tables.list_alerts(source_file="inbox/x.json"))
        assert "alerts_source" in by_file
        by_dataset = plans(tables, lambda: tables.count_alerts("SENT", dataset="sale_events"))
        assert "alerts_dataset" in by_dataset
    finally:
        tables.close()

"""The lake's catalog in the SQLite file: the ``Catalog`` port on one machine.

Two tables: ``fragments`` (one row per Parquet file of the lake) and ``commits`` (one row per
committed commit). ``Tables.commit_files`` inserts a file's commit marker with
``mark_committed`` inside its own transaction, next to the lineage rows and totals deltas, so
a file's fragments become visible in the same instant as its lineage says SUCCESS.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from salesflow.adapters.sqlite.db import Database
from salesflow.models import Fragment, utcnow
from salesflow.ports import iter_batches

COMMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (id INTEGER PRIMARY KEY, at TEXT NOT NULL)
"""
"""The commit markers; ``SqliteTables`` runs it too, so either may create the table first."""

SCHEMA = (
    COMMITS_SCHEMA
    + """;
CREATE TABLE IF NOT EXISTS fragments (
    path TEXT PRIMARY KEY, dataset TEXT NOT NULL, year INTEGER NOT NULL, month INTEGER NOT NULL,
    rows INTEGER NOT NULL, min_key TEXT, max_key TEXT, min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL, created_by INTEGER NOT NULL, retired_by INTEGER,
    published INTEGER NOT NULL, bytes INTEGER NOT NULL, min_source TEXT, max_source TEXT
);
CREATE INDEX IF NOT EXISTS fragments_month ON fragments (dataset, year, month);
CREATE INDEX IF NOT EXISTS fragments_retired ON fragments (dataset, retired_by)
"""
)

COLUMNS = (
    "dataset path year month rows min_key max_key min_seq max_seq created_by retired_by "
    "published bytes min_source max_source"
).split()
_PUBLISHED = COLUMNS.index("published")
assert tuple(COLUMNS) == tuple(f.name for f in dataclasses.fields(Fragment))  # same order
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM fragments"
_UPSERT = (
    f"INSERT INTO fragments ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (path) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "path")
)
_IN_BATCH = 500
"""Parameters per ``IN (...)``: far below SQLite's limit of 32,766."""


def mark_committed(conn: sqlite3.Connection, commit: int) -> None:
    """Insert the marker of ``commit`` (idempotent), inside the caller's transaction."""
    conn.execute(
        "INSERT OR IGNORE INTO commits (id, at) VALUES (?, ?)", (commit, utcnow().isoformat())
    )


def _row(fragment: Fragment) -> tuple[Any, ...]:
    values = dataclasses.astuple(fragment)
    return (*values[:_PUBLISHED], int(fragment.published), *values[_PUBLISHED + 1 :])


def _fragment(row: tuple[Any, ...]) -> Fragment:
    """A row as a ``Fragment`` (positional: the catalog is listed on every commit)."""
    values = list(row)
    values[_PUBLISHED] = bool(values[_PUBLISHED])
    return Fragment(*values)


class SqliteCatalog:
    """The ``Catalog`` port over the SQLite file ``path`` (default ``<data_dir>/salesflow.db``)."""

    def __init__(self, path: Path, *, busy_seconds: float | None = None) -> None:
        self.db = (
            Database(path) if busy_seconds is None else Database(path, busy_seconds=busy_seconds)
        )
        self.db.script(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add_fragments(self, fragments: Sequence[Fragment]) -> None:
        if fragments:
            with self.db.transaction() as conn:
                conn.executemany(_UPSERT, [_row(f) for f in fragments])

    def fragments(
        self, dataset: str, *, months: Collection[tuple[int, int]] | None = None
    ) -> list[Fragment]:
        with self.db.read() as conn:
            if months is None:
                rows = conn.execute(f"{_SELECT} WHERE dataset = ? ORDER BY path", (dataset,))
                return [_fragment(r) for r in rows]
            found: list[Fragment] = []
            for year, month in sorted(set(months)):
                query = f"{_SELECT} WHERE dataset = ? AND year = ? AND month = ?"
                found.extend(_fragment(r) for r in conn.execute(query, (dataset, year, month)))
        return sorted(found, key=lambda f: f.path)

    def retire_fragments(self, paths: Sequence[str], *, by: int) -> None:
        with self.db.transaction() as conn:
            for batch in _batches(paths):
                marks = ", ".join("?" for _ in batch)
                conn.execute(
                    f"UPDATE fragments SET retired_by = ? WHERE path IN ({marks})", (by, *batch)
                )

    def unretire(self, dataset: str, *, by: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE fragments SET retired_by = NULL WHERE dataset = ? AND retired_by = ?",
                (dataset, by),
            )

    def mark_published(self, paths: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            for batch in _batches(paths):
                marks = ", ".join("?" for _ in batch)
                conn.execute(f"UPDATE fragments SET published = 1 WHERE path IN ({marks})", batch)

    def drop_fragments(self, paths: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            for batch in _batches(paths):
                marks = ", ".join("?" for _ in batch)
                conn.execute(f"DELETE FROM fragments WHERE path IN ({marks})", batch)

    def committed(self, commits: Collection[int]) -> set[int]:
        found: set[int] = set()
        with self.db.read() as conn:
            for batch in _batches(sorted(commits)):
                marks = ", ".join("?" for _ in batch)
                rows = conn.execute(f"SELECT id FROM commits WHERE id IN ({marks})", batch)
                found.update(int(r[0]) for r in rows)
        return found

    def commit(self, commit: int) -> None:
        with self.db.transaction() as conn:
            mark_committed(conn, commit)


def _batches(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    return iter_batches(items, _IN_BATCH)

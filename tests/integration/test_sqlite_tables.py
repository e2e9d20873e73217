"""SqliteTables against a real SQLite file: lineage, conditional writes, aggregates, alerts, WAL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from salesflow.adapters.sqlite.tables import SqliteTables
from salesflow.errors import StoreUnavailable, TerminalError
from salesflow.models import Alert, AlertStatus, FileRecord, PendingFile
from salesflow.ports import AggregateSpec, Tables

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KPIS = AggregateSpec(
    name="category_kpis",
    key=("category", "day"),
    kinds={"category": "str", "day": "date", "revenue": "float", "items": "int", "orders": "int"},
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "salesflow.db"


@pytest.fixture
def tables(db_path: Path) -> SqliteTables:
    t = SqliteTables(db_path)
    yield t  # type: ignore[misc]
    t.close()


def record(key: str = "inbox/orders/a.csv", **kw: object) -> FileRecord:
    base: dict[str, object] = {
        "key": key,
        "sha256": "abc",
        "size": 10,
        "dataset": "orders",
        "started_at": T0,
    }
    return FileRecord(**{**base, **kw})  # type: ignore[arg-type]


def kpi_rows(*rows: tuple[str, date, float]) -> pl.DataFrame:
    """Aggregate rows; ``items`` is the category's length."""
    return pl.DataFrame(
        {
            "category": [r[0] for r in rows],
            "day": [r[1] for r in rows],
            "revenue": [r[2] for r in rows],
            "items": [len(r[0]) for r in rows],
            "orders": [1 for _ in rows],
        },
        schema=KPIS.schema,
    )


def test_is_tables_in_wal_mode(tables: SqliteTables, db_path: Path) -> None:
    assert isinstance(tables, Tables)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_next_seq_strictly_increases_across_reopen(db_path: Path) -> None:
    first = SqliteTables(db_path)
    seqs = [first.next_seq() for _ in range(3)]
    first.close()
    again = SqliteTables(db_path)
    assert seqs == [1, 2, 3] and again.next_seq() == 4
    again.close()


def test_next_seq_is_unique_across_threads(tables: SqliteTables) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            seq = tables.next_seq()
            with lock:
                got.append(seq)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 101))


def test_pending_batches(tables: SqliteTables) -> None:
    later = PendingFile("inbox/orders/b.csv", "orders", T0 + timedelta(minutes=1))
    first = PendingFile("inbox/products/a.csv", "products", T0)
    tables.add_pending(later)
    tables.add_pending(first)
    tables.add_pending(PendingFile(first.key, "products", T0 + timedelta(hours=1)))  # ignored
    assert tables.list_pending() == [first, later]
    tables.remove_pending([first.key, "inbox/unknown"])
    assert tables.list_pending() == [later]
    tables.remove_pending([])
    assert tables.list_pending() == [later]


def test_aggregates_round_trip_with_exact_types(tables: SqliteTables) -> None:
    assert_frame_equal(tables.read_aggregates(KPIS), pl.DataFrame(schema=KPIS.schema))
    rows = kpi_rows(("books", date(2024, 1, 1), 10.5), ("toys", date(2024, 1, 2), 20.0))
    tables.replace_aggregates(KPIS, delete=rows.head(0).select(KPIS.key), upsert=rows)
    got = tables.read_aggregates(KPIS).sort("category")
    assert got.schema == pl.Schema(KPIS.schema)
    assert_frame_equal(got, rows)


def test_replace_aggregates_deletes_then_upserts(tables: SqliteTables) -> None:
    d1, d2 = date(2024, 1, 1), date(2024, 1, 2)
    tables.replace_aggregates(
        KPIS,
        delete=pl.DataFrame(schema={"category": pl.String, "day": pl.Date}),
        upsert=kpi_rows(("books", d1, 1.0), ("toys", d1, 2.0), ("toys", d2, 3.0)),
    )
    tables.replace_aggregates(
        KPIS,
        delete=pl.DataFrame({"category": ["toys", "books"], "day": [d1, d1]}),
        upsert=kpi_rows(("books", d1, 100.0)),
    )
    got = tables.read_aggregates(KPIS).sort("category", "day")
    assert got.select("category", "day", "revenue").rows() == [
        ("books", d1, 100.0),
        ("toys", d2, 3.0),
    ]


def test_replace_aggregates_is_one_transaction(tables: SqliteTables) -> None:
    d1 = date(2024, 1, 1)
    rows = kpi_rows(("books", d1, 1.0))
    tables.replace_aggregates(KPIS, delete=rows.head(0).select(KPIS.key), upsert=rows)
    bad = kpi_rows(("toys", d1, 2.0)).with_columns(day=pl.lit(None, pl.Date))  # NULL in the key
    with pytest.raises(TerminalError, match="NOT NULL"):
        tables.replace_aggregates(KPIS, delete=rows.select(KPIS.key), upsert=bad)
    # The delete was rolled back with the failed upsert.
    assert tables.read_aggregates(KPIS)["category"].to_list() == ["books"]


def test_read_aggregates_filtered(tables: SqliteTables) -> None:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(1200)]
    rows = kpi_rows(*[("c", d, float(i)) for i, d in enumerate(days)])
    tables.replace_aggregates(KPIS, delete=rows.head(0).select(KPIS.key), upsert=rows)
    wanted = days[::2]  # more values than one IN (...) chunk holds
    got = tables.read_aggregates(KPIS, column="day", values=wanted)
    assert sorted(got["day"].to_list()) == wanted
    assert tables.read_aggregates(KPIS, column="category", values=["nope"]).is_empty()
    with pytest.raises(TerminalError, match="no column"):
        tables.read_aggregates(KPIS, column="missing", values=[1])


def test_thousands_of_aggregate_rows_are_fast(tables: SqliteTables) -> None:
    import time

    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(2000)]
    rows = kpi_rows(*[(f"c{j}", d, 1.0) for j in range(10) for d in days[:500]])
    start = time.perf_counter()
    tables.replace_aggregates(KPIS, delete=rows.select(KPIS.key), upsert=rows)
    assert tables.read_aggregates(KPIS).height == 5000
    assert time.perf_counter() - start < 5


def test_aggregate_table_gains_new_columns(db_path: Path) -> None:
    old = AggregateSpec("totals", ("id",), {"id": "str", "amount": "float"})
    new = AggregateSpec("totals", ("id",), {"id": "str", "amount": "float", "n": "int"})
    first = SqliteTables(db_path)
    first.replace_aggregates(
        old,
        delete=pl.DataFrame(schema={"id": pl.String}),
        upsert=pl.DataFrame({"id": ["x"], "amount": [1.0]}),
    )
    first.close()
    second = SqliteTables(db_path)
    got = second.read_aggregates(new)
    second.close()
    assert got.rows() == [("x", 1.0, None)] and got.schema == pl.Schema(new.schema)


def test_bad_aggregate_specs_are_refused(tables: SqliteTables) -> None:
    with pytest.raises(TerminalError, match="not a valid table"):
        tables.read_aggregates(AggregateSpec("bad name", ("id",), {"id": "str"}))
    with pytest.raises(ValueError, match="unknown column kinds"):
        AggregateSpec("t", ("id",), {"id": "str", "x": "list"})  # type: ignore[dict-item]


def test_aggregate_rows_are_plain_values_in_step_with_the_frame(tables: SqliteTables) -> None:
    rows = kpi_rows(("books", date(2024, 1, 1), 10.5), ("toys", date(2024, 1, 2), 20.0))
    tables.replace_aggregates(KPIS, delete=rows.head(0).select(KPIS.key), upsert=rows)
    plain = sorted(tables.aggregate_rows(KPIS), key=lambda r: r["category"])
    assert plain == rows.to_dicts()
    assert type(plain[0]["day"]) is date
    only = tables.aggregate_rows(KPIS, column="day", values=[date(2024, 1, 2)])
    assert [r["category"] for r in only] == ["toys"]


def test_reading_a_complete_aggregate_takes_no_write_lock(db_path: Path) -> None:
    """``salesflow kpis`` must not queue behind the service's write transaction."""
    writer = SqliteTables(db_path)
    rows = kpi_rows(("books", date(2024, 1, 1), 10.5))
    writer.replace_aggregates(KPIS, delete=rows.head(0).select(KPIS.key), upsert=rows)
    reader = SqliteTables(db_path, busy_seconds=0.2)
    with writer.db.transaction():  # another process holds the write lock
        assert [r["category"] for r in reader.aggregate_rows(KPIS)] == ["books"]
    reader.close()
    writer.close()


def make_alert(n: int) -> Alert:
    return Alert(
        id=f"sale_events:{n}",
        dataset="sale_events",
        record_key=str(n),
        amount=500.0 + n,
        threshold=400.0,
        source_file="inbox/sale_events/f.jsonl",
        message=f"sale {n}",
        created_at=T0,
    )


def test_alerts_are_deduplicated_by_id(tables: SqliteTables) -> None:
    assert tables.add_alerts([make_alert(1), make_alert(2)]) == [make_alert(1), make_alert(2)]
    assert tables.add_alerts([make_alert(2), make_alert(3), make_alert(3)]) == [make_alert(3)]
    assert [a.id for a in tables.list_alerts()] == [f"sale_events:{n}" for n in (1, 2, 3)]


def test_update_alert(tables: SqliteTables) -> None:
    tables.add_alerts([make_alert(1), make_alert(2)])
    sent = make_alert(1)
    sent.status, sent.attempts, sent.sent_at = AlertStatus.SENT, 1, T0
    tables.update_alert(sent)
    failed = make_alert(2)
    failed.status, failed.attempts, failed.error = AlertStatus.FAILED, 5, "smtp down"
    tables.update_alert(failed)
    assert tables.list_alerts(AlertStatus.SENT.value) == [sent]
    assert tables.list_alerts("FAILED") == [failed]
    assert tables.list_alerts(AlertStatus.PENDING.value) == []


def test_another_process_reads_while_this_one_writes(tables: SqliteTables, db_path: Path) -> None:
    """WAL: a reader process sees every committed state as it happens, never an error."""
    tables.claim(record("inbox/0.csv", seq=tables.next_seq()))
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\n"
            "from pathlib import Path\n"
            "from salesflow.adapters.sqlite.tables import SqliteTables\n"
            "t=SqliteTables(Path(sys.argv[1])); seen=[len(t.list_files())]\n"
            "print('ready', flush=True); end=time.time()+30\n"
            "while seen[-1] < 200 and time.time()<end:\n"
            "    seen.append(len(t.list_files()))\n"
            "up = all(a <= b for a, b in zip(seen, seen[1:]))\n"
            "print(min(seen), max(seen), len(set(seen)), up)\n",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
    for i in range(1, 200):
        tables.claim(record(f"inbox/{i}.csv", seq=tables.next_seq()))
    out, err = reader.communicate(timeout=60)
    low, high, distinct, monotonic = out.split()
    assert err == "" and (low, high, monotonic) == ("1", "200", "True")
    assert int(distinct) > 2  # it saw states between the first and the last


def test_a_write_lock_held_elsewhere_means_the_store_is_unavailable(
    tables: SqliteTables, db_path: Path
) -> None:
    tables.db._conn.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            tables.next_seq()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert tables.next_seq() == 1

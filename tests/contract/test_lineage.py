"""The lineage contract (``Tables``): one row per file version, claimed once, committed once.

The same tests run against the in-memory fake, a real SQLite file and DynamoDB on moto.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from salesflow.models import FileRecord, FileStatus
from salesflow.ports import Tables

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def version(tables: Tables, key: str = "inbox/orders/a.csv", **kw: object) -> FileRecord:
    base: dict[str, object] = {
        "key": key,
        "version": "v1",
        "sha256": "a" * 64,
        "size": 10,
        "dataset": "orders",
        "started_at": T0,
        "arrived_at": T0 - timedelta(seconds=3),
        "source": "a.csv",
        "seq": tables.next_seq(),
    }
    return FileRecord(**{**base, **kw})  # type: ignore[arg-type]


def test_is_tables(tables: Tables) -> None:
    assert isinstance(tables, Tables)


def test_next_seq_strictly_increases(tables: Tables) -> None:
    seqs = [tables.next_seq() for _ in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_a_version_is_claimed_once(tables: Tables) -> None:
    first = version(tables)
    stored, inserted = tables.claim(first)
    assert inserted and stored == first
    rival = version(tables)  # another process, same object version, its own seq
    stored, inserted = tables.claim(rival)
    assert not inserted and stored.seq == first.seq
    assert tables.find_version(first.key, "v1") == first
    assert tables.find_version(first.key, "v2") is None
    assert [r.seq for r in tables.list_files()] == [first.seq]


def test_versions_of_one_key_keep_their_own_rows(tables: Tables) -> None:
    one, _ = tables.claim(version(tables, version="v1"))
    two, _ = tables.claim(version(tables, version="v2", sha256="b" * 64))
    assert one.seq != two.seq
    assert [r.version for r in tables.list_files(key=one.key)] == ["v1", "v2"]
    assert tables.get_file(two.seq) == two


def test_every_field_round_trips(tables: Tables) -> None:
    full = version(
        tables,
        status=FileStatus.IN_PROGRESS,
        rows_in=10,
        valid=7,
        rejected=2,
        superseded=1,
        finished_at=T0 + timedelta(seconds=5),
        archive_key="processed/x",
        report_key="reports/x",
        error="boom",
        attempts=2,
        origin="redrive",
        commit=None,
        days=["2024-05-01", "2024-05-02"],
        settled=False,
    )
    tables.claim(full)
    assert tables.get_file(full.seq) == full


def test_updates_are_conditional_on_the_status(tables: Tables) -> None:
    row, _ = tables.claim(version(tables))
    row.attempts = 2
    assert tables.update_file(row, expect=FileStatus.IN_PROGRESS)
    row.status = FileStatus.FAILED
    row.error = "bad"
    assert tables.update_file(row, expect=FileStatus.IN_PROGRESS)
    late = FileRecord.from_dict(row.to_dict())
    late.status = FileStatus.SUCCESS
    assert not tables.update_file(late, expect=FileStatus.IN_PROGRESS)
    stored = tables.get_file(row.seq)
    assert stored is not None and stored.status == FileStatus.FAILED and stored.attempts == 2
    row.settled = True
    assert tables.update_file(row)  # unconditional
    assert tables.get_file(row.seq).settled  # type: ignore[union-attr]


def test_commit_is_all_or_nothing(tables: Tables) -> None:
    a, _ = tables.claim(version(tables, key="inbox/orders/a.csv"))
    b, _ = tables.claim(version(tables, key="inbox/orders/b.csv"))
    b.status = FileStatus.FAILED
    tables.update_file(b)
    for r in (a, b):
        r.status = FileStatus.SUCCESS
        r.commit = a.seq
    assert not tables.commit_files([a, b], commit=a.seq)  # b is no longer IN_PROGRESS
    assert tables.get_file(a.seq).status == FileStatus.IN_PROGRESS  # type: ignore[union-attr]
    a.valid = 3
    assert tables.commit_files([a], commit=a.seq)
    stored = tables.get_file(a.seq)
    assert stored is not None and stored.status == FileStatus.SUCCESS and stored.valid == 3
    assert not tables.commit_files([a], commit=a.seq)  # a second commit of a final row


def test_find_by_sha_takes_the_oldest_with_the_status(tables: Tables) -> None:
    one, _ = tables.claim(version(tables, key="inbox/x/1.csv", sha256="c" * 64))
    two, _ = tables.claim(version(tables, key="inbox/x/2.csv", sha256="c" * 64))
    for r in (one, two):
        r.status = FileStatus.SUCCESS
        tables.update_file(r)
    assert tables.find_by_sha("c" * 64).seq == one.seq  # type: ignore[union-attr]
    assert tables.find_by_sha("c" * 64, FileStatus.FAILED) is None
    assert tables.find_by_sha("d" * 64) is None


def test_list_files_filters_and_limits(tables: Tables) -> None:
    rows = []
    for i, (status, dataset) in enumerate(
        [
            (FileStatus.SUCCESS, "orders"),
            (FileStatus.FAILED, "orders"),
            (FileStatus.SUCCESS, "products"),
            (FileStatus.IN_PROGRESS, "orders"),
        ]
    ):
        row, _ = tables.claim(
            version(tables, key=f"inbox/{dataset}/{i}.csv", source=f"{i}.csv", dataset=dataset)
        )
        row.status = status
        row.settled = status != FileStatus.SUCCESS or i == 0
        tables.update_file(row)
        rows.append(row)
    seqs = [r.seq for r in rows]
    assert [r.seq for r in tables.list_files()] == seqs
    assert [r.seq for r in tables.list_files(FileStatus.SUCCESS)] == [seqs[0], seqs[2]]
    assert [r.seq for r in tables.list_files(dataset="orders")] == [seqs[0], seqs[1], seqs[3]]
    assert [r.seq for r in tables.list_files(key="inbox/orders/1.csv")] == [seqs[1]]
    assert [r.seq for r in tables.list_files(source="2.csv")] == [seqs[2]]
    assert [r.seq for r in tables.list_files(FileStatus.SUCCESS, settled=False)] == [seqs[2]]
    assert [r.seq for r in tables.list_files(limit=2)] == seqs[2:]

"""The ``Catalog`` contract, against every adapter. To add one (DynamoDB), add a factory to
``CATALOGS``: it gets a fresh folder and returns the catalog and a way to open it again (a new
process over the same state)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from salesflow.adapters.memory.catalog import MemoryCatalog
from salesflow.adapters.sqlite.catalog import SqliteCatalog, mark_committed
from salesflow.adapters.sqlite.db import Database
from salesflow.models import Fragment
from salesflow.ports import Catalog

Opened = tuple[Catalog, Callable[[], Catalog]]


def _memory(tmp_path: Path) -> Opened:
    catalog = MemoryCatalog()
    return catalog, lambda: catalog


def _sqlite(tmp_path: Path) -> Opened:
    path = tmp_path / "salesflow.db"
    return SqliteCatalog(path), lambda: SqliteCatalog(path)


CATALOGS: dict[str, Callable[[Path], Opened]] = {"memory": _memory, "sqlite": _sqlite}


@pytest.fixture(params=sorted(CATALOGS))
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    yield CATALOGS[request.param](tmp_path)


@pytest.fixture
def catalog(opened: Opened) -> Catalog:
    return opened[0]


def frag(
    path: str = "lake/sales/year=2024/month=01/part-000000000001-00000.parquet",
    *,
    dataset: str = "sales",
    year: int = 2024,
    month: int = 1,
    created_by: int = 1,
    **changes: object,
) -> Fragment:
    made = Fragment(
        dataset=dataset,
        path=path,
        year=year,
        month=month,
        rows=10,
        min_key="1",
        max_key="10",
        min_seq=3,
        max_seq=4,
        created_by=created_by,
        bytes=1234,
        min_source="a.csv",
        max_source="b.csv",
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def _path(year: int, month: int, commit: int, n: int = 0, dataset: str = "sales") -> str:
    return f"lake/{dataset}/year={year:04d}/month={month:02d}/part-{commit:012d}-{n:05d}.parquet"


def test_is_a_catalog(catalog: Catalog) -> None:
    assert isinstance(catalog, Catalog)


def test_fragments_round_trip_every_field(opened: Opened) -> None:
    catalog, reopen = opened
    full = frag(retired_by=9, published=True)
    bare = frag(
        _path(0, 0, 2),
        year=0,
        month=0,
        min_key=None,
        max_key=None,
        min_source=None,
        max_source=None,
        created_by=2,
    )
    catalog.add_fragments([full, bare])
    assert reopen().fragments("sales") == sorted([full, bare], key=lambda f: f.path)


def test_fragments_by_dataset_and_month_sorted_by_path(catalog: Catalog) -> None:
    added = [
        frag(_path(2024, 2, 5), month=2),
        frag(_path(2024, 1, 7)),
        frag(_path(2024, 1, 6)),
        frag(_path(0, 0, 6), year=0, month=0),
        frag(_path(2024, 1, 6, dataset="other"), dataset="other"),
    ]
    catalog.add_fragments(added)
    assert [f.path for f in catalog.fragments("sales")] == sorted(
        f.path for f in added if f.dataset == "sales"
    )
    january = catalog.fragments("sales", months=[(2024, 1), (0, 0)])
    assert [f.path for f in january] == [_path(0, 0, 6), _path(2024, 1, 6), _path(2024, 1, 7)]
    assert catalog.fragments("sales", months=[]) == []
    assert catalog.fragments("nothing") == []


def test_add_is_an_upsert_by_path(catalog: Catalog) -> None:
    catalog.add_fragments([frag()])
    catalog.add_fragments([frag(rows=3, max_key="9", bytes=99)])
    assert [(f.rows, f.max_key, f.bytes) for f in catalog.fragments("sales")] == [(3, "9", 99)]
    catalog.add_fragments([])


def test_retire_and_unretire_by_commit(catalog: Catalog) -> None:
    a, b, c = (frag(_path(2024, 1, 1, n)) for n in range(3))
    other = frag(_path(2024, 1, 1, dataset="other"), dataset="other")
    catalog.add_fragments([a, b, c, other])
    catalog.retire_fragments([a.path, b.path], by=7)
    catalog.retire_fragments([c.path], by=8)
    catalog.retire_fragments([other.path], by=7)
    catalog.retire_fragments([_path(1999, 1, 1)], by=7)  # unknown: nothing happens
    assert [f.retired_by for f in catalog.fragments("sales")] == [7, 7, 8]
    catalog.unretire("sales", by=7)
    catalog.unretire("sales", by=7)
    assert [f.retired_by for f in catalog.fragments("sales")] == [None, None, 8]
    assert [f.retired_by for f in catalog.fragments("other")] == [7]
    assert len(catalog.fragments("sales")) == 3


def test_mark_published_and_drop_never_bring_a_fragment_back(catalog: Catalog) -> None:
    a, b = frag(_path(2024, 1, 1, 0)), frag(_path(2024, 1, 1, 1))
    catalog.add_fragments([a, b])
    catalog.mark_published([a.path])
    assert [f.published for f in catalog.fragments("sales")] == [True, False]
    catalog.drop_fragments([a.path])
    catalog.drop_fragments([a.path])
    catalog.mark_published([a.path])
    catalog.retire_fragments([a.path], by=3)
    assert [f.path for f in catalog.fragments("sales")] == [b.path]


def test_commits_are_markers_that_never_revert(opened: Opened) -> None:
    catalog, reopen = opened
    assert catalog.committed([1, 2, 3]) == set()
    catalog.commit(2)
    catalog.commit(2)
    assert catalog.committed([1, 2, 3]) == {2}
    assert reopen().committed({2, 5}) == {2}
    assert catalog.committed([]) == set()


def test_many_paths_and_commits_at_once(catalog: Catalog) -> None:
    many = [frag(_path(2024, 1, 1, n)) for n in range(1_200)]
    catalog.add_fragments(many)
    catalog.retire_fragments([f.path for f in many], by=4)
    catalog.mark_published([f.path for f in many[:700]])
    assert sum(f.published for f in catalog.fragments("sales")) == 700
    catalog.drop_fragments([f.path for f in many[:1_100]])
    assert [f.retired_by for f in catalog.fragments("sales")] == [4] * 100
    for commit in range(0, 2_000, 2):
        catalog.commit(commit)
    assert catalog.committed(range(2_000)) == set(range(0, 2_000, 2))


# -- how the state stores write a file's marker with its lineage ---------------------------
def test_memory_catalog_shares_its_commits_with_the_tables() -> None:
    commits: set[int] = set()
    catalog = MemoryCatalog(commits)
    commits.add(11)  # what MemoryTables.commit_files does
    assert catalog.committed([11, 12]) == {11}


def test_sqlite_marker_written_in_another_transaction_of_the_same_file(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "salesflow.db")
    tables = Database(tmp_path / "salesflow.db")  # what SqliteTables holds
    with pytest.raises(RuntimeError), tables.transaction() as conn:
        mark_committed(conn, 21)
        raise RuntimeError("the lineage write failed")
    assert catalog.committed([21]) == set()  # rolled back with the lineage
    with tables.transaction() as conn:
        mark_committed(conn, 21)
        mark_committed(conn, 21)
    assert catalog.committed([21]) == {21}


def test_sqlite_tables_commit_files_makes_a_lake_commit_visible(tmp_path: Path) -> None:
    """The real marker path: ``SqliteTables.commit_files`` and the catalog share one file."""
    from salesflow.adapters.sqlite.tables import SqliteTables
    from salesflow.models import FileRecord, FileStatus

    tables = SqliteTables(tmp_path / "salesflow.db")
    catalog = SqliteCatalog(tmp_path / "salesflow.db")
    seq = tables.next_seq()
    record, _ = tables.claim(
        FileRecord(key="inbox/sales/a.csv", sha256="x", size=1, dataset="sales", seq=seq)
    )
    catalog.add_fragments([frag(created_by=seq)])
    assert catalog.committed([seq]) == set()
    record.status = FileStatus.SUCCESS
    assert tables.commit_files([record], commit=seq)
    assert catalog.committed([seq]) == {seq}

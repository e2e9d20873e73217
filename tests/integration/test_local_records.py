"""ParquetRecordStore against real Parquet files: upserts by ``_seq``, moved days, compaction."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from salesflow.adapters.local.records import ROWS_META, ParquetRecordStore
from salesflow.errors import InvalidKeyError
from salesflow.ports import RecordStore

D1, D2, D3 = date(2024, 1, 5), date(2024, 1, 6), date(2024, 2, 1)


def frame(rows: list[tuple[str, date | None, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_key": [r[0] for r in rows],
            "_day": [r[1] for r in rows],
            "amount": [r[2] for r in rows],
            "note": [f"n{r[0]}" for r in rows],
        },
        schema={"_key": pl.String, "_day": pl.Date, "amount": pl.Float64, "note": pl.String},
    )


def current(store: ParquetRecordStore, **kw: object) -> dict[str, tuple[int, date | None, float]]:
    df = store.read("sales", **kw)  # type: ignore[arg-type]
    return {k: (s, d, a) for k, s, d, a in df.select("_key", "_seq", "_day", "amount").rows()}


@pytest.fixture
def store(tmp_path: Path) -> ParquetRecordStore:
    return ParquetRecordStore(tmp_path / "bucket")


def test_is_a_record_store(store: ParquetRecordStore) -> None:
    assert isinstance(store, RecordStore)


def test_layout_is_hive_partitioned_by_month(store: ParquetRecordStore) -> None:
    store.write("sales", 7, frame([("a", D1, 1.0), ("b", D3, 2.0), ("c", None, 3.0)]), part=2)
    lake = store.root / "lake" / "sales"
    found = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    assert found == [
        "year=0000/month=00/part-000000000007-00002.parquet",
        "year=2024/month=01/part-000000000007-00002.parquet",
        "year=2024/month=02/part-000000000007-00002.parquet",
    ]
    # Readable by any Hive-aware engine as is.
    hive = pl.read_parquet(lake / "**/*.parquet", hive_partitioning=True)
    assert sorted(hive.select("year", "month").unique().rows()) == [(0, 0), (2024, 1), (2024, 2)]


def test_empty_dataset(store: ParquetRecordStore) -> None:
    df = store.read("sales", columns=["amount"])
    assert df.is_empty()
    assert df.schema == pl.Schema(
        {"_key": pl.String, "_seq": pl.Int64, "_day": pl.Date, "amount": pl.Null}
    )
    assert store.read("sales").columns == ["_key", "_seq", "_day"]
    assert store.count_by_seq("sales") == {}
    assert store.compact("sales") == 0


def test_later_seq_wins(store: ParquetRecordStore) -> None:
    store.write("sales", 2, frame([("a", D1, 20.0), ("b", D1, 21.0)]))
    store.write("sales", 1, frame([("a", D1, 10.0), ("c", D2, 12.0)]))  # arrives late, older
    assert current(store) == {"a": (2, D1, 20.0), "b": (2, D1, 21.0), "c": (1, D2, 12.0)}


def test_record_that_moved_day_vanishes_from_its_old_day(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 10.0), ("b", D1, 11.0)]))
    store.write("sales", 2, frame([("a", D3, 30.0)]))  # "a" corrected: now in February
    assert current(store, days=[D1]) == {"b": (1, D1, 11.0)}
    assert current(store, days=[D3]) == {"a": (2, D3, 30.0)}
    assert current(store, days=[D1, D3]) == {"b": (1, D1, 11.0), "a": (2, D3, 30.0)}
    assert current(store, days=[D2]) == {}
    assert current(store, days=[date(2023, 1, 1)]) == {}


def test_days_filter_applies_after_dedup_within_a_month(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 10.0)]))
    store.write("sales", 2, frame([("a", D2, 20.0)]))
    store.write("sales", 3, frame([("z", D1, 1.0)]))  # a newer file that does not touch "a"
    assert current(store, days=[D1]) == {"z": (3, D1, 1.0)}
    assert current(store, days=[D2]) == {"a": (2, D2, 20.0)}


def test_columns_projection(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 10.0)]))
    assert store.read("sales", columns=["amount"]).columns == ["_key", "_seq", "_day", "amount"]
    assert store.read("sales", columns=[]).columns == ["_key", "_seq", "_day"]
    assert set(store.read("sales").columns) == {"_key", "_seq", "_day", "amount", "note"}


def test_rewriting_the_same_seq_and_part_is_idempotent(store: ParquetRecordStore) -> None:
    rows = frame([("a", D1, 10.0), ("b", D3, 11.0)])
    store.write("sales", 1, rows)
    store.write("sales", 1, rows)
    assert store.count_by_seq("sales") == {1: 2}
    # A redo whose records now all fall in January removes the February fragment.
    store.write("sales", 1, frame([("a", D1, 10.0), ("b", D2, 11.0)]))
    assert current(store) == {"a": (1, D1, 10.0), "b": (1, D2, 11.0)}
    assert store.count_by_seq("sales") == {1: 2}
    assert list((store.root / "lake/sales/year=2024/month=02").glob("*.parquet")) == []


def test_parts_of_one_file_add_up_and_a_later_part_wins(store: ParquetRecordStore) -> None:
    store.write("sales", 4, frame([("a", D1, 1.0), ("b", D1, 2.0)]), part=0)
    store.write("sales", 4, frame([("a", D1, 9.0), ("c", D1, 3.0)]), part=1)
    assert store.count_by_seq("sales") == {4: 4}
    assert current(store) == {"a": (4, D1, 9.0), "b": (4, D1, 2.0), "c": (4, D1, 3.0)}


def test_drop_brings_back_the_previous_version(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 10.0)]))
    store.write("sales", 2, frame([("a", D2, 20.0), ("b", D2, 21.0)]), part=0)
    store.write("sales", 2, frame([("c", D3, 22.0)]), part=1)
    store.drop("sales", 2)
    store.drop("sales", 2)  # idempotent
    assert current(store) == {"a": (1, D1, 10.0)}
    assert store.count_by_seq("sales") == {1: 1}


def test_seq_column_is_set_from_the_argument(store: ParquetRecordStore) -> None:
    store.write("sales", 5, frame([("a", D1, 1.0)]).with_columns(_seq=pl.lit(99, pl.Int64)))
    assert current(store) == {"a": (5, D1, 1.0)}


def test_missing_meta_columns_are_refused(store: ParquetRecordStore) -> None:
    with pytest.raises(ValueError, match="_day"):
        store.write("sales", 1, pl.DataFrame({"_key": ["a"]}))


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden"])
def test_dataset_names_cannot_escape(store: ParquetRecordStore, name: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.write(name, 1, frame([("a", D1, 1.0)]))
    with pytest.raises(InvalidKeyError):
        store.read(name)


def test_schema_evolution_reads_old_fragments_with_the_new_columns(
    store: ParquetRecordStore,
) -> None:
    old = frame([("a", D1, 1.0)]).drop("note").with_columns(pl.col("amount").cast(pl.Float32))
    store.write("sales", 1, old)
    store.write("sales", 2, frame([("b", D1, 2.0)]).with_columns(extra=pl.lit(7)))
    df = store.read("sales").sort("_key")
    assert df["note"].to_list() == [None, "nb"]
    assert df["extra"].to_list() == [None, 7]
    assert df.schema["amount"] == pl.Float64


def test_compact_keeps_read_results_and_counts(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 1.0), ("b", D1, 2.0), ("c", D3, 3.0)]))
    store.write("sales", 2, frame([("a", D3, 10.0), ("b", D1, 20.0)]))
    store.write("sales", 3, frame([("b", D2, 30.0), ("d", None, 4.0)]))
    before = store.read("sales").sort("_key")
    before_days = store.read("sales", days=[D1, D3]).sort("_key")
    counts = store.count_by_seq("sales")
    assert store.compact("sales") == 3  # a@1, b@1, b@2
    assert_frame_equal(store.read("sales").sort("_key"), before)
    assert_frame_equal(store.read("sales", days=[D1, D3]).sort("_key"), before_days)
    assert store.count_by_seq("sales") == counts == {1: 3, 2: 2, 3: 2}
    stored = pl.read_parquet(store.root / "lake/sales/**/*.parquet", hive_partitioning=False)
    assert stored.height == 4
    assert store.compact("sales") == 0


def test_count_by_seq_falls_back_to_the_row_count(store: ParquetRecordStore) -> None:
    folder = store.root / "lake/sales/year=2024/month=01"
    folder.mkdir(parents=True)
    frame([("a", D1, 1.0)]).with_columns(_seq=pl.lit(3, pl.Int64)).write_parquet(
        folder / "part-000000000003-00000.parquet"
    )
    assert ROWS_META not in pl.read_parquet_metadata(folder / "part-000000000003-00000.parquet")
    assert store.count_by_seq("sales") == {3: 1}


def test_other_files_in_the_lake_are_ignored(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 1.0)]))
    folder = store.root / "lake/sales/year=2024/month=01"
    (folder / ".tmp-123-part-000000000009-00000.parquet").write_bytes(b"partial")
    (folder / "notes.parquet").write_bytes(b"junk")
    assert current(store) == {"a": (1, D1, 1.0)}


def test_a_reader_process_never_sees_half_a_fragment(store: ParquetRecordStore) -> None:
    rows = frame([(str(i), D1, float(i)) for i in range(50_000)])
    store.write("sales", 1, rows)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\n"
            "from pathlib import Path\n"
            "from salesflow.adapters.local.records import ParquetRecordStore\n"
            "s=ParquetRecordStore(Path(sys.argv[1])); end=time.time()+2; n=0; bad=0\n"
            "while time.time()<end:\n"
            "    bad += s.read('sales', columns=['amount']).height != 50000; n += 1\n"
            "print(bad, n)\n",
            str(store.root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for _ in range(15):
        store.write("sales", 1, rows)
    out, _ = reader.communicate(timeout=60)
    bad, reads = map(int, out.split())
    assert bad == 0 and reads > 0


def test_a_fragment_removed_mid_read_restarts_the_read(
    store: ParquetRecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write("sales", 1, frame([("a", D1, 1.0)]))
    store.write("sales", 2, frame([("b", D1, 2.0)]))
    real = store.fragments
    calls = []

    def racing(dataset: str) -> list[Path]:
        listed = real(dataset)
        calls.append(len(listed))
        if len(calls) == 1:
            store.drop("sales", 2)  # a writer drops seq 2 right after this listing
        return listed

    monkeypatch.setattr(store, "fragments", racing)
    assert current(store) == {"a": (1, D1, 1.0)}
    assert calls == [2, 2, 1]  # the read, the drop's own listing, the read again


def test_a_read_that_keeps_losing_fragments_gives_up(
    store: ParquetRecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ghost = store.root / "lake/sales/year=2024/month=01/part-000000000001-00000.parquet"
    monkeypatch.setattr(store, "fragments", lambda dataset: [ghost])
    with pytest.raises(FileNotFoundError):
        store.read("sales")
    assert store.count_by_seq("sales") == {}


def test_previous_days_reads_only_older_files(store: ParquetRecordStore) -> None:
    store.write("sales", 1, frame([("a", D1, 1.0), ("b", D2, 2.0)]))
    store.write("sales", 2, frame([("a", D3, 3.0)]))
    store.write("sales", 3, frame([("b", D3, 4.0)]))
    keys = pl.Series(["a", "b", "zz"])
    got = dict(store.previous_days("sales", keys, before_seq=3).iter_rows())
    assert got == {"a": D3, "b": D2}
    assert store.previous_days("sales", keys, before_seq=1).is_empty()
    assert store.previous_days("nothing", keys, before_seq=9).is_empty()

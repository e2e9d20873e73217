"""The lake's contract (docs/design.md §1 and §4), against memory parts and against a real
folder with a real SQLite catalog: after every commit the lake holds exactly the current
version of each key, so a plain directory reader's ``SUM`` is right."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from salesflow.adapters.lake.compaction import tier
from salesflow.errors import TerminalError
from salesflow.ports import Lake, LakeStaging
from tests.fixtures.lake import (
    DATASET,
    FIRST_DAY,
    RIGS,
    S3_RIG,
    Crash,
    FaultPlan,
    LakeRig,
    faulty,
    rows,
    spread_days,
)


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LakeRig]:
    made = RIGS[request.param](tmp_path)
    yield made
    close = getattr(made.catalog, "close", None)
    if close:
        close()


@pytest.fixture(params=[*sorted(RIGS), *S3_RIG])
def any_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LakeRig]:
    """``rig``, and the lake over S3 on moto too (for the tests where the store matters)."""
    if request.param in S3_RIG:
        request.getfixturevalue("aws_env")
        made = S3_RIG[request.param](tmp_path)
    else:
        made = RIGS[request.param](tmp_path)
    yield made
    close = getattr(made.catalog, "close", None)
    if close:
        close()


def _total(frame: pl.DataFrame) -> float:
    return round(float(frame.get_column("price").sum()), 6)


# -- visibility ------------------------------------------------------------------------------
def test_is_the_lake_port(rig: LakeRig) -> None:
    assert isinstance(rig.lake, Lake)
    assert isinstance(rig.lake.stage(DATASET, 1), LakeStaging)


def test_staged_rows_are_invisible_until_the_commit_marker(any_rig: LakeRig) -> None:
    rig = any_rig
    rig.stage(1, rows(range(10), seq=1))
    with rig.locks.hold(rig.lake.lock_name(DATASET)):
        rig.lake.resolve(DATASET, 1)
    assert rig.lake.read(DATASET).is_empty()
    assert rig.lake.lookup(DATASET, pl.Series(["3"])).is_empty()
    assert rig.directory_rows().is_empty()
    assert [k for k in rig.objects("lake/") if k.endswith(".parquet")] == []
    assert len(rig.staged_objects()) == 1

    rig.catalog.commit(1)
    assert rig.lake.read(DATASET).height == 10  # visible at once to the lake's own readers
    assert rig.directory_rows().is_empty()  # directory readers: once published

    rig.lake.publish(DATASET, 1)
    assert rig.directory_rows().height == 10
    assert rig.leftovers() == []


def test_fragment_paths_follow_the_layout(rig: LakeRig) -> None:
    days = [date(2024, 1, 5), date(2024, 3, 9), None]
    rig.commit(7, rows(["a", "b", "c"], seq=7, days=days))
    assert rig.objects("lake/") == [
        "lake/sales/year=0000/month=00/part-000000000007-00000.parquet",
        "lake/sales/year=2024/month=01/part-000000000007-00001.parquet",
        "lake/sales/year=2024/month=03/part-000000000007-00002.parquet",
    ]
    entries = rig.catalog.fragments(DATASET, months=[(2024, 3)])
    assert [(f.rows, f.min_key, f.max_key, f.min_seq, f.published) for f in entries] == [
        (1, "b", "b", 7, True)
    ]


# -- corrections -----------------------------------------------------------------------------
def test_a_correction_leaves_the_directory_sum_right(any_rig: LakeRig) -> None:
    rig = any_rig
    rng = random.Random(1)
    n = 10_000
    prices = [round(rng.uniform(1, 500), 2) for _ in range(n)]
    days = spread_days(n, months=24)
    rig.commit(1, rows(range(n), seq=1, price=prices, days=days))
    truth = dict(zip(map(str, range(n)), prices, strict=True))

    fixed = rng.sample(range(n), 200)
    new_prices = [round(p * 1.5 + 1, 2) for p in (prices[k] for k in fixed)]
    new_days = spread_days(200, months=24, seed=9)
    resolution = rig.commit(2, rows(fixed, seq=2, price=new_prices, days=new_days))
    truth.update(dict(zip(map(str, fixed), new_prices, strict=True)))

    expected = round(sum(truth.values()), 6)
    assert _total(rig.directory_rows()) == expected
    assert rig.directory_rows().height == n
    assert _total(rig.lake.read(DATASET)) == expected
    assert resolution.replaced.height == 200
    assert sorted(resolution.replaced.get_column("_key").to_list()) == sorted(map(str, fixed))
    assert _total(resolution.replaced) == round(sum(prices[k] for k in fixed), 6)
    assert resolution.days == {days[k] for k in fixed}
    assert resolution.superseded.is_empty() and resolution.duplicates.is_empty()
    assert rig.lake.rows_by_seq(DATASET) == {1: n - 200, 2: 200}


def test_an_older_arrival_processed_later_loses(rig: LakeRig) -> None:
    rig.commit(5, rows(["k1", "k2"], seq=5, arrived=2_000, price=20.0))
    late = rig.commit(6, rows(["k1", "k3"], seq=6, arrived=1_000, price=10.0))
    stored = rig.lake.read(DATASET).sort("_key")
    assert stored.select("_key", "price").rows() == [("k1", 20.0), ("k2", 20.0), ("k3", 10.0)]
    assert late.superseded.get_column("_key").to_list() == ["k1"]
    assert late.replaced.is_empty()
    assert sorted(rig.directory_rows().get_column("_key").to_list()) == ["k1", "k2", "k3"]


def test_same_arrival_the_higher_seq_wins(rig: LakeRig) -> None:
    rig.commit(8, rows(["k"], seq=8, arrived=5, price=8.0))
    resolution = rig.commit(9, rows(["k"], seq=9, arrived=5, price=9.0))
    assert rig.lake.read(DATASET).get_column("price").to_list() == [9.0]
    assert resolution.replaced.get_column("price").to_list() == [8.0]


def test_a_redrive_of_a_stored_record_is_a_duplicate(rig: LakeRig) -> None:
    rig.commit(3, rows(["a", "b"], seq=3, arrived=30, price=3.0))
    # A redrive carries the version of the file it was first rejected in (seq 3): "b" is
    # stored from that very version already, "c" is not.
    redrive = rig.commit(4, rows(["b", "c"], seq=3, arrived=30, price=[99.0, 4.0]))
    assert redrive.duplicates.select("_key", "_seq").rows() == [("b", 3)]
    assert redrive.superseded.is_empty() and redrive.replaced.is_empty()
    stored = rig.lake.read(DATASET).sort("_key").select("_key", "price").rows()
    assert stored == [("a", 3.0), ("b", 3.0), ("c", 4.0)]


def test_a_group_of_files_in_one_commit_keeps_the_newest_version(rig: LakeRig) -> None:
    rig.commit(1, rows(["x"], seq=1, arrived=1, price=1.0))
    resolution = rig.commit(
        10,
        rows(["x", "y"], seq=12, arrived=12, price=12.0, source="b.json"),
        rows(["x", "y"], seq=11, arrived=11, price=11.0, source="a.json"),
    )
    stored = rig.lake.read(DATASET).sort("_key").select("_key", "price", "_seq").rows()
    assert stored == [("x", 12.0, 12), ("y", 12.0, 12)]
    assert sorted(resolution.superseded.select("_key", "_seq").rows()) == [("x", 11), ("y", 11)]
    assert resolution.replaced.select("_key", "_seq").rows() == [("x", 1)]
    assert _total(rig.directory_rows()) == 24.0


def test_a_resent_source_replaces_every_line_of_its_older_version(any_rig: LakeRig) -> None:
    rig = any_rig

    def lines(source: str, n: int, seq: int, price: float) -> pl.DataFrame:
        keys = [f"{source}|{i}" for i in range(1, n + 1)]
        return rows(keys, seq=seq, arrived=seq, source=source, price=price)

    rig.commit(1, lines("dec.csv", 5, 1, 1.0), replace_sources={"dec.csv": (1, 1)})
    rig.commit(2, lines("jan.csv", 4, 2, 1.0), replace_sources={"jan.csv": (2, 2)})
    v2 = rig.commit(3, lines("dec.csv", 3, 3, 2.0), replace_sources={"dec.csv": (3, 3)})
    stored = rig.lake.read(DATASET)
    by_source = dict(
        stored.group_by("_source")
        .agg(pl.len(), pl.col("price").sum())
        .select("_source", pl.struct("len", "price"))
        .rows()
    )
    assert by_source == {"dec.csv": {"len": 3, "price": 6.0}, "jan.csv": {"len": 4, "price": 4.0}}
    assert sorted(v2.replaced.get_column("_key").to_list()) == [f"dec.csv|{i}" for i in range(1, 6)]
    assert _total(rig.directory_rows()) == 10.0

    # A version with no valid line at all still replaces every line of the older ones.
    rig.stage(5)
    emptied = rig.resolve_and_commit(5, replace_sources={"jan.csv": (5, 5)})
    rig.lake.publish(DATASET, 5)
    assert emptied.replaced.height == 4
    assert set(rig.lake.read(DATASET).get_column("_source")) == {"dec.csv"}
    assert _total(rig.directory_rows()) == 6.0

    # The first version arriving once more, late: nothing of it comes back.
    late = rig.commit(4, lines("dec.csv", 5, 1, 1.0), replace_sources={"dec.csv": (1, 1)})
    assert late.superseded.height == 5 and late.replaced.is_empty()
    assert _total(rig.lake.read(DATASET)) == 6.0


def test_a_correction_of_a_fragment_not_yet_published(rig: LakeRig) -> None:
    rig.stage(1, rows(["a", "b"], seq=1, price=1.0))
    rig.resolve_and_commit(1)  # committed, publish pending (a crash, or still running)
    rig.stage(2, rows(["a"], seq=2, price=5.0))
    rig.resolve_and_commit(2)
    rig.lake.publish(DATASET, 2)
    rig.lake.publish(DATASET, 1)
    assert sorted(rig.directory_rows().select("_key", "price").rows()) == [("a", 5.0), ("b", 1.0)]
    assert rig.leftovers() == []
    assert all(f.published and f.retired_by is None for f in rig.catalog.fragments(DATASET))


# -- failure and redo ------------------------------------------------------------------------
def test_discard_undoes_a_crash_at_every_write_of_stage_and_resolve(
    rig: LakeRig, tmp_path: Path
) -> None:
    rig.commit(1, rows(range(20), seq=1, days=spread_days(20, months=3)))
    before = rig.snapshot()
    correction = rows(range(10, 30), seq=2, price=2.0, days=spread_days(20, months=3, seed=2))
    at = 1
    while True:
        plan = FaultPlan(at)
        lake = faulty(rig, plan)
        try:
            with lake.stage(DATASET, 2) as staging:
                staging.write(correction.head(10))
                staging.write(correction.tail(10))
            with rig.locks.hold(lake.lock_name(DATASET)):
                lake.resolve(DATASET, 2)
        except Crash:
            rig.make_lake().discard(DATASET, 2)  # what recover does, in a new process
            assert rig.snapshot() == before, f"after a crash at {plan.names[-1]} (write {at})"
            assert list(rig.work_dir.glob("lake-*")) == []
            at += 1
            continue
        break
    assert at > 5  # every write of stage and resolve was a crash point
    rig.make_lake().discard(DATASET, 2)  # resolved but never committed
    assert rig.snapshot() == before


def test_publish_is_finished_by_calling_it_again_after_a_crash_anywhere(
    any_rig: LakeRig, tmp_path: Path
) -> None:
    rig = any_rig
    n = 40
    truth = {str(k): (7.0 if k % 3 == 0 else 1.0) for k in range(n)}

    def committed(folder: Path) -> LakeRig:
        made = {**RIGS, **S3_RIG}[rig.name](folder)
        made.commit(1, rows(range(n), seq=1, days=spread_days(n, months=4)))
        made.stage(2, rows(range(0, n, 3), seq=2, price=7.0, days=spread_days(14, months=4)))
        made.resolve_and_commit(2)
        return made

    at = 1
    while True:
        attempt = committed(tmp_path / f"attempt-{at}")
        plan = FaultPlan(at)
        try:
            faulty(attempt, plan).publish(DATASET, 2)
        except Crash:
            attempt.make_lake().publish(DATASET, 2)
            got = dict(attempt.directory_rows().select("_key", "price").rows())
            assert got == truth, f"after a crash at {plan.names[-1]}"
            assert attempt.leftovers() == []
            fragments = attempt.catalog.fragments(DATASET)
            assert all(f.published and f.retired_by is None for f in fragments)
            at += 1
            continue
        break
    assert at > 8  # moves, deletes, catalog updates: each was a crash point
    before = attempt.snapshot()
    attempt.make_lake().publish(DATASET, 2)
    assert attempt.snapshot() == before


def test_publish_finishes_a_move_interrupted_between_link_and_unlink(any_rig: LakeRig) -> None:
    rig = any_rig
    rig.stage(1, rows(["a", "b"], seq=1))
    rig.resolve_and_commit(1)
    [staged] = rig.staged_objects()
    final = staged.replace("/_part-", "/part-").removesuffix(".staged")
    rig.store.put_bytes(final, rig.store.get_bytes(staged))  # the crash left both names
    rig.lake.publish(DATASET, 1)
    assert rig.staged_objects() == []
    assert sorted(rig.directory_rows().get_column("_key").to_list()) == ["a", "b"]


def test_discard_refuses_a_committed_commit_and_publish_an_uncommitted_one(
    rig: LakeRig,
) -> None:
    rig.stage(1, rows(["a"], seq=1))
    with pytest.raises(TerminalError, match="no commit marker"):
        rig.lake.publish(DATASET, 1)
    rig.resolve_and_commit(1)
    with pytest.raises(TerminalError, match="cannot be discarded"):
        rig.lake.discard(DATASET, 1)


def test_discard_is_idempotent_and_redo_gives_the_same_lake(rig: LakeRig) -> None:
    rig.stage(4, rows(["a", "b"], seq=4))
    rig.lake.discard(DATASET, 4)
    rig.lake.discard(DATASET, 4)
    assert rig.catalog.fragments(DATASET) == [] and rig.objects() == []
    rig.commit(4, rows(["a", "b"], seq=4))
    assert rig.lake.read(DATASET).height == 2


# -- compaction ------------------------------------------------------------------------------
def test_compaction_bounds_the_fragment_count_over_10000_one_row_commits(
    tmp_path: Path,
) -> None:
    fanout, base, months = 4, 64, 2
    rig = RIGS["memory"](tmp_path, fanout=fanout, first_tier_rows=base)
    most = 0
    for i in range(10_000):
        day = FIRST_DAY.replace(month=1 + i % months)
        rig.commit(i + 1, rows([f"e{i}"], seq=i + 1, price=1.0, days=[day]))
        most = max(most, len(rig.catalog.fragments(DATASET)))
    # 5,000 rows a month span tiers 0..4 (64, 256, 1024, 4096 rows); each holds < 4 fragments
    bound = months * (fanout - 1) * (tier(10_000 // months, fanout, base) + 1)
    assert most <= bound
    visible = rig.lake.visible(DATASET)
    assert len(rig.objects("lake/")) == len(visible) == len(rig.catalog.fragments(DATASET))
    assert rig.lake.read(DATASET).height == 10_000
    assert rig.directory_rows().height == 10_000
    assert rig.leftovers() == []


def test_compaction_on_a_real_folder_keeps_every_row(rig: LakeRig) -> None:
    lake = rig.make_lake(fanout=2, first_tier_rows=2)
    rig.lake = lake
    for i in range(1, 40):
        rig.commit(i, rows([f"k{i % 25}"], seq=i, price=float(i)))
    expected = {f"k{i % 25}": float(i) for i in range(1, 40)}
    assert dict(rig.directory_rows().select("_key", "price").rows()) == expected
    assert len(rig.lake.visible(DATASET)) <= 5  # 25 rows: tiers of 2 up to 16, one each
    report = rig.lake.compact(DATASET)
    assert report.written == 1 and len(rig.lake.visible(DATASET)) == 1
    assert dict(rig.lake.read(DATASET).select("_key", "price").rows()) == expected
    assert rig.lake.compact(DATASET).merged == 0


def test_a_compaction_interrupted_by_a_crash_is_cleaned_by_the_next(rig: LakeRig) -> None:
    for i in range(1, 4):
        rig.commit(i, rows([f"k{i}"], seq=i))
    before = rig.snapshot()
    at = 1
    while True:
        plan = FaultPlan(at)
        try:
            faulty(rig, plan).compact(DATASET)
        except Crash:
            lake = rig.make_lake()
            assert lake.read(DATASET).sort("_key").to_dicts() == before[0]
            lake.compact(DATASET)
            assert lake.read(DATASET).sort("_key").to_dicts() == before[0]
            assert len(lake.visible(DATASET)) == 1
            assert rig.leftovers() == []
            assert len(rig.objects("lake/")) == 1
            at += 1
            # back to three fragments for the next crash point
            rig.catalog.drop_fragments([f.path for f in rig.catalog.fragments(DATASET)])
            for key in rig.objects():
                rig.store.delete(key)
            for i in range(1, 4):
                rig.commit(100 * at + i, rows([f"k{i}"], seq=i))
            continue
        break
    assert at > 3


# -- schemas ---------------------------------------------------------------------------------
def test_fragments_with_older_schemas_read_as_the_newest(rig: LakeRig) -> None:
    old = rows(["a", "b"], seq=1, price=1.0).with_columns(pl.lit(2, pl.Int32).alias("qty"))
    rig.commit(1, old)
    new = rows(["b", "c"], seq=2, price=2.0, extra={"coupon": ["X", None]}).with_columns(
        pl.lit(3, pl.Int64).alias("qty")
    )
    resolution = rig.commit(2, new)
    got = rig.lake.read(DATASET).sort("_key")
    assert got.schema["qty"] == pl.Int64 and got.schema["coupon"] == pl.String
    assert got.select("_key", "qty", "coupon").rows() == [
        ("a", 2, None),
        ("b", 3, "X"),
        ("c", 3, None),
    ]
    assert resolution.replaced.select("_key", "qty").rows() == [("b", 2)]
    assert rig.lake.read(DATASET, columns=["coupon", "missing"]).columns == [
        "_key",
        "_seq",
        "_day",
        "_arrived",
        "coupon",
        "missing",
    ]
    rig.lake.compact(DATASET)
    assert rig.lake.read(DATASET).sort("_key").select("_key", "qty", "coupon").rows() == [
        ("a", 2, None),
        ("b", 3, "X"),
        ("c", 3, None),
    ]


def test_a_chunk_with_other_columns_than_the_first_is_refused(rig: LakeRig) -> None:
    with pytest.raises(ValueError, match="one schema"), rig.lake.stage(DATASET, 1) as staging:
        staging.write(rows(["a"], seq=1))
        staging.write(rows(["b"], seq=1, extra={"coupon": ["x"]}))
    with pytest.raises(ValueError, match="lack the columns"), rig.lake.stage(DATASET, 2) as s:
        s.write(pl.DataFrame({"_key": ["a"]}))
    assert rig.objects() == []


# -- reads -----------------------------------------------------------------------------------
def test_reads_by_day_key_and_membership(any_rig: LakeRig) -> None:
    rig = any_rig
    days = [date(2024, 1, 1), date(2024, 1, 2), date(2024, 2, 1), None]
    rig.commit(1, rows(["1", "2", "3", "4"], seq=1, days=days, price=[1.0, 2.0, 3.0, 4.0]))
    one_day = rig.lake.read(DATASET, days={date(2024, 1, 2)}, columns=["price"])
    assert one_day.select("_key", "price").rows() == [("2", 2.0)]
    assert rig.lake.read(DATASET, days={date(2030, 1, 1)}).is_empty()
    found = rig.lake.lookup(DATASET, pl.Series(["3", "9"]), columns=["price"])
    assert found.select("_key", "price").rows() == [("3", 3.0)]
    assert rig.lake.contains(DATASET, pl.Series("id", [4, 5, None])).to_list() == [
        True,
        False,
        False,
    ]
    with rig.lake.local_paths(DATASET) as paths:
        assert pl.read_parquet(paths).height == 4
    assert rig.lake.read("other").columns == ["_key", "_seq", "_day", "_arrived"]


def test_a_small_file_of_new_ids_reads_no_stored_fragment(rig: LakeRig) -> None:
    """Zone maps: keys order numerically, so new increasing ids miss every stored fragment."""
    rig.commit(1, rows(range(1, 5001), seq=1, days=spread_days(5000, months=12)))
    fetched: list[str] = []
    fetch = rig.store.fetch

    def counting(key: str):  # type: ignore[no-untyped-def]
        fetched.append(key)
        return fetch(key)

    rig.store.fetch = counting  # type: ignore[method-assign]
    rig.stage(2, rows(range(5001, 6001), seq=2, days=spread_days(1000, months=12, seed=5)))
    with rig.locks.hold(rig.lake.lock_name(DATASET)):
        rig.lake.resolve(DATASET, 2)
    assert [key for key in fetched if key.startswith("lake/")] == []
    found = rig.lake.lookup(DATASET, pl.Series(["99999"]))
    assert found.is_empty() and [key for key in fetched if key.startswith("lake/")] == []


def test_random_keys_a_warm_lake_reads_only_fragments_holding_them(rig: LakeRig) -> None:
    """Zone maps cannot prune random keys; the in-process key cache can, once warm."""
    rng = random.Random(3)
    stored = [f"{rng.getrandbits(64):020d}" for _ in range(3000)]
    rig.commit(1, rows(stored, seq=1, days=spread_days(3000, months=12)))
    fresh = [f"{rng.getrandbits(64):020d}" for _ in range(200)]
    rig.commit(2, rows(fresh[:100], seq=2, days=[date(2025, 1, 1)] * 100))  # warms the cache
    fetched: list[str] = []
    fetch, get = rig.store.fetch, rig.store.get_bytes

    def counting_fetch(key: str):  # type: ignore[no-untyped-def]
        fetched.append(key)
        return fetch(key)

    def counting_get(key: str) -> bytes:
        fetched.append(key)
        return get(key)

    rig.store.fetch = counting_fetch  # type: ignore[method-assign]
    rig.store.get_bytes = counting_get  # type: ignore[method-assign]
    rig.stage(3, rows(fresh[100:], seq=3, days=[date(2025, 1, 2)] * 100))
    with rig.locks.hold(rig.lake.lock_name(DATASET)):
        assert rig.lake.resolve(DATASET, 3).replaced.is_empty()
    assert [k for k in fetched if k.endswith(".parquet")] == []

    one = stored[17]
    holder = [
        f for f in rig.lake.visible(DATASET) if rig.lake.lookup(DATASET, pl.Series([one])).height
    ]
    fetched.clear()
    assert rig.lake.lookup(DATASET, pl.Series([one])).get_column("_key").to_list() == [one]
    assert len({k for k in fetched if k.endswith(".parquet")}) == 1 and holder


def test_a_commit_redone_after_discard_is_not_mistaken_for_its_first_attempt(
    rig: LakeRig,
) -> None:
    first = rig.lake  # stages commit 2, then "crashes" with its caches warm
    rig.stage(2, rows(["k1"], seq=2, price=1.0))
    rig.lake = rig.make_lake()  # recover, in another process: discard and redo
    rig.lake.discard(DATASET, 2)
    rig.commit(2, rows(["k2"], seq=2, price=2.0))  # same path, same row count
    rig.lake = first
    fix = rig.commit(3, rows(["k2"], seq=3, price=3.0))
    assert fix.replaced.get_column("_key").to_list() == ["k2"]
    assert rig.lake.read(DATASET).select("_key", "price").rows() == [("k2", 3.0)]


# -- locks -----------------------------------------------------------------------------------
def test_auto_compaction_skips_while_another_holds_the_lock(tmp_path: Path) -> None:
    rig = RIGS["memory"](tmp_path, fanout=2)
    rig.commit(1, rows(["a"], seq=1))
    rig.stage(2, rows(["b"], seq=2))
    rig.resolve_and_commit(2)
    import threading

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with rig.locks.hold(rig.lake.lock_name(DATASET)):
            held.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    try:
        rig.lake.publish(DATASET, 2)  # does not wait for the lock
        assert len(rig.lake.visible(DATASET)) == 2
    finally:
        release.set()
        thread.join()
    rig.commit(3, rows(["c"], seq=3))
    assert len(rig.lake.visible(DATASET)) == 1

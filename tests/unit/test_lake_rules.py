"""The lake's pure decisions: who wins a conflict, which fragments a key can be in, which
fragments compaction merges."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from salesflow.adapters.lake.compaction import plan, plan_all, tier
from salesflow.adapters.lake.resolve import DUPLICATE, SUPERSEDED, decide
from salesflow.adapters.lake.zones import (
    KeyCache,
    KeyProbe,
    Zone,
    hash_keys,
    key_order,
    ranges_overlap,
    zone_of,
)
from salesflow.models import Fragment


def versions(*rows: tuple[str, int, int, str, int, int]) -> pl.DataFrame:
    """(key, arrived, seq, source, frag, row) per row."""
    return pl.DataFrame(
        rows,
        schema={
            "_key": pl.String,
            "_arrived": pl.Int64,
            "_seq": pl.Int64,
            "_source": pl.String,
            "__frag": pl.UInt32,
            "__row": pl.UInt32,
        },
        orient="row",
    )


def losers(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return frame.rows()


def test_newer_staged_version_replaces_visible_row() -> None:
    visible = versions(("a", 10, 1, "f", 0, 0), ("b", 10, 1, "f", 0, 1))
    staged = versions(("a", 20, 2, "g", 0, 0))
    lost_visible, lost_staged = decide(visible, staged, {})
    assert losers(lost_visible) == [(0, 0)]
    assert lost_staged.is_empty()


def test_arrival_beats_seq_and_seq_breaks_arrival_ties() -> None:
    visible = versions(("a", 20, 1, "f", 0, 0), ("b", 10, 5, "f", 0, 1))
    staged = versions(("a", 10, 9, "g", 0, 0), ("b", 10, 6, "g", 0, 1))
    lost_visible, lost_staged = decide(visible, staged, {})
    assert losers(lost_visible) == [(0, 1)]
    assert losers(lost_staged) == [(0, 0, SUPERSEDED)]


def test_equal_version_keeps_the_stored_row_and_reports_a_duplicate() -> None:
    visible = versions(("a", 10, 3, "f", 2, 7))
    staged = versions(("a", 10, 3, "f", 0, 0))
    lost_visible, lost_staged = decide(visible, staged, {})
    assert lost_visible.is_empty()
    assert losers(lost_staged) == [(0, 0, DUPLICATE)]


def test_staged_rows_of_one_commit_compete_by_version() -> None:
    staged = versions(("a", 11, 11, "x", 0, 0), ("a", 12, 12, "y", 1, 0), ("b", 5, 5, "x", 0, 1))
    lost_visible, lost_staged = decide(versions(), staged, {})
    assert lost_visible.is_empty()
    assert losers(lost_staged) == [(0, 0, SUPERSEDED)]


def test_replaced_source_loses_every_older_row_whatever_its_key() -> None:
    visible = versions(("s|1", 1, 1, "s", 0, 0), ("s|2", 1, 1, "s", 0, 1), ("t|1", 1, 1, "t", 1, 0))
    staged = versions(("s|1", 5, 5, "s", 0, 0))
    lost_visible, lost_staged = decide(visible, staged, {"s": (5, 5)})
    assert losers(lost_visible) == [(0, 0), (0, 1)]
    assert lost_staged.is_empty()


def test_an_old_version_of_a_source_arriving_late_adds_nothing() -> None:
    visible = versions(("s|1", 5, 5, "s", 0, 0))
    staged = versions(("s|1", 1, 1, "s", 0, 0), ("s|2", 1, 1, "s", 0, 1))
    lost_visible, lost_staged = decide(visible, staged, {"s": (1, 1)})
    assert lost_visible.is_empty()
    assert losers(lost_staged) == [(0, 0, SUPERSEDED), (0, 1, SUPERSEDED)]


def test_key_order_puts_integer_ids_in_numeric_order() -> None:
    ids = [str(i) for i in (1, 2, 9, 10, 99, 100, 1000, 12345)]
    assert sorted(ids, key=key_order) == ids
    zone = zone_of(pl.DataFrame({"_key": ids, "_seq": [1] * 8, "_source": ["f"] * 8}))
    assert (zone.min_key, zone.max_key) == ("1", "12345")


def _fragment(low: str | None, high: str | None, rows: int = 10, **changes: object) -> Fragment:
    made = Fragment(
        dataset="d",
        path=f"lake/d/year=2024/month=01/part-{rows:012d}-{len(low or '')}.parquet",
        year=2024,
        month=1,
        rows=rows,
        min_key=low,
        max_key=high,
        min_seq=1,
        max_seq=1,
        created_by=1,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def test_key_probe_finds_fragments_whose_range_holds_a_key() -> None:
    fragments = [_fragment("1", "999"), _fragment("1000", "5000"), _fragment(None, None)]
    assert KeyProbe(pl.Series(["5001", "70000"])).hits(fragments) == [False, False, True]
    assert KeyProbe(pl.Series([4000])).hits(fragments) == [False, True, True]
    assert KeyProbe(pl.Series([], dtype=pl.String)).hits(fragments) == [False, False, False]
    assert ranges_overlap(_fragment("1", "999"), Zone(1, "999", "1000"))
    assert not ranges_overlap(_fragment("1", "999"), Zone(1, "1000", "2000"))


def test_tiers_and_compaction_plans() -> None:
    assert [tier(n, 4, 4) for n in (1, 3, 4, 15, 16, 64)] == [0, 0, 1, 1, 2, 3]
    assert [tier(n, 4, 100) for n in (1, 99, 100, 399, 400)] == [0, 0, 1, 1, 2]
    ones = [_fragment("a", "a", rows=1, path=f"p{i}") for i in range(3)]
    assert plan(ones, target_rows=100, fanout=4, base=4) == []
    four = [*ones, _fragment("a", "a", rows=1, path="p3")]
    assert plan(four, target_rows=100, fanout=4, base=4) == [four]
    # merging four 1-row fragments fills tier 1 (three of 4..15 rows there): merge those too
    tier1 = [_fragment("a", "a", rows=5, path=f"q{i}") for i in range(3)]
    assert sorted(
        f.path for f in plan([*four, *tier1], target_rows=100, fanout=4, base=4)[0]
    ) == sorted(f.path for f in [*four, *tier1])
    big = _fragment("a", "a", rows=500, path="big")
    assert plan([big, *ones], target_rows=100, fanout=2, base=2) == [ones]
    other_month = dataclasses.replace(ones[0], month=2, path="m2")
    assert plan_all([*ones, other_month, big], target_rows=100) == [ones]


def test_key_cache_answers_for_many_fragments_and_forgets() -> None:
    cache = KeyCache(budget=1 << 30)
    a = _fragment("1", "9", path="a", created_by=1)
    b = _fragment("1", "9", path="b", created_by=2)
    c = _fragment("1", "9", path="c", created_by=3)
    cache.learn(a, pl.Series([str(i) for i in range(0, 100_000, 2)]))  # merged into the index
    cache.learn(b, pl.Series(["x", "y"]))  # still in the delta
    assert cache.missing([a, b, c]) == [c]
    assert cache.may_hold([a, b, c], hash_keys(pl.Series(["4", "y"]))) == [True, True, True]
    assert cache.may_hold([a, b, c], hash_keys(pl.Series(["3", "z"]))) == [False, False, True]
    cache.forget(2)
    assert cache.missing([a, b]) == [b]
    relearned = dataclasses.replace(a, rows=11)  # the same path written anew: another entry
    assert cache.missing([relearned]) == [relearned]


def test_key_cache_stays_within_its_budget() -> None:
    cache = KeyCache(budget=12 * 1_000)
    old, new = _fragment("1", "9", path="old"), _fragment("1", "9", path="new")
    cache.learn(old, pl.Series([str(i) for i in range(600)]))
    cache.learn(new, pl.Series([str(i) for i in range(600, 1_200)]))
    assert cache.missing([old, new]) == [old]  # least recently used out
    assert cache.may_hold([new], hash_keys(pl.Series(["700"]))) == [True]


def test_only_the_fragments_the_cache_can_hold_are_learned_in_bounded_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fragments beyond the cache's room stay unlearned (read by the lookup): learning them
    would evict what the same question needs, and every chunk would read them again."""
    from salesflow.adapters.lake import reads

    monkeypatch.setattr(reads, "LEARN_ROWS", 250)
    cached = _fragment("1", "9", rows=400, path="cached")
    fresh = [_fragment("1", "9", rows=100 + i, path=f"f{i}") for i in range(6)]
    batches = list(reads._learnable([cached, *fresh], fresh, room=900))
    learned = [f.path for batch in batches for f in batch]
    assert learned == ["f0", "f1", "f2", "f3"]  # 400 + 100 + 101 + 102 + 103 <= 900 < + 104
    assert all(sum(f.rows for f in b) <= 250 or len(b) == 1 for b in batches)
    assert list(reads._learnable([cached, *fresh], fresh, room=400)) == []

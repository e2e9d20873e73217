"""``SeenKeys``: a key met in an earlier chunk of the file, or earlier in the same chunk, is
a duplicate; the first occurrence owns it, whatever the buffer's growth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from salesflow.validation.filewide import SeenKeys


def _remembered(seen: SeenKeys) -> list[int]:
    """Every id ``seen`` holds, one by one and in its intervals."""
    runs = [range(lo, hi + 1) for lo, hi in zip(seen._lows, seen._highs, strict=True)]
    return sorted([*seen._ints.tolist(), *(int(x) for r in runs for x in r)])


@pytest.mark.parametrize("shape", ["random", "runs"])
def test_duplicates_across_and_within_chunks_match_a_plain_set(shape: str) -> None:
    rng = np.random.default_rng(7)
    ids = rng.integers(-50, 5_000, size=20_000)
    if shape == "runs":  # consecutive stretches, re-sent stretches and strays between them
        starts = rng.integers(-50, 5_000, size=400)
        ids = np.concatenate([np.arange(s, s + rng.integers(1, 60)) for s in starts])
    seen = SeenKeys()
    known: set[int] = set()
    for start in range(0, len(ids), 777):  # many chunks: the buffer grows many times
        part = [int(x) for x in ids[start : start + 777]]
        nulls = [None if i % 50 == 0 else v for i, v in enumerate(part)]
        got = seen.duplicates(pl.Series("id", nulls, dtype=pl.Int64)).to_list()
        want = []
        for value in nulls:
            want.append(value is not None and value in known)
            if value is not None:
                known.add(value)
        assert got == want
    assert _remembered(seen) == sorted(known)
    if shape == "runs":
        assert len(seen._lows) > 0 and len(seen._ints) < len(known) / 2


def test_consecutive_ids_take_no_room_per_id() -> None:
    """An export numbered 1..N (thelook's ``id``) is one interval a chunk, not 8 bytes an id:
    the 20M-row file held 160 MB of ids before."""
    seen = SeenKeys()
    for start in range(1, 1_000_001, 250_000):
        ids = pl.Series("id", np.arange(start, start + 250_000))
        assert not seen.duplicates(ids).any()
    assert len(seen._ints) == 0
    assert seen._lows.tolist() == [1, 250_001, 500_001, 750_001]
    again = seen.duplicates(pl.Series("id", [0, 1, 250_000, 999_999, 1_000_000, 1_000_001]))
    assert again.to_list() == [False, True, True, True, True, False]


def test_text_keys_are_remembered_too() -> None:
    seen = SeenKeys()
    assert seen.duplicates(pl.Series(["a", "b", "a", None])).to_list() == [
        False,
        False,
        True,
        False,
    ]
    assert seen.duplicates(pl.Series(["b", "c", None])).to_list() == [True, False, False]

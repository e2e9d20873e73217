"""``SeenKeys``: a key met in an earlier chunk of the file, or earlier in the same chunk, is
a duplicate; the first occurrence owns it, whatever the buffer's growth."""

from __future__ import annotations

import numpy as np
import polars as pl

from salesflow.validation.filewide import SeenKeys


def test_duplicates_across_and_within_chunks_match_a_plain_set() -> None:
    rng = np.random.default_rng(7)
    ids = rng.integers(-50, 5_000, size=20_000)
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
    assert seen._ints.tolist() == sorted(known)


def test_text_keys_are_remembered_too() -> None:
    seen = SeenKeys()
    assert seen.duplicates(pl.Series(["a", "b", "a", None])).to_list() == [
        False,
        False,
        True,
        False,
    ]
    assert seen.duplicates(pl.Series(["b", "c", None])).to_list() == [True, False, False]

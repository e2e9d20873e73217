"""Dead letters made from a chunk's rejected rows."""

from __future__ import annotations

import polars as pl

from salesflow.models import Reason
from salesflow.pipeline.routing import dead_letters
from salesflow.validation.report import REJECTED_SCHEMA


def test_each_row_gets_its_own_reasons_and_equal_reasons_are_shared() -> None:
    r1 = {"rule": "range.qty", "field": "qty", "message": "below 0"}
    r2 = {"rule": "presence.email", "field": None, "message": "missing"}
    rejected = pl.DataFrame(
        {
            "_record": [1, 2, 3, 4, 5],
            "_key": ["a", None, "c", "d", "e"],
            "raw": ['{"qty": "-1"}', "not json", "{}", '{"qty": "-2"}', "[1]"],
            "reasons": [[r1, r2], [], None, [r1], [r2, r2]],
        },
        schema=REJECTED_SCHEMA,
    )
    letters = dead_letters("orders", "inbox/orders/a.csv", 4, rejected)
    assert [x.id for x in letters] == ["4:1", "4:2", "4:3", "4:4", "4:5"]
    assert [x.raw for x in letters] == [
        {"qty": "-1"},
        {"_raw": "not json"},
        {},
        {"qty": "-2"},
        {"_raw": [1]},
    ]
    one, two = Reason("range.qty", "qty", "below 0"), Reason("presence.email", None, "missing")
    assert [x.reasons for x in letters] == [[one, two], [], [], [one], [two, two]]
    assert letters[0].reasons[0] is letters[3].reasons[0]  # frozen, so shared
    assert letters[0].reasons is not letters[3].reasons  # each letter's own list
    assert letters[0].created_at == letters[4].created_at
    assert dead_letters("orders", "x", 4, rejected.clear()) == []

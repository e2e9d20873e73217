"""Object keys cannot escape the bucket; lineage keys round-trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from salesflow import layout
from salesflow.errors import InvalidKeyError
from salesflow.models import FileRecord
from salesflow.pipeline.state import StepState, inbox_key_of, lineage_key


@pytest.mark.parametrize(
    "key", ["", "../x", "/etc/passwd", "inbox/../../x", "a/./b", "a\x00b", "a\\b", "C:/x"]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        layout.check_key(key)


def test_archive_and_lake_layout() -> None:
    when = datetime(2024, 3, 9, tzinfo=UTC)
    assert (
        layout.archive_key("inbox/orders/a/b.csv", "orders", ok=True, when=when)
        == "processed/year=2024/month=03/orders/a/b.csv"
    )
    assert layout.archive_key("inbox/x.csv", "orders", ok=False, when=when).startswith(
        "failed/year=2024/month=03/orders/"
    )
    assert layout.lake_key("orders", 2024, 3, 7, 2) == (
        "lake/orders/year=2024/month=03/part-000000000007-00002.parquet"
    )
    assert layout.inbox_dataset("inbox/orders/x.csv") == "orders"
    assert layout.inbox_dataset("inbox/x.csv") is None


def test_lineage_keys_round_trip() -> None:
    record = FileRecord(
        key=lineage_key("inbox/a#b.csv", 7, taken=True), sha256="", size=0, dataset="d", seq=7
    )
    assert inbox_key_of(record) == "inbox/a#b.csv"
    plain = FileRecord(key="inbox/a#7.csv", sha256="", size=0, dataset="d", seq=7)
    assert inbox_key_of(plain) == "inbox/a#7.csv"
    state = StepState.of(record, "inbox/a#b.csv")
    assert StepState.from_dict(state.to_dict() | {"extra": 1}) == state

"""The bucket layout: keys cannot escape it; archive keys are unique per file version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from salesflow import layout
from salesflow.errors import InvalidKeyError
from salesflow.models import FileRecord
from salesflow.pipeline.state import StepState

WHEN = datetime(2024, 3, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "key", ["", "../x", "/etc/passwd", "inbox/../../x", "a/./b", "a\x00b", "a\\b", "C:/x"]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        layout.check_key(key)


def test_same_named_files_never_share_an_archive_key() -> None:
    first = layout.archive_key_for(
        "inbox/orders_json/v1/orders.json", "orders_json", 1, ok=True, when=WHEN
    )
    second = layout.archive_key_for(
        "inbox/orders_json/v2/orders.json", "orders_json", 2, ok=True, when=WHEN
    )
    again = layout.archive_key_for(
        "inbox/orders_json/v1/orders.json", "orders_json", 3, ok=True, when=WHEN
    )
    assert len({first, second, again}) == 3
    assert first == "processed/year=2024/month=03/orders_json/v1/000000000001-orders.json"
    failed = layout.archive_key_for("inbox/x.csv", "orders", 9, ok=False, when=WHEN)
    assert failed == "failed/year=2024/month=03/orders/000000000009-x.csv"


def test_a_name_ending_like_a_sequence_number_is_just_a_name() -> None:
    keys = {
        layout.archive_key_for("inbox/a#7.csv", "orders", seq, ok=True, when=WHEN) for seq in (7, 8)
    }
    assert len(keys) == 2


@pytest.mark.parametrize(
    ("key", "dataset", "source"),
    [
        ("inbox/online_retail/2010/dec.csv", "online_retail", "2010/dec.csv"),
        ("inbox/online-retail/dec.csv", "online_retail", "dec.csv"),
        ("inbox/dec.csv", "online_retail", "dec.csv"),
        ("inbox/other/dec.csv", "online_retail", "other/dec.csv"),
        ("redrive/online_retail/r.csv", "online_retail", "redrive/online_retail/r.csv"),
    ],
)
def test_source_name_is_the_name_below_the_dataset_folder(
    key: str, dataset: str, source: str
) -> None:
    assert layout.source_name(key, dataset) == source


@pytest.mark.parametrize(
    ("key", "temporary"),
    [
        ("inbox/a.csv.part", True),
        ("inbox/a.csv.tmp", True),
        ("inbox/a.csv~", True),
        ("inbox/a.csv.crdownload", True),
        ("inbox/.a.csv", True),
        ("inbox/.hidden/a.csv", True),
        ("inbox/a.csv", False),
        ("inbox/parts/a.csv", False),
    ],
)
def test_temporary_names(key: str, temporary: bool) -> None:
    assert layout.is_temporary(key) is temporary


def test_lake_and_staging_keys() -> None:
    path = layout.lake_key("orders", 2024, 3, 7, 2)
    assert path == "lake/orders/year=2024/month=03/part-000000000007-00002.parquet"
    staged = layout.staging_key(path)
    assert staged == "lake/orders/year=2024/month=03/_part-000000000007-00002.parquet.staged"
    # beside its final path (publish is a rename in one folder), hidden from directory readers
    assert not staged.endswith(".parquet") and staged.rpartition("/")[2].startswith("_")


def test_step_state_round_trips() -> None:
    record = FileRecord(
        key="inbox/a#b.csv", sha256="", size=0, dataset="d", seq=7, days=["2024-01-02"]
    )
    state = StepState.of(record)
    assert StepState.from_dict(state.to_dict() | {"extra": 1}) == state
    assert state.day_dates[0].isoformat() == "2024-01-02"

"""DynamoRecordStore against the emulator: upsert by seq, read by day (Query), drop and
restore, the lake fragments, and writes that survive injected throttling."""

from __future__ import annotations

import io
import random
from datetime import UTC, date, datetime
from typing import Any

import boto3
import polars as pl
import pytest

from salesflow.adapters.aws.records import DynamoRecordStore
from salesflow.adapters.aws.retry import Backoff
from salesflow.adapters.aws.s3 import S3ObjectStore
from salesflow.errors import TransientError
from salesflow.layout import lake_key
from salesflow.ports import RecordStore
from tests.fixtures.moto_server import MotoServer
from tests.integration.aws.spy import Spy, client_error
from tests.integration.aws.tables import create_tables

pytestmark = pytest.mark.aws
D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 4, 5)
NO_WAIT = Backoff(max_attempts=8, sleep=lambda _s: None)


def orders(keys: list[str], days: list[date], qty: int) -> pl.DataFrame:
    n = len(keys)
    return pl.DataFrame(
        {
            "order_id": keys,
            "qty": [qty] * n,
            "amount": [qty * 1.25] * n,
            "created_at": [datetime(d.year, d.month, d.day, 9, tzinfo=UTC) for d in days],
            "email": [None if i % 2 else f"u{i}@example.com" for i in range(n)],
            "_key": keys,
            "_day": days,
        },
        schema_overrides={"created_at": pl.Datetime("us", "UTC")},
    )


class Env:
    def __init__(self, hooks: dict[str, Any] | None = None, workers: int = 4) -> None:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="lake")
        self.store = S3ObjectStore(s3, "lake")
        self.names = create_tables(boto3.client("dynamodb"))
        self.spy = Spy(boto3.client("dynamodb"), hooks)
        self.records = DynamoRecordStore(
            self.spy,
            self.names.records,
            self.store,
            backoff=NO_WAIT,
            workers=workers,  # type: ignore[arg-type]
        )


@pytest.fixture
def env(aws_env: MotoServer) -> Env:
    return Env()


def current(
    records: RecordStore, dataset: str = "orders_json", **kw: Any
) -> dict[str, tuple[int, int]]:
    frame = records.read(dataset, **kw)
    return {k: (s, q) for k, s, q in frame.select("_key", "_seq", "qty").iter_rows()}


def test_is_a_record_store(env: Env) -> None:
    assert isinstance(env.records, RecordStore)
    assert env.records.meta_table == env.names.meta


def test_write_then_read_round_trips_typed_columns(env: Env) -> None:
    frame = orders(["O1", "O2", "O3"], [D1, D1, D3], qty=2)
    env.records.write("orders_json", 5, frame)
    back = env.records.read("orders_json").sort("_key")
    assert back.schema["created_at"] == pl.Datetime("us", "UTC")
    assert back.drop("_seq").equals(frame.sort("_key").select(back.drop("_seq").columns))
    assert back["_seq"].to_list() == [5, 5, 5]
    assert env.records.count_by_seq("orders_json") == {5: 3}


def test_older_seq_never_overwrites_newer(env: Env) -> None:
    env.records.write("orders_json", 7, orders(["O1", "O2"], [D1, D1], qty=7))
    env.records.write("orders_json", 3, orders(["O2", "O3"], [D1, D2], qty=3))  # late, older file
    env.records.write("orders_json", 9, orders(["O1"], [D2], qty=9))  # a correction moves O1 to D2
    assert current(env.records) == {"O1": (9, 9), "O2": (7, 7), "O3": (3, 3)}
    assert env.records.count_by_seq("orders_json") == {7: 2, 3: 2, 9: 1}
    assert env.spy.calls["put_item"] >= 1  # the correction of O1 was a conditional put


def test_read_by_day_is_a_query_on_the_index(env: Env) -> None:
    env.records.write("orders_json", 1, orders(["O1", "O2", "O3"], [D1, D2, D3], qty=1))
    env.records.write("products", 2, orders(["O1"], [D1], qty=5))  # same key, other dataset
    env.records.write("orders_json", 4, orders(["O2"], [D3], qty=4))  # O2 moved away from D2
    scans = env.spy.calls["scan"]
    assert current(env.records, days=[D1, D2]) == {"O1": (1, 1)}
    picked = env.records.read("orders_json", days=[D3], columns=["qty"])
    assert picked.columns == ["_key", "_seq", "_day", "qty"]
    assert sorted(picked["_key"].to_list()) == ["O2", "O3"]
    assert env.spy.calls["scan"] == scans
    assert {k["IndexName"] for k in env.spy.kwargs["query"] if "IndexName" in k} == {"by_day"}
    assert current(env.records, "products") == {"O1": (2, 5)}


def test_reading_an_unknown_dataset_is_empty_with_the_meta_columns(env: Env) -> None:
    empty = env.records.read("orders", columns=["status"])
    assert empty.columns == ["_key", "_seq", "_day", "status"] and empty.is_empty()
    assert env.records.count_by_seq("orders") == {}


def test_lake_fragments_are_partitioned_parquet(env: Env) -> None:
    env.records.write("orders_json", 12, orders(["O1", "O2"], [D1, D3], qty=1), part=2)
    march = env.store.get_bytes(lake_key("orders_json", 2024, 3, 12, 2))
    frame = pl.read_parquet(io.BytesIO(march))
    assert frame["_key"].to_list() == ["O1"] and frame["_seq"].to_list() == [12]
    assert env.store.exists(lake_key("orders_json", 2024, 4, 12, 2))
    assert pl.read_parquet_metadata(io.BytesIO(march))["salesflow.rows"] == "1"


def test_rewriting_a_part_replaces_it(env: Env) -> None:
    env.records.write("orders_json", 1, orders(["O1"], [D1], qty=1))
    env.records.write("orders_json", 2, orders(["O1", "O2"], [D1, D3], qty=2))
    env.records.write("orders_json", 2, orders(["O2"], [D2], qty=3))  # same (seq, part) again
    assert current(env.records) == {"O1": (1, 1), "O2": (2, 3)}  # O1's older version is back
    assert not env.store.exists(lake_key("orders_json", 2024, 4, 2, 0))
    assert env.records.count_by_seq("orders_json") == {1: 1, 2: 1}


def test_drop_removes_a_file_and_restores_what_it_replaced(env: Env) -> None:
    env.records.write("orders_json", 1, orders(["O1", "O2"], [D1, D1], qty=1))
    env.records.write("orders_json", 2, orders(["O2", "O3"], [D2, D2], qty=2), part=0)
    env.records.write("orders_json", 2, orders(["O4"], [D3], qty=2), part=1)
    env.records.write("orders_json", 3, orders(["O3"], [D1], qty=3))
    env.records.drop("orders_json", 2)
    assert current(env.records) == {"O1": (1, 1), "O2": (1, 1), "O3": (3, 3)}
    assert current(env.records, days=[D1]) == {"O1": (1, 1), "O2": (1, 1), "O3": (3, 3)}
    assert env.records.count_by_seq("orders_json") == {1: 2, 3: 1}
    assert [
        o.key for o in env.store.list("lake/orders_json/") if "part-000000000002" in o.key
    ] == []
    env.records.drop("orders_json", 2)  # idempotent
    env.records.drop("orders_json", 99)
    assert current(env.records) == {"O1": (1, 1), "O2": (1, 1), "O3": (3, 3)}


def test_duplicate_keys_in_one_frame_keep_the_last_row(env: Env) -> None:
    env.records.write(
        "orders_json", 1, orders(["O1", "O1"], [D1, D2], qty=1).with_columns(qty=pl.Series([1, 2]))
    )
    assert current(env.records) == {"O1": (1, 2)}


def test_frames_without_key_or_day_are_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="_day"):
        env.records.write("orders_json", 1, pl.DataFrame({"_key": ["a"]}))


def flaky_batch_writes(seed: int) -> Any:
    """Some batch_write_item calls are throttled; others process only part of the batch."""
    rng = random.Random(seed)

    def hook(n: int, kwargs: dict[str, Any], real: Any) -> Any:
        roll = rng.random()
        if roll < 0.3:
            raise client_error("ProvisionedThroughputExceededException", "BatchWriteItem")
        if roll < 0.6:
            ((table, requests),) = kwargs["RequestItems"].items()
            keep = max(1, len(requests) // 3)
            real(RequestItems={table: requests[:keep]})
            return {"UnprocessedItems": {table: requests[keep:]}} if requests[keep:] else {}
        return real(**kwargs)

    return hook


def test_throttled_and_partial_batches_lose_nothing(aws_env: MotoServer) -> None:
    env = Env(hooks={"batch_write_item": flaky_batch_writes(seed=7)})
    keys = [f"O{n:04d}" for n in range(300)]
    days = [D1, D2, D3] * 100
    env.records.write("orders_json", 2, orders(keys, days, qty=2))
    assert env.spy.calls["batch_write_item"] > 300 // 25  # the retries really happened
    stored = env.records.read("orders_json")
    assert stored.height == 300 and set(stored["_seq"]) == {2}
    assert env.records.read("orders_json", days=[D1]).height == 100


def test_throttling_that_never_ends_raises_transient(aws_env: MotoServer) -> None:
    def always(n: int, kwargs: dict[str, Any], real: Any) -> Any:
        ((table, requests),) = kwargs["RequestItems"].items()
        return {"UnprocessedItems": {table: requests}}

    env = Env(hooks={"batch_write_item": always}, workers=1)
    with pytest.raises(TransientError, match="unprocessed items"):
        env.records.write("orders_json", 1, orders(["O1"], [D1], qty=1))


def test_unprocessed_keys_of_batch_gets_are_retried(aws_env: MotoServer) -> None:
    def partial(n: int, kwargs: dict[str, Any], real: Any) -> Any:
        ((table, spec),) = kwargs["RequestItems"].items()
        if n == 1 and len(spec["Keys"]) > 1:
            head, tail = spec["Keys"][:1], spec["Keys"][1:]
            answer = real(RequestItems={table: {**spec, "Keys": head}})
            answer["UnprocessedKeys"] = {table: {**spec, "Keys": tail}}
            return answer
        return real(**kwargs)

    env = Env(workers=1)
    env.records.write("orders_json", 5, orders(["O1", "O2", "O3"], [D1] * 3, qty=5))
    env.spy.hooks["batch_get_item"] = partial
    env.records.write("orders_json", 4, orders(["O1", "O2", "O3"], [D1] * 3, qty=4))
    assert current(env.records) == {"O1": (5, 5), "O2": (5, 5), "O3": (5, 5)}


def test_previous_days_is_a_batch_get_of_the_keys(env: Env) -> None:
    env.records.write("orders_json", 1, orders(["O1", "O2"], [D1, D2], qty=1))
    env.records.write("orders_json", 2, orders(["O1"], [D3], qty=2))
    got = env.records.previous_days("orders_json", pl.Series(["O1", "O2", "O9"]), before_seq=3)
    assert dict(got.iter_rows()) == {"O1": D3, "O2": D2}

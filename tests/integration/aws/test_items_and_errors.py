"""Frame <-> item conversion for every column type, and botocore error mapping (no emulator)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import polars as pl
import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError

from salesflow.adapters.aws.errors import is_throttling, is_transient, translate
from salesflow.adapters.aws.items import (
    encode,
    frame_to_items,
    items_to_frame,
    schema_bytes,
    schema_from_bytes,
)
from salesflow.adapters.aws.retry import Backoff, call
from salesflow.errors import TerminalError, TransientError
from tests.integration.aws.spy import client_error


def test_every_column_type_round_trips() -> None:
    frame = pl.DataFrame(
        {
            "i": [1, None, -3],
            "f": [0.1, None, 1e-30],
            "dec": [Decimal("1.50"), None, Decimal("-2.25")],
            "b": [True, False, None],
            "s": ["a", "", None],
            "cat": ["x", "y", None],
            "d": [date(2024, 1, 2), None, date(1999, 12, 31)],
            "ts": [datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC), None, None],
            "naive": [datetime(2024, 1, 2, 3, 4), None, None],
            "t": [time(13, 14, 15), None, None],
            "bin": [b"\x00\x01", None, b""],
            "l": [[1, 2], None, []],
            "st": [{"a": 1, "b": "x"}, None, {"a": None, "b": "é"}],
            "n": [None, None, None],
        },
        schema_overrides={
            "dec": pl.Decimal(10, 2),
            "cat": pl.Categorical(),
            "ts": pl.Datetime("us", "UTC"),
            "n": pl.Null(),
        },
    )
    schema = schema_from_bytes(schema_bytes(frame.schema))
    assert schema == dict(frame.schema)
    back = items_to_frame(frame_to_items(frame), schema)
    assert back.schema == frame.schema
    assert back.to_dicts() == frame.to_dicts()


def test_nulls_and_non_finite_floats_are_left_out() -> None:
    items = frame_to_items(
        pl.DataFrame({"f": [float("nan"), float("inf"), 2.5], "s": [None, "a", "b"]})
    )
    assert items == [{}, {"s": {"S": "a"}}, {"f": {"N": "2.5"}, "s": {"S": "b"}}]
    assert encode(None, pl.Int64()) is None
    assert encode(0.1 + 0.2, pl.Float64()) == {"N": "0.30000000000000004"}
    assert items_to_frame([], {}).is_empty()
    assert items_to_frame([{"x": {"NULL": True}}], {"x": pl.Int64()})["x"].to_list() == [None]


def test_error_mapping() -> None:
    throttled = client_error("ProvisionedThroughputExceededException", "PutItem")
    assert is_throttling(throttled) and is_transient(throttled)
    assert isinstance(translate(throttled, "put"), TransientError)
    server = client_error("Weird", "PutItem", status=503)
    assert not is_throttling(server) and is_transient(server)
    denied = client_error("AccessDeniedException", "PutItem")
    error = translate(denied, "dynamodb put into t")
    assert isinstance(error, TerminalError) and "AccessDeniedException" in str(error)
    offline = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert is_transient(offline) and isinstance(translate(offline, "s3 get"), TransientError)
    assert not is_transient(ParamValidationError(report="bad"))
    assert not is_throttling(ValueError("x"))


def test_call_retries_transient_errors_then_gives_up() -> None:
    waits: list[float] = []
    backoff = Backoff(max_attempts=4, base=0.1, cap=0.25, sleep=waits.append, jitter=lambda: 1.0)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise client_error("ThrottlingException", "Query")
        return "done"

    assert call(backoff, "query", flaky) == "done"
    assert waits == [0.1, 0.2]  # exponential, capped by ``cap`` later

    def never() -> None:
        raise client_error("ThrottlingException", "Query")

    with pytest.raises(TransientError, match="after 4 attempts"):
        call(backoff, "query", never)
    assert waits[2:] == [0.1, 0.2, 0.25]
    with pytest.raises(TerminalError):
        call(
            backoff,
            "query",
            lambda: (_ for _ in ()).throw(client_error("ValidationException", "Query")),
        )


def test_full_jitter_stays_within_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=3.0)
    assert all(0 <= backoff.delay(n) <= 3.0 for n in range(10))

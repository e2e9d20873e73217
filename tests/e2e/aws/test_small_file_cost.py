"""A small file costs the same AWS calls whether 10k or 1M records are stored.

Two stacks on the emulator each get one big sale_events file through the real state machine
(the same ValidateLoad and KPI tasks as any file), 10,000 records in one and 1,000,000 in the
other, spread over the same six months with random 128-bit ids (as the live feed makes), so
the two lakes differ in size only, not in shape. Then one 20-sale file lands in each inbox:
its S3 event goes to the detector, the execution runs, and every AWS call it causes is
counted by service and operation (``calls.py``), with the DynamoDB items and read units read
and the bytes S3 GetObject returned. Each ECS task starts from a fresh runtime, as a Fargate
task does (no key cache or schema cache carried over from the big load).

The small file's sales fall in the busiest month and their random ids inside every stored
fragment's key range: the zone maps prune nothing, the worst case for the lake.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest

from salesflow.config import Settings
from salesflow.entrypoints import runtime as runtimes
from salesflow.entrypoints import tasks
from salesflow.models import FileStatus
from tests.e2e.aws.calls import CallCounter
from tests.e2e.aws.harness import (
    Stack,
    deploy_stack,
    executions,
    history,
    invoke,
    lineage_of,
    run_files,
    s3_notification,
    wait_for_executions,
)
from tests.fixtures.moto_server import MotoServer

pytestmark = pytest.mark.aws

STORED = (10_000, 1_000_000)
SMALL_ROWS = 20
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_MINUTES = 181 * 24 * 60  # January to June 2025
TOLERANCE = 0.10
# docs/aws.md's figures: SALESFLOW_SMALL_FILE_REPORT=out.json pytest tests/e2e/aws/test_small_...
REPORT = os.environ.get("SALESFLOW_SMALL_FILE_REPORT")


@dataclass(frozen=True)
class Measured:
    """What one small file cost on a stack holding ``stored`` records."""

    stored: int
    calls: dict[str, int]
    items_read: dict[str, int]
    read_units: dict[str, float]
    bytes_read: int
    transitions: int
    fragments: int

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_read_units(self) -> float:
        return sum(self.read_units.values())


def _sales(rows: int, seed: int, *, month: int | None = None) -> pl.DataFrame:
    """``rows`` sales with random 32-hex-digit ids, over the six months (or in ``month``)."""
    rng = random.Random(seed)
    if month is None:
        minutes = [rng.randrange(SPAN_MINUTES) for _ in range(rows)]
        stamps = [START + timedelta(minutes=m) for m in minutes]
    else:
        first = START.replace(month=month)
        stamps = [first + timedelta(minutes=rng.randrange(27 * 24 * 60)) for _ in range(rows)]
    return pl.DataFrame(
        {
            "sale_id": [f"{rng.getrandbits(128):032x}" for _ in range(rows)],
            "product": [f"product-{n % 97}" for n in range(rows)],
            "category": ["Office"] * rows,
            "price": [12.5] * rows,
            "quantity": [1 + n % 3 for n in range(rows)],
            "timestamp": [s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in stamps],
            "currency": ["EUR"] * rows,
        }
    )


def _preload(stack: Stack, rows: int, folder: Path) -> None:
    """Store ``rows`` records through the state machine: one big file, one execution."""
    path = folder / f"preload-{rows}.csv"
    _sales(rows, seed=rows).write_csv(path)
    key = "inbox/sale_events/preload.csv"
    boto3.client("s3").upload_file(str(path), stack.bucket, key)
    done = run_files(stack, [{"key": key, "dataset": "sale_events"}], "preload")
    assert done["status"] == "SUCCEEDED", done
    assert lineage_of(stack)[key].valid == rows


def _small_file(stack: Stack, counter: CallCounter) -> Measured:
    """One 20-sale file of the busiest month, from its S3 event to the end of its execution."""
    key = "inbox/sale_events/small.jsonl"
    body = b"".join(
        json.dumps(row).encode() + b"\n" for row in _sales(SMALL_ROWS, seed=7, month=3).to_dicts()
    )
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)
    counter.reset()
    counter.enabled = True
    with counter.including_main():  # the invocation S3 would make
        invoke(stack.functions["detector"], s3_notification(stack.bucket, key, body))
    statuses = wait_for_executions(stack.state_machine_arn)
    counter.enabled = False
    assert statuses == ["SUCCEEDED", "SUCCEEDED"], statuses
    record = lineage_of(stack)[key]
    assert record.status == FileStatus.SUCCESS and record.valid == SMALL_ROWS, record
    (run,) = [e for e in executions(stack.state_machine_arn) if e["name"] != "preload"]
    entered = [e for e in history(run["executionArn"]) if e["type"].endswith("StateEntered")]
    snapshot = counter.snapshot()
    return Measured(
        stored=0,
        calls=snapshot["calls"],
        items_read=snapshot["items_read"],
        read_units=snapshot["read_units"],
        bytes_read=sum(snapshot["bytes_read"].values()),
        transitions=len(entered),
        fragments=_fragments(stack),
    )


def _fragments(stack: Stack) -> int:
    from salesflow.adapters import build_backend

    backend = build_backend(stack.settings())
    try:
        return len(backend.lake.visible("sale_events"))
    finally:
        backend.close()


@pytest.fixture
def fresh_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ECS task builds its runtime anew, as a Fargate task's process does."""
    from salesflow.adapters import build_backend

    monkeypatch.setattr(runtimes, "_runtimes", {})

    def fresh(function: str = "") -> runtimes.Runtime:
        settings = Settings()
        return runtimes.Runtime(settings, build_backend(settings))

    monkeypatch.setattr(tasks, "runtime", fresh)


@pytest.fixture
def measured(
    moto_server: MotoServer,
    emulated: None,
    lambda_zip: Path,
    fresh_tasks: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[Measured]]:
    moto_server.reset()
    counter = CallCounter()
    counter.install(monkeypatch)
    counter.enabled = False
    found = []
    for stored in STORED:
        stack = deploy_stack(f"cost{stored}", package=lambda_zip)
        _preload(stack, stored, tmp_path)
        small = _small_file(stack, counter)
        found.append(dataclasses.replace(small, stored=stored))
    yield found
    moto_server.reset()


def _within(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(a, b)


def test_a_small_file_costs_the_same_calls_with_10k_or_1m_records_stored(
    measured: list[Measured],
) -> None:
    few, many = measured
    report: dict[int, Any] = {m.stored: dataclasses.asdict(m) for m in measured}
    if REPORT:
        Path(REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    assert few.fragments == many.fragments  # the same shape: one month's fragment each
    assert _within(few.total_calls, many.total_calls), report
    for operation in few.calls.keys() | many.calls.keys():
        assert _within(few.calls.get(operation, 0), many.calls.get(operation, 0)), operation
    assert _within(sum(few.items_read.values()), sum(many.items_read.values())), report
    assert _within(few.total_read_units, many.total_read_units), report
    assert _within(few.transitions, many.transitions), report
    # What does grow: the bytes of the fragments read (the month's, for its KPIs and for the
    # key check), not the number of requests; docs/aws.md gives both.

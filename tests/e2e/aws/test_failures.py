"""Retry and Catch of the real state machine, with faults injected into the emulator.

A transient fault (S3 answering 503 to every read of one object during the first attempt)
must be retried by Step Functions and end in SUCCESS; a terminal fault in the KPI step must
take every file of the stage through MarkFilesAsFailed to failed/ with lineage FAILED.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from salesflow.models import FileStatus
from tests.e2e.aws.harness import Stack, history, keys_under, lineage_of, run_files
from tests.fixtures.moto_lambda import InvocationLog

pytestmark = pytest.mark.aws

SALES = (
    b'{"sale_id": "s-%d", "product": "Mug", "price": 12.5, "quantity": 2,'
    b' "timestamp": "2026-01-05T10:00:00Z"}\n'
)


def _upload(stack: Stack, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)


@pytest.fixture
def s3_unavailable_for(
    lambda_dispatch: InvocationLog, monkeypatch: pytest.MonkeyPatch
) -> Iterator[set[str]]:
    """Keys whose reads S3 answers with 503 until validate_load has run once for them."""
    from moto.core.exceptions import _RESTError
    from moto.s3.models import S3Backend

    class ServiceUnavailable(_RESTError):
        code = 503

        def __init__(self) -> None:
            super().__init__("ServiceUnavailable", "Please reduce your request rate.")

    keys: set[str] = set()
    original = S3Backend.head_object

    def head_object(self: Any, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        tried = any(c.event.get("key") == key for c in lambda_dispatch.of(".validate_load"))
        if key in keys and not tried:
            raise ServiceUnavailable()
        return original(self, bucket, key, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "head_object", head_object)
    yield keys


@pytest.fixture
def kpi_writes_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB refuses writes to the aggregates table with a non-retryable error."""
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.batch_write_item

    def batch_write_item(handler: Any) -> Any:
        if any(t.endswith("-aggregates") for t in handler.body.get("RequestItems", {})):
            raise MockValidationException("injected: the aggregates table refuses writes")
        return original(handler)

    monkeypatch.setattr(DynamoHandler, "batch_write_item", batch_write_item)


def test_a_transient_failure_is_retried_by_the_state_machine(
    module_stack: Stack, lambda_dispatch: InvocationLog, s3_unavailable_for: set[str]
) -> None:
    key = "inbox/sale_events/flaky.jsonl"
    _upload(module_stack, key, SALES % 1)
    s3_unavailable_for.add(key)
    execution = run_files(module_stack, [{"key": key, "dataset": "sale_events"}], "flaky")
    assert execution["status"] == "SUCCEEDED"
    attempts = [c.error_type for c in lambda_dispatch.of(".validate_load") if c.event["key"] == key]
    assert attempts == ["TransientError", None]
    failed = [e for e in history(execution["executionArn"]) if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["TransientError"]
    assert lineage_of(module_stack)[key].status == FileStatus.SUCCESS
    assert [k.rpartition("/")[2] for k in keys_under(module_stack.bucket, "processed/")] == [
        "flaky.jsonl"
    ]


def test_a_failed_kpi_step_marks_every_file_of_the_stage_failed(
    module_stack: Stack, lambda_dispatch: InvocationLog, kpi_writes_refused: None
) -> None:
    from salesflow.adapters import build_backend

    keys = [f"inbox/sale_events/kpi-{i}.jsonl" for i in range(2)]
    for i, key in enumerate(keys):
        _upload(module_stack, key, SALES % (100 + i))
    files = [{"key": k, "dataset": "sale_events"} for k in keys]
    execution = run_files(module_stack, files, "kpi-fails")
    assert execution["status"] == "SUCCEEDED"
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in history(execution["executionArn"])
        if e["type"].endswith("StateEntered")
    ]
    assert "MarkFilesAsFailed" in entered and "ArchiveFiles" not in entered
    lineage = lineage_of(module_stack)
    for key in keys:
        assert lineage[key].status == FileStatus.FAILED
        assert "TerminalError" in (lineage[key].error or "")
    failed = keys_under(module_stack.bucket, "failed/")
    assert sorted(k.rpartition("/")[2] for k in failed) == ["kpi-0.jsonl", "kpi-1.jsonl"]
    backend = build_backend(module_stack.settings())
    try:
        stored = backend.records.read("sale_events", columns=[])
    finally:
        backend.close()
    assert not set(stored.get_column("_key").to_list()) & {"s-100", "s-101"}

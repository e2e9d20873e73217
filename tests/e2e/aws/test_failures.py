"""Retry and Catch of the real state machine, with faults injected into the emulator.

- A transient fault (S3 answering 503 to every read of one object during the first task) ends
  the task with exit code 75; Step Functions retries it and the file succeeds.
- A terminal fault in the KPI step (the aggregates table refusing writes) is handled inside
  the task: every file of the stage goes to failed/ with lineage FAILED, its records undone.
- A task that crashes every time (the OOM killer's exit code 137: a poison file) is retried,
  then Catch sends the file through MarkFileAsFailed (a light Lambda) to failed/.
- A KPI task that crashes every time sends the whole stage through MarkFilesAsFailed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from salesflow.models import FileStatus
from tests.e2e.aws.harness import Stack, history, keys_under, lineage_of, run_files
from tests.fixtures.moto_ecs import TaskLog

pytestmark = pytest.mark.aws

SALES = (
    b'{"sale_id": "s-%d", "product": "Mug", "price": 12.5, "quantity": 2,'
    b' "timestamp": "2026-01-05T10:00:00Z"}\n'
)
OOM_KILLED = 137


def _upload(stack: Stack, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)


def _entered(execution: dict[str, Any]) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in history(execution["executionArn"])
        if e["type"].endswith("StateEntered")
    ]


@pytest.fixture
def tasks(ecs_dispatch: TaskLog) -> Iterator[TaskLog]:
    ecs_dispatch.clear()
    yield ecs_dispatch
    ecs_dispatch.clear()


@pytest.fixture
def s3_unavailable_for(tasks: TaskLog, monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Keys whose reads S3 answers with 503 until a validate_load task has run for them."""
    from moto.core.exceptions import _RESTError
    from moto.s3.models import S3Backend

    class ServiceUnavailable(_RESTError):
        code = 503

        def __init__(self) -> None:
            super().__init__("ServiceUnavailable", "Please reduce your request rate.")

    keys: set[str] = set()
    original = S3Backend.head_object

    def head_object(self: Any, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        tried = any(r.arg("--key") == key for r in tasks.of("validate_load"))
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


def _records(stack: Stack, dataset: str) -> set[str]:
    from salesflow.adapters import build_backend

    backend = build_backend(stack.settings())
    try:
        return set(backend.records.read(dataset, columns=[]).get_column("_key").to_list())
    finally:
        backend.close()


def test_a_transient_failure_is_retried_by_the_state_machine(
    module_stack: Stack, tasks: TaskLog, s3_unavailable_for: set[str]
) -> None:
    key = "inbox/sale_events/flaky.jsonl"
    _upload(module_stack, key, SALES % 1)
    s3_unavailable_for.add(key)
    execution = run_files(module_stack, [{"key": key, "dataset": "sale_events"}], "flaky")
    assert execution["status"] == "SUCCEEDED"
    assert [r.exit_code for r in tasks.of("validate_load")] == [75, 0]
    failed = [e for e in history(execution["executionArn"]) if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["States.TaskFailed"]
    assert lineage_of(module_stack)[key].status == FileStatus.SUCCESS
    assert [k.rpartition("/")[2] for k in keys_under(module_stack.bucket, "processed/")] == [
        "flaky.jsonl"
    ]


def test_a_failed_kpi_step_fails_every_file_of_the_stage_inside_its_task(
    module_stack: Stack, tasks: TaskLog, kpi_writes_refused: None
) -> None:
    keys = [f"inbox/sale_events/kpi-{i}.jsonl" for i in range(2)]
    for i, key in enumerate(keys):
        _upload(module_stack, key, SALES % (100 + i))
    files = [{"key": k, "dataset": "sale_events"} for k in keys]
    execution = run_files(module_stack, files, "kpi-fails")
    assert execution["status"] == "SUCCEEDED"
    assert [r.exit_code for r in tasks.of("aggregate")] == [0]  # decided, not retried
    assert "MarkFilesAsFailed" not in _entered(execution)
    lineage = lineage_of(module_stack)
    for key in keys:
        assert lineage[key].status == FileStatus.FAILED
        assert "KPIs could not be computed" in (lineage[key].error or "")
    failed = keys_under(module_stack.bucket, "failed/")
    assert {"kpi-0.jsonl", "kpi-1.jsonl"} <= {k.rpartition("/")[2] for k in failed}
    assert not _records(module_stack, "sale_events") & {"s-100", "s-101"}


def test_a_task_that_keeps_crashing_sends_its_file_through_mark_file_as_failed(
    module_stack: Stack, tasks: TaskLog
) -> None:
    key = "inbox/sale_events/poison.jsonl"
    _upload(module_stack, key, SALES % 7)
    tasks.crash = lambda command: OOM_KILLED if key in command else None
    execution = run_files(module_stack, [{"key": key, "dataset": "sale_events"}], "poison")
    assert execution["status"] == "SUCCEEDED"
    assert [r.exit_code for r in tasks.of("validate_load")] == [OOM_KILLED] * 3  # 2 retries
    entered = _entered(execution)
    assert entered.count("MarkFileAsFailed") == 1 and "MarkFilesAsFailed" not in entered
    record = lineage_of(module_stack)[key]
    assert record.status == FileStatus.FAILED
    assert record.error == (
        "States.TaskFailed: the container task stopped "
        f"(Essential container in task exited), exit code {OOM_KILLED}"
    )
    assert any(k.endswith("/poison.jsonl") for k in keys_under(module_stack.bucket, "failed/"))
    assert key not in keys_under(module_stack.bucket, "inbox/")


def test_a_kpi_task_that_keeps_crashing_fails_the_stage_through_mark_files_as_failed(
    module_stack: Stack, tasks: TaskLog
) -> None:
    keys = [f"inbox/sale_events/crash-{i}.jsonl" for i in range(2)]
    for i, key in enumerate(keys):
        _upload(module_stack, key, SALES % (200 + i))
    tasks.crash = lambda command: OOM_KILLED if command[0] == "aggregate" else None
    files = [{"key": k, "dataset": "sale_events"} for k in keys]
    execution = run_files(module_stack, files, "kpi-crashes")
    assert execution["status"] == "SUCCEEDED"
    assert [r.exit_code for r in tasks.of("validate_load")] == [0, 0]
    assert len(tasks.of("aggregate")) == 3
    entered = _entered(execution)
    assert "MarkFilesAsFailed" in entered and "Archive" not in entered
    lineage = lineage_of(module_stack)
    for key in keys:
        assert lineage[key].status == FileStatus.FAILED
        assert f"exit code {OOM_KILLED}" in (lineage[key].error or "")
    failed = {k.rpartition("/")[2] for k in keys_under(module_stack.bucket, "failed/")}
    assert {"crash-0.jsonl", "crash-1.jsonl"} <= failed

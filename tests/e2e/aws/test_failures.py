"""Retry and Catch of the real state machine, with faults injected into the emulator.

- A transient fault (S3 answering 503 to every read of one object during the first task) ends
  the task with exit code 75; Step Functions retries it and the file succeeds.
- A terminal fault in the KPI step (the aggregates table refusing writes) fails nothing: the
  stage's files are committed (their records are valid; KPIs are derived), so they stay
  SUCCESS, not settled, in the inbox; the task exits 1, is retried, then the execution fails
  (alarmed). Once the fault is gone, the next run publishes them.
- A task that crashes every time (the OOM killer's exit code 137: a poison file) is retried,
  then Catch sends the file through MarkFileAsFailed (a light Lambda) to failed/.
- A KPI task that crashes every time goes through MarkFilesAsFailed, which fails only files not
  yet committed: the committed ones are published by the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from salesflow.models import FileStatus
from tests.e2e.aws.harness import (
    Stack,
    history,
    keys_under,
    lineage_of,
    refuse_aggregate_writes,
    run_files,
)
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
    """DynamoDB refuses writes to the aggregates table (``refuse_aggregate_writes``)."""
    refuse_aggregate_writes(monkeypatch)


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
    record = lineage_of(module_stack)[key]
    assert (record.status, record.settled) == (FileStatus.SUCCESS, True)
    assert [k.rpartition("/")[2] for k in keys_under(module_stack.bucket, "processed/")] == [
        f"{record.seq:012d}-flaky.jsonl"
    ]


def _left_to_publish(stack: Stack, keys: list[str], error: str) -> None:
    """The files are committed, not failed: SUCCESS, not settled, records kept, in the inbox."""
    lineage = lineage_of(stack)
    for key in keys:
        assert (lineage[key].status, lineage[key].settled) == (FileStatus.SUCCESS, False)
        assert error in (lineage[key].error or "")
    assert set(keys) <= set(keys_under(stack.bucket, "inbox/"))
    archived = keys_under(stack.bucket, "processed/") + keys_under(stack.bucket, "failed/")
    assert not {k.rpartition("-")[2] for k in archived} & {k.rpartition("/")[2] for k in keys}


def _published_by_the_next_run(
    stack: Stack, tasks: TaskLog, files: list[dict[str, Any]], name: str, records: set[str]
) -> None:
    tasks.clear()
    execution = run_files(stack, files, name)
    assert execution["status"] == "SUCCEEDED"
    assert [r.exit_code for r in tasks.of("aggregate")] == [0]
    lineage = lineage_of(stack)
    processed = {k.rpartition("/")[2] for k in keys_under(stack.bucket, "processed/")}
    for file in files:
        record = lineage[file["key"]]
        assert (record.status, record.settled) == (FileStatus.SUCCESS, True)
        assert f"{record.seq:012d}-{file['key'].rpartition('/')[2]}" in processed
    assert records <= _records(stack, "sale_events")
    assert _versions(stack, [f["key"] for f in files]) == [1] * len(files)  # resumed, not redone


def _versions(stack: Stack, keys: list[str]) -> list[int]:
    from salesflow.adapters import build_backend

    backend = build_backend(stack.settings())
    try:
        return [len(backend.tables.list_files(key=key)) for key in keys]
    finally:
        backend.close()


def test_a_failed_kpi_step_leaves_the_committed_files_to_publish_and_fails_the_execution(
    module_stack: Stack,
    tasks: TaskLog,
    kpi_writes_refused: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [f"inbox/sale_events/kpi-{i}.jsonl" for i in range(2)]
    for i, key in enumerate(keys):
        _upload(module_stack, key, SALES % (100 + i))
    files = [{"key": k, "dataset": "sale_events"} for k in keys]
    execution = run_files(module_stack, files, "kpi-fails")
    assert execution["status"] == "FAILED"  # the ExecutionsFailed alarm
    assert [r.exit_code for r in tasks.of("aggregate")] == [1, 1, 1]  # retried twice
    entered = _entered(execution)
    assert "MarkFilesAsFailed" in entered and "StageNotPublished" in entered
    assert "Archive" not in entered
    _left_to_publish(module_stack, keys, "retried later")
    assert {"s-100", "s-101"} <= _records(module_stack, "sale_events")
    monkeypatch.undo()  # the aggregates table takes writes again
    _published_by_the_next_run(module_stack, tasks, files, "kpi-fixed", {"s-100", "s-101"})


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
    assert any(k.endswith("-poison.jsonl") for k in keys_under(module_stack.bucket, "failed/"))
    assert key not in keys_under(module_stack.bucket, "inbox/")


def test_a_kpi_task_that_keeps_crashing_fails_no_committed_file(
    module_stack: Stack, tasks: TaskLog
) -> None:
    keys = [f"inbox/sale_events/crash-{i}.jsonl" for i in range(2)]
    for i, key in enumerate(keys):
        _upload(module_stack, key, SALES % (200 + i))
    tasks.crash = lambda command: OOM_KILLED if command[0] == "aggregate" else None
    files = [{"key": k, "dataset": "sale_events"} for k in keys]
    execution = run_files(module_stack, files, "kpi-crashes")
    assert execution["status"] == "FAILED"
    assert [r.exit_code for r in tasks.of("validate_load")] == [0, 0]
    assert [r.exit_code for r in tasks.of("aggregate")] == [OOM_KILLED] * 3
    entered = _entered(execution)
    assert "MarkFilesAsFailed" in entered and "Archive" not in entered
    _left_to_publish(module_stack, keys, "")
    assert {"s-200", "s-201"} <= _records(module_stack, "sale_events")
    tasks.crash = lambda command: None
    _published_by_the_next_run(module_stack, tasks, files, "kpi-recovered", {"s-200", "s-201"})

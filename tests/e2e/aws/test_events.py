"""The detector's reading of the real event shapes, and the small pure helpers of the handlers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from salesflow.config import Settings
from salesflow.entrypoints.lambdas import (
    Arrival,
    arrivals,
    execution_name,
    failure_message,
    start_execution,
)
from salesflow.entrypoints.runs import plan, read_states, results_prefix, write_state
from salesflow.entrypoints.runtime import Runtime
from salesflow.errors import TerminalError, TransientError
from tests.fixtures.memory import memory_backend

# The shape S3 sends to Lambda (a bucket notification), trimmed to what is read.
S3_NOTIFICATION = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventTime": "2026-03-01T10:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": "salesflow-bucket"},
                "object": {
                    "key": "inbox/orders_json/my+orders%281%29.json",
                    "size": 120,
                    "eTag": "0123abcd",
                    "sequencer": "0061A2B3C4",
                },
            },
        }
    ]
}

# The shape EventBridge delivers for an S3 "Object Created" event.
EVENTBRIDGE_OBJECT_CREATED = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2026-03-01T10:05:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::salesflow-bucket"],
    "detail": {
        "version": "0",
        "bucket": {"name": "salesflow-bucket"},
        "object": {"key": "inbox/products/p%201.csv", "size": 10, "etag": "e1", "sequencer": "S2"},
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "reason": "PutObject",
    },
}

SCHEDULED = {
    "version": "0",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "time": "2026-03-01T10:20:00Z",
    "detail": {},
}


def test_a_bucket_notification_announces_its_decoded_key() -> None:
    assert arrivals(S3_NOTIFICATION) == [
        Arrival(
            "inbox/orders_json/my orders(1).json",
            "0061A2B3C4",
            datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        )
    ]


def test_an_eventbridge_object_created_announces_its_decoded_key() -> None:
    assert arrivals(EVENTBRIDGE_OBJECT_CREATED) == [
        Arrival("inbox/products/p 1.csv", "S2", datetime(2026, 3, 1, 10, 5, tzinfo=UTC))
    ]


def test_timers_and_unknown_events_announce_nothing() -> None:
    assert arrivals(SCHEDULED) == []
    assert arrivals({"source": "salesflow.timer"}) == []
    assert arrivals({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}) == []


def test_an_event_without_a_time_is_dated_now() -> None:
    event = {"Records": [{"s3": {"object": {"key": "inbox/a/b.csv", "eTag": "x"}}}]}
    (arrival,) = arrivals(event)
    assert arrival.token == "x"
    assert abs((datetime.now(UTC) - arrival.at).total_seconds()) < 5


def test_execution_names_are_stable_valid_and_distinct() -> None:
    name = execution_name("batch", ["inbox/products/a.csv", "inbox/orders/b.csv"])
    assert name == execution_name("batch", ["inbox/products/a.csv", "inbox/orders/b.csv"])
    assert name != execution_name("batch", ["inbox/products/a.csv"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)


def test_a_batch_becomes_one_stage_per_dataset_in_order() -> None:
    backend = memory_backend()
    files = [
        ("inbox/products/p1.csv", "products"),
        ("inbox/products/p2.csv", "products"),
        ("inbox/orders/o.csv", "orders"),
        ("inbox/order_items/i.csv", "order_items"),
    ]
    stages = plan(backend.store, "batch-1", files)["stages"]
    assert [s["dataset"] for s in stages] == ["products", "orders", "order_items"]
    assert stages[0] == {
        "dataset": "products",
        "results": "work/runs/batch-1/00/results/",
        "files": [
            {
                "key": "inbox/products/p1.csv",
                "dataset": "products",
                "result": "work/runs/batch-1/00/results/00000.json",
            },
            {
                "key": "inbox/products/p2.csv",
                "dataset": "products",
                "result": "work/runs/batch-1/00/results/00001.json",
            },
        ],
    }
    assert backend.store.list("work/") == []  # small stages live in the state only


def test_a_big_stage_is_a_manifest_in_the_bucket_not_a_list_in_the_state() -> None:
    backend = memory_backend()
    files = [(f"inbox/sale_events/{i}.json", "sale_events") for i in range(5)]
    (stage,) = plan(backend.store, "file-x", files, inline=4)["stages"]
    assert stage == {
        "dataset": "sale_events",
        "results": "work/runs/file-x/00/results/",
        "manifest": "work/runs/file-x/00/files.json",
        "count": 5,
    }
    manifest = json.loads(backend.store.get_bytes(stage["manifest"]))
    assert [f["key"] for f in manifest] == [k for k, _ in files]
    assert manifest[4]["result"] == "work/runs/file-x/00/results/00004.json"


def test_results_are_read_back_by_stage() -> None:
    from salesflow.pipeline.state import StepState

    backend = memory_backend()
    prefix = results_prefix("file-y", 0)
    state = StepState("inbox/a.json", "orders_json", "inbox/a.json", 3, "0" * 64, "SUCCESS")
    write_state(backend.store, f"{prefix}00000.json", state)
    backend.store.put_bytes(f"{prefix}notes.txt", b"not a result")
    assert read_states(backend.store, prefix) == {f"{prefix}00000.json": state}


def test_execution_state_stays_small_however_many_files_a_batch_holds() -> None:
    """The largest state an execution carries is bounded: big stages are manifests."""
    backend = memory_backend()
    files = [(f"inbox/order_items/{'x' * 200}-{i}.csv", "order_items") for i in range(1000)]
    payload = json.dumps(plan(backend.store, "batch-" + "f" * 40, files))
    assert len(payload.encode()) < 2_000


def test_failure_message_reads_the_lambda_error_out_of_the_catch_result() -> None:
    cause = json.dumps({"errorType": "TerminalError", "errorMessage": "inbox/a.json: not JSON"})
    assert failure_message({"Error": "TerminalError", "Cause": cause}) == (
        "TerminalError: inbox/a.json: not JSON"
    )
    task = {
        "StoppedReason": "OutOfMemoryError: Container killed",
        "Containers": [{"ExitCode": 137}],
    }
    assert failure_message({"Error": "States.TaskFailed", "Cause": json.dumps(task)}) == (
        "States.TaskFailed: the container task stopped (OutOfMemoryError: Container killed), "
        "exit code 137"
    )
    assert failure_message({"Error": "States.Timeout", "Cause": "took too long"}) == (
        "States.Timeout: took too long"
    )
    assert failure_message("plain") == "plain"


def _runtime_with(stub_error: str | None) -> tuple[Runtime, Stubber]:
    client = boto3.client(
        "stepfunctions",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )
    stubber = Stubber(client)
    if stub_error:
        stubber.add_client_error(
            "start_execution", service_error_code=stub_error, http_status_code=400
        )
    else:
        stubber.add_response(
            "start_execution",
            {"executionArn": f"{MACHINE}:execution:x", "startDate": datetime.now(UTC)},
        )
    stubber.activate()
    settings = Settings(backend="aws", aws={"state_machine_arn": MACHINE})
    return Runtime(settings, memory_backend(), _stepfunctions=client), stubber


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:salesflow-pipeline"


def test_starting_an_execution_that_exists_already_is_not_an_error() -> None:
    rt, stubber = _runtime_with("ExecutionAlreadyExists")
    assert start_execution(rt, "file-abc", {"files": []}) == "file-abc"
    stubber.assert_no_pending_responses()


def test_a_refused_start_is_a_terminal_error_naming_the_execution() -> None:
    rt, _ = _runtime_with("AccessDeniedException")
    with pytest.raises(TerminalError, match="file-abc"):
        start_execution(rt, "file-abc", {"files": []})


def test_a_throttled_start_is_transient() -> None:
    rt, _ = _runtime_with("ThrottlingException")
    with pytest.raises(TransientError):
        start_execution(rt, "file-abc", {"files": []})


def test_a_started_execution_returns_its_name() -> None:
    rt, stubber = _runtime_with(None)
    assert start_execution(rt, "batch-1", {"stages": []}) == "batch-1"
    stubber.assert_no_pending_responses()

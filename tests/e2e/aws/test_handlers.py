"""The handlers' edges on a deployed stack: what the detector ignores, repeated events,
configuration errors, the live feed, and how errors are named for Step Functions."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from salesflow.models import FileStatus
from tests.e2e.aws.harness import (
    Stack,
    executions,
    invoke,
    lineage_of,
    s3_notification,
    scheduled_event,
    set_function_variables,
    wait_for_executions,
)
from tests.fixtures.thelook import ITEMS_CSV, ORDERS_CSV, PRODUCTS_CSV

pytestmark = pytest.mark.aws

SALE = (
    b'{"sale_id": "h-1", "product": "Lamp", "price": 40.0, "quantity": 1,'
    b' "timestamp": "2026-02-01T09:00:00Z"}\n'
)


def _invoke_raw(function: str, event: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    response = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    return response.get("FunctionError"), json.load(response["Payload"])


def _upload(stack: Stack, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)


def test_the_detector_ignores_what_is_not_a_new_inbox_object(module_stack: Stack) -> None:
    _upload(module_stack, "processed/old.json", SALE)
    events = [
        s3_notification(module_stack.bucket, "processed/old.json", SALE),
        s3_notification(module_stack.bucket, "inbox/sale_events/", b""),
        s3_notification(module_stack.bucket, "inbox/sale_events/../../etc/passwd", b""),
        s3_notification(module_stack.bucket, "inbox/sale_events/never-uploaded.json", SALE),
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},
    ]
    before = len(executions(module_stack.state_machine_arn))
    for event in events:
        result = invoke(module_stack.functions["detector"], event)
        assert result == {"started": [], "pending": [], "batch": []}
    assert len(executions(module_stack.state_machine_arn)) == before


def test_a_repeated_event_starts_one_execution(module_stack: Stack) -> None:
    key = "inbox/sale_events/twice.jsonl"
    _upload(module_stack, key, SALE)
    event = s3_notification(module_stack.bucket, key, SALE)
    first = invoke(module_stack.functions["detector"], event)
    again = invoke(module_stack.functions["detector"], event)
    assert first["started"] == again["started"] and len(first["started"]) == 1
    assert wait_for_executions(module_stack.state_machine_arn) == ["SUCCEEDED"]
    assert lineage_of(module_stack)[key].status == FileStatus.SUCCESS


def test_the_detector_names_the_missing_state_machine(module_stack: Stack) -> None:
    detector = module_stack.functions["detector"]
    key = "inbox/sale_events/no-machine.jsonl"
    _upload(module_stack, key, SALE.replace(b"h-1", b"h-2"))
    set_function_variables(detector, SALESFLOW_AWS__STATE_MACHINE_ARN="")
    try:
        error, payload = _invoke_raw(detector, s3_notification(module_stack.bucket, key, SALE))
    finally:
        set_function_variables(
            detector, SALESFLOW_AWS__STATE_MACHINE_ARN=module_stack.state_machine_arn
        )
    assert error == "Unhandled"
    assert payload["errorType"] == "TerminalError"
    assert "SALESFLOW_AWS__STATE_MACHINE_ARN" in payload["errorMessage"]


def test_the_live_feed_writes_a_sale_the_pipeline_then_processes(module_stack: Stack) -> None:
    generated = invoke(module_stack.functions["generator"], {"source": "aws.events"})
    key, sale = generated["key"], generated["sale"]
    assert key.startswith("inbox/sale_events/") and key.endswith(".json")
    body = boto3.client("s3").get_object(Bucket=module_stack.bucket, Key=key)["Body"].read()
    assert json.loads(body) == sale and 50 <= sale["price"] <= 500
    invoke(module_stack.functions["detector"], s3_notification(module_stack.bucket, key, body))
    assert set(wait_for_executions(module_stack.state_machine_arn)) == {"SUCCEEDED"}
    record = lineage_of(module_stack)[key]
    assert (record.status, record.rows_in, record.valid) == (FileStatus.SUCCESS, 1, 1)


def _put_state(stack: Stack, key: str, state: dict[str, Any]) -> None:
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=json.dumps(state).encode())


def test_mark_failed_leaves_a_file_that_is_already_final_alone(module_stack: Stack) -> None:
    error = {"Error": "States.TaskFailed", "Cause": "{}"}
    done = {
        "key": "inbox/sale_events/done.jsonl",
        "dataset": "sale_events",
        "lineage_key": "inbox/sale_events/done.jsonl",
        "seq": 4,
        "sha256": "0" * 64,
        "status": "DUPLICATE",
    }
    prefix = "work/runs/final-alone/00/results/"
    _put_state(module_stack, f"{prefix}00000.json", done)
    one = {"key": done["key"], "result": f"{prefix}00000.json", "error": error}
    nothing = {"failed": 0, "unpublished": 0}
    assert invoke(module_stack.functions["mark_failed"], one) == nothing
    stage = {"results": prefix, "error": error}
    assert invoke(module_stack.functions["mark_failed"], stage) == nothing
    assert lineage_of(module_stack).get(done["key"]) is None  # nothing was written


def test_an_unreadable_result_is_reported_as_terminal(module_stack: Stack) -> None:
    prefix = "work/runs/unreadable/00/results/"
    boto3.client("s3").put_object(
        Bucket=module_stack.bucket, Key=f"{prefix}00000.json", Body=b"{not json"
    )
    error, payload = _invoke_raw(module_stack.functions["archive"], {"results": prefix})
    assert error == "Unhandled"
    assert payload["errorType"] == "TerminalError"
    assert payload["errorMessage"].startswith("JSONDecodeError: ")


def test_the_timer_starts_a_waiting_batch_in_dependency_order(module_stack: Stack) -> None:
    detector = module_stack.functions["detector"]
    files = {
        "inbox/order_items/t.csv": ITEMS_CSV,
        "inbox/orders/t.csv": ORDERS_CSV,
        "inbox/products/t.csv": PRODUCTS_CSV,
    }
    for key, text in files.items():
        _upload(module_stack, key, text.encode())
        result = invoke(detector, s3_notification(module_stack.bucket, key, text.encode()))
        assert result["pending"] == [key] and result["batch"] == [] == result["started"]
    set_function_variables(detector, SALESFLOW_BATCHING__QUIET_SECONDS="0")
    try:
        timer = invoke(detector, scheduled_event())
    finally:
        set_function_variables(detector, SALESFLOW_BATCHING__QUIET_SECONDS="1200")
    assert timer["batch"] == list(reversed(files))
    assert len(timer["started"]) == 1 and timer["started"][0].startswith("batch-")
    assert set(wait_for_executions(module_stack.state_machine_arn)) == {"SUCCEEDED"}
    lineage = lineage_of(module_stack)
    assert all(lineage[key].status == FileStatus.SUCCESS for key in files)
    assert lineage["inbox/order_items/t.csv"].rejected == 0  # its products and orders were there
    again = invoke(detector, scheduled_event())
    assert again["batch"] == [] == again["started"]


def test_logs_are_json_with_emails_masked_and_metrics_are_emf(
    module_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from salesflow.entrypoints.runtime import log

    capsys.readouterr()
    invoke(module_stack.functions["archive"], {"results": "work/runs/nothing-here/00/results/"})
    log().warning("customer foobar@test.com complained")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (emf,) = [line for line in lines if "_aws" in line]
    metrics = emf["_aws"]["CloudWatchMetrics"][0]
    assert metrics["Namespace"] == "salesflow"
    names = [m["Name"] for m in metrics["Metrics"]]
    assert names == ["FilesProcessed", "FilesUnpublished", "LatencyMs"]
    assert emf["function"] == "archive" and emf["FilesProcessed"] == [0.0]
    (warning,) = [line for line in lines if line.get("level") == "WARNING"]
    assert warning["message"] == "customer f*****@test.com complained"
    assert warning["service"] == "salesflow"

"""Every role of the stack is proven sufficient on every path a file can take.

One module run drives files down each path through the real event shapes and state machine:
a good file, its duplicate, an empty file, a file of no known dataset, a poison file (its task
crashes every time: MarkFileAsFailed), a stage whose KPI task crashes (MarkFilesAsFailed), a
stage whose KPI writes are refused (both left committed, not published), a load under
DynamoDB throttling, a big stage through the Distributed Map, a batched trio, a file whose S3
event was lost and the committed files left to publish (the sweep starts them again; they are
published), the live feed, and a commit's totals deltas (``apply_totals``, a transaction).
Every AWS call each step made is recorded under its role (``tests.fixtures.iam_calls``) and
checked against that role's policy as CloudFormation deployed it. ``test_pipeline.py``
checks the same on its own run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from salesflow.models import FileRecord
from tests.e2e.aws.harness import (
    Stack,
    Throttle,
    deploy_stack,
    invoke,
    lineage_of,
    refuse_aggregate_writes,
    run_files,
    s3_notification,
    scheduled_event,
    set_function_variables,
    wait_for_executions,
)
from tests.fixtures.iam_calls import STATES, Call, CallRecorder, refused
from tests.fixtures.moto_ecs import TaskLog
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.thelook import ITEMS_CSV, ORDERS_CSV, PRODUCTS_CSV

pytestmark = pytest.mark.aws

OOM_KILLED = 137


def sale(n: int, price: float = 12.5) -> bytes:
    return (
        f'{{"sale_id": "iam-{n}", "product": "Mug", "price": {price}, "quantity": 1,'
        f' "timestamp": "2026-01-05T10:00:00Z"}}\n'
    ).encode()


GOOD = "inbox/sale_events/good.jsonl"
DUPLICATE = "inbox/sale_events/good-again.jsonl"
EMPTY = "inbox/sale_events/empty.jsonl"
UNKNOWN = "inbox/mystery.txt"
POISON = "inbox/sale_events/poison.jsonl"
THROTTLED = "inbox/orders_json/throttled.json"
LOST = "inbox/sale_events/lost-event.jsonl"
CRASH_STAGE = [f"inbox/sale_events/crash-{i}.jsonl" for i in range(2)]
REFUSED_STAGE = [f"inbox/sale_events/refused-{i}.jsonl" for i in range(2)]
BIG_STAGE = [f"inbox/sale_events/big-{i}.jsonl" for i in range(3)]
TRIO = {
    "inbox/products/t.csv": PRODUCTS_CSV,
    "inbox/orders/t.csv": ORDERS_CSV,
    "inbox/order_items/t.csv": ITEMS_CSV,
}


@dataclass
class Paths:
    stack: Stack
    calls: list[Call]
    lineage: dict[str, FileRecord]
    tasks: TaskLog
    machine_role: str
    throttled: int
    swept: dict[str, Any]
    big_input: dict[str, Any]


def _upload(stack: Stack, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)


def _detect(stack: Stack, key: str, body: bytes) -> dict[str, Any]:
    _upload(stack, key, body)
    return invoke(stack.functions["detector"], s3_notification(stack.bucket, key, body))


def _drive(stack: Stack, tasks: TaskLog, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every path, one after another; returns what the checks need besides the calls."""
    detector = stack.functions["detector"]
    _detect(stack, GOOD, sale(1))
    wait_for_executions(stack.state_machine_arn)
    _detect(stack, DUPLICATE, sale(1))
    _detect(stack, EMPTY, b"")
    _detect(stack, UNKNOWN, b"hello, nobody knows what I am\n")
    tasks.crash = lambda command: OOM_KILLED if POISON in command else None
    _detect(stack, POISON, sale(2))
    wait_for_executions(stack.state_machine_arn)

    for i, key in enumerate(CRASH_STAGE):
        _upload(stack, key, sale(10 + i))
    tasks.crash = lambda command: OOM_KILLED if command[0] == "aggregate" else None
    run_files(stack, [{"key": k, "dataset": "sale_events"} for k in CRASH_STAGE], "crash")
    tasks.crash = lambda command: None

    with monkeypatch.context() as patch:
        refuse_aggregate_writes(patch)
        for i, key in enumerate(REFUSED_STAGE):
            _upload(stack, key, sale(20 + i))
        run_files(stack, [{"key": k, "dataset": "sale_events"} for k in REFUSED_STAGE], "refused")

    throttle = Throttle(every=2)
    with monkeypatch.context() as patch:
        throttle.install(patch)
        throttle.active = True
        body = json.dumps(
            [
                {
                    "order-info": {"OrderId": str(i), "item-id": "1", "item-desc": "x", "qty": "1"},
                    "contact-info": {"name": "A B", "email": "a@b.example"},
                }
                for i in range(60)
            ]
        ).encode()
        _detect(stack, THROTTLED, body)
        wait_for_executions(stack.state_machine_arn)

    for i, key in enumerate(BIG_STAGE):
        _upload(stack, key, sale(30 + i))
    from salesflow.adapters.aws.s3 import S3ObjectStore
    from salesflow.entrypoints.runs import plan

    big = plan(
        S3ObjectStore(boto3.client("s3"), stack.bucket),
        "big",
        [(k, "sale_events") for k in BIG_STAGE],
        inline=1,
    )
    client = boto3.client("stepfunctions")
    client.start_execution(
        stateMachineArn=stack.state_machine_arn, name="big", input=json.dumps(big)
    )
    wait_for_executions(stack.state_machine_arn)

    for key, text in TRIO.items():
        _detect(stack, key, text.encode())
    set_function_variables(detector, SALESFLOW_BATCHING__QUIET_SECONDS="0")
    invoke(detector, scheduled_event())
    wait_for_executions(stack.state_machine_arn)

    _upload(stack, LOST, sale(40))  # no event: the sweep finds it
    _upload(stack, "inbox/products/lost.csv", PRODUCTS_CSV.encode())  # batched, lost too
    set_function_variables(
        detector, SALESFLOW_AWS__SWEEP_AFTER_SECONDS="0.001", SALESFLOW_BATCHING__MIN_FILES="99"
    )
    time.sleep(0.01)
    swept = invoke(detector, {"sweep": True})
    wait_for_executions(stack.state_machine_arn)

    generated = invoke(stack.functions["generator"], {"source": "aws.events"})
    assert generated["key"].startswith("inbox/sale_events/")
    _apply_totals_as_the_commit_does(stack)
    return {"throttled": throttle.throttled, "swept": swept, "big": big}


def _apply_totals_as_the_commit_does(stack: Stack) -> None:
    """A commit's totals deltas, as the validate-and-load task's role (the lake's commit
    applies them in its transaction; the call is made here until that path exists)."""
    import polars as pl

    from salesflow.adapters import build_backend
    from tests.fixtures.iam_calls import acting_as

    role = next(
        r["Arn"]
        for r in boto3.client("iam").list_roles()["Roles"]
        if "-ValidateLoadRole-" in r["RoleName"]
    )
    deltas = pl.DataFrame(
        {"scope": ["sale_events.day"], "id": ["2026-01-05"], "total_amount": [1.0], "records": [1]}
    )
    from dataclasses import asdict

    from salesflow.adapters.aws import resolve_names

    settings = stack.settings()  # the names as the task's environment gives them:
    names = asdict(resolve_names(settings))  # the role reads no stack outputs
    settings = settings.model_copy(update={"aws": settings.aws.model_copy(update=names)})
    with acting_as(role):
        backend = build_backend(settings)
        try:
            backend.tables.apply_totals(10**9, deltas)
            undo = deltas.with_columns(-pl.col("total_amount"), -pl.col("records"))
            backend.tables.apply_totals(10**9 + 1, undo)  # the totals as they were
        finally:
            backend.close()


@pytest.fixture(scope="module")
def paths(
    moto_server: MotoServer,
    emulated: None,
    ecs_dispatch: TaskLog,
    iam_calls: CallRecorder,
    lambda_zip: Path,
) -> Iterator[Paths]:
    moto_server.reset()
    stack = deploy_stack(package=lambda_zip)
    ecs_dispatch.clear()
    iam_calls.clear()
    with pytest.MonkeyPatch.context() as patch:
        seen = _drive(stack, ecs_dispatch, patch)
    calls = iam_calls.snapshot()
    role = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=stack.state_machine_arn
    )["roleArn"]
    yield Paths(
        stack=stack,
        calls=calls,
        lineage=lineage_of(stack),
        tasks=ecs_dispatch,
        machine_role=role,
        throttled=seen["throttled"],
        swept=seen["swept"],
        big_input=seen["big"],
    )
    ecs_dispatch.clear()


def _status(paths: Paths, key: str) -> str:
    return paths.lineage[key].status.value


def test_every_path_ended_as_it_should(paths: Paths) -> None:
    assert _status(paths, GOOD) == "SUCCESS"
    assert _status(paths, DUPLICATE) == "DUPLICATE"
    assert _status(paths, EMPTY) == "FAILED" and "empty" in (paths.lineage[EMPTY].error or "")
    assert _status(paths, UNKNOWN) == "FAILED"
    assert "cannot tell which dataset" in (paths.lineage[UNKNOWN].error or "")
    assert _status(paths, POISON) == "FAILED"
    assert "exit code 137" in (paths.lineage[POISON].error or "")
    # Committed, left unpublished by their failed KPI task, then published after the sweep.
    for key in CRASH_STAGE + REFUSED_STAGE:
        assert (_status(paths, key), paths.lineage[key].settled) == ("SUCCESS", True)
    assert _status(paths, THROTTLED) == "SUCCESS" and paths.throttled > 0
    assert {_status(paths, k) for k in BIG_STAGE} == {"SUCCESS"}
    assert {_status(paths, k) for k in TRIO} == {"SUCCESS"}
    assert _status(paths, LOST) == "SUCCESS"
    assert len(paths.swept["started"]) == 1 + len(CRASH_STAGE + REFUSED_STAGE)
    assert paths.swept["requeued"] == ["inbox/products/lost.csv"]


def test_a_big_stage_went_through_the_distributed_map_without_its_files_in_state(
    paths: Paths,
) -> None:
    (stage,) = paths.big_input["stages"]
    assert "files" not in stage and stage["count"] == len(BIG_STAGE)
    interpreter = [c for c in paths.calls if c.role == STATES and c.service == "s3"]
    assert any(
        c.operation == "GetObject" and c.params["Key"] == stage["manifest"] for c in interpreter
    )


def test_every_role_was_exercised(paths: Paths) -> None:
    kinds = {c.role.rpartition("/")[2].split("-")[1] for c in paths.calls if "/" in c.role}
    assert kinds == {
        "DetectorRole",
        "ValidateLoadRole",
        "AggregateRole",
        "ArchiveRole",
        "MarkFailedRole",
        "GeneratorRole",
    }
    states = {(c.service, c.operation) for c in paths.calls if c.role == STATES}
    assert {("lambda", "Invoke"), ("ecs", "RunTask"), ("iam", "PassRole")} <= states


def test_the_commit_transactions_were_made_and_checked(paths: Paths) -> None:
    """``commit_files`` (lineage SUCCESS with the commit marker) and ``apply_totals`` (the
    totals deltas with their applied marker) are TransactWriteItems of the load task's role:
    each item's table and action is checked like any other call."""
    transactions = [
        c
        for c in paths.calls
        if c.operation == "TransactWriteItems" and "ValidateLoadRole" in c.role
    ]
    tables = {
        next(iter(item.values()))["TableName"].rpartition("-")[2]
        for call in transactions
        for item in call.params["TransactItems"]
    }
    assert {"files", "meta", "aggregates"} <= tables
    assert refused(transactions, {}) == []


def test_every_call_on_every_path_was_allowed_by_its_own_role(paths: Paths) -> None:
    assert refused(paths.calls, {STATES: paths.machine_role}) == []


def test_the_check_refuses_what_a_role_does_not_grant(paths: Paths) -> None:
    """The evaluator is not a rubber stamp: calls outside a role's policy are named."""
    validate = next(c.role for c in paths.calls if "ValidateLoadRole" in c.role)
    mark_failed = next(c.role for c in paths.calls if "MarkFailedRole" in c.role)
    bucket, prefix = paths.stack.bucket, paths.stack.outputs["TablePrefix"]
    outside = [
        Call(validate, "s3", "PutObject", "us-east-1", {"Bucket": bucket, "Key": "inbox/x.json"}),
        Call(mark_failed, "dynamodb", "BatchWriteItem", "us-east-1",
             {"RequestItems": {f"{prefix}records": []}}),
        Call(mark_failed, "sns", "Publish", "us-east-1",
             {"TopicArn": paths.stack.outputs["TopicArn"]}),
    ]  # fmt: skip
    found = refused(outside, {})
    assert len(found) == 3, found
    assert any("s3:PutObject" in f and "inbox/x.json" in f for f in found)

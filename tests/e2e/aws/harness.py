"""What the end-to-end AWS tests do to the emulator: deploy, upload, deliver events, wait.

moto runs the real state machine and, through ``tests.fixtures.moto_lambda``, our handlers;
what it does not do (EventBridge rules firing, S3 notifications invoking Lambda) the test
does here with the real event shapes.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from salesflow.config import Settings
from tests.fixtures.wheels import IMAGE_URI

STACK = "salesflow"
EXECUTION_TIMEOUT = 120.0


@dataclass
class Stack:
    """A deployed stack: its outputs and the names of its functions."""

    name: str
    outputs: dict[str, str]
    functions: dict[str, str] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.outputs["BucketName"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    def settings(self, **overrides: Any) -> Settings:
        """Settings that reach this stack from the test process (as the CLI would)."""
        return Settings(backend="aws", aws={"stack_name": self.name}, **overrides)


def function_names(stack_name: str) -> dict[str, str]:
    """Function name by handler (``"detector"`` -> ``"salesflow-detector"``)."""
    out: dict[str, str] = {}
    paginator = boto3.client("lambda").get_paginator("list_functions")
    for page in paginator.paginate():
        for fn in page["Functions"]:
            if fn["FunctionName"].startswith(f"{stack_name}-"):
                out[fn["Handler"].rpartition(".")[2]] = fn["FunctionName"]
    return out


def set_function_variables(function: str, **variables: str) -> None:
    """Add environment variables to a deployed function (test-only tuning, e.g. batching)."""
    client = boto3.client("lambda")
    current = client.get_function_configuration(FunctionName=function)
    env = dict(current.get("Environment", {}).get("Variables", {}))
    env.update(variables)
    client.update_function_configuration(FunctionName=function, Environment={"Variables": env})


def s3_notification(bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """The event S3 sends to a Lambda for an upload (key URL-encoded, as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": datetime.now(UTC).isoformat(),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": urllib.parse.quote_plus(key, safe="/"),
                        "size": len(body),
                        "eTag": hashlib.md5(body).hexdigest(),  # noqa: S324 (an ETag)
                        "sequencer": f"{time.time_ns():X}",
                    },
                },
            }
        ]
    }


def eventbridge_object_created(bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """The event EventBridge delivers for an S3 "Object Created" (the template's rule)."""
    return {
        "version": "0",
        "id": hashlib.sha256(key.encode()).hexdigest()[:36],
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": urllib.parse.quote_plus(key, safe="/"),
                "size": len(body),
                "etag": hashlib.md5(body).hexdigest(),  # noqa: S324 (an ETag)
                "sequencer": f"{time.time_ns():X}",
            },
            "reason": "PutObject",
        },
    }


def scheduled_event() -> dict[str, Any]:
    """What an EventBridge schedule (the batching timer) sends."""
    return {
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "detail": {},
    }


def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke a deployed function synchronously; a function error fails the test."""
    response = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    payload: dict[str, Any] = json.load(response["Payload"])
    assert "FunctionError" not in response, payload
    return payload


def executions(state_machine_arn: str) -> list[dict[str, Any]]:
    client = boto3.client("stepfunctions")
    paginator = client.get_paginator("list_executions")
    return [
        e
        for page in paginator.paginate(stateMachineArn=state_machine_arn)
        for e in page["executions"]
    ]


def wait_for_executions(state_machine_arn: str, timeout: float = EXECUTION_TIMEOUT) -> list[str]:
    """Wait until no execution runs; return every execution's final status."""
    deadline = time.monotonic() + timeout
    while True:
        found = executions(state_machine_arn)
        if all(e["status"] != "RUNNING" for e in found):
            return [e["status"] for e in found]
        if time.monotonic() > deadline:
            raise AssertionError(f"executions still running after {timeout}s: {found}")
        time.sleep(0.2)


def history(execution_arn: str) -> Iterator[dict[str, Any]]:
    paginator = boto3.client("stepfunctions").get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn):
        yield from page["events"]


def states_entered(state_machine_arn: str) -> list[str]:
    """The name of every state entered by every execution: each one is a billed transition."""
    names: list[str] = []
    for execution in executions(state_machine_arn):
        for event in history(execution["executionArn"]):
            if event["type"].endswith("StateEntered"):
                names.append(event["stateEnteredEventDetails"]["name"])
    return names


def keys_under(bucket: str, prefix: str) -> list[str]:
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    return sorted(
        o["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    )


def subscribe_queue(topic_arn: str, name: str) -> str:
    """An SQS queue subscribed to the topic (raw delivery), to read what SNS published."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return str(url)


def drain(queue_url: str) -> list[str]:
    """Every message body in the queue, each once: received, then deleted."""
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return bodies
        bodies += [m["Body"] for m in got]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )


def deploy_stack(name: str = STACK, *, package: Path) -> Stack:
    """Deploy the stack with ``salesflow aws deploy``'s own code into the emulator.

    ``package`` is the light Lambda zip (built once per session by the real packaging path);
    the tasks' image is named, not built (no container engine here): the dispatch fixtures
    run the handlers and the image's entrypoint from this checkout. The live feed is off.
    """
    import warnings

    from salesflow.adapters.aws.deploy import deploy

    with warnings.catch_warnings():
        # moto warns about the resource types it does not emulate (bucket policy, ...).
        warnings.simplefilter("ignore", UserWarning)
        outputs = deploy(
            Settings(), stack_name=name, package=package, image_uri=IMAGE_URI, poll_seconds=1
        )
    return Stack(name, outputs, function_names(name))


def refuse_aggregate_writes(monkeypatch: Any) -> None:
    """DynamoDB refuses writes to the aggregates table with a non-retryable error: the KPI
    refresh (batch writes) and the totals deltas a publish applies (transactions)."""
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    batch, transact = DynamoHandler.batch_write_item, DynamoHandler.transact_write_items

    def batch_write_item(handler: Any) -> Any:
        if any(t.endswith("-aggregates") for t in handler.body.get("RequestItems", {})):
            raise MockValidationException("injected: the aggregates table refuses writes")
        return batch(handler)

    def transact_write_items(handler: Any) -> Any:
        if "-aggregates" in json.dumps(handler.body.get("TransactItems", [])):
            raise MockValidationException("injected: the aggregates table refuses writes")
        return transact(handler)

    monkeypatch.setattr(DynamoHandler, "batch_write_item", batch_write_item)
    monkeypatch.setattr(DynamoHandler, "transact_write_items", transact_write_items)


class Throttle:
    """Answer every ``every``-th DynamoDB BatchWriteItem or TransactWriteItems with
    ProvisionedThroughputExceeded, inside the emulator, so the pipeline's retries are
    exercised over real HTTP."""

    def __init__(self, every: int = 3) -> None:
        import threading

        self.every = every
        self.calls = 0
        self.throttled = 0
        self.active = False
        self._lock = threading.Lock()

    def install(self, monkeypatch: Any) -> None:
        from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
        from moto.dynamodb.responses import DynamoHandler

        throttle = self

        def throttled(original: Any) -> Any:
            def call(handler: Any) -> Any:
                with throttle._lock:
                    throttle.calls += 1
                    hit = throttle.active and throttle.calls % throttle.every == 0
                    throttle.throttled += hit
                if hit:
                    raise DynamodbException(
                        ERROR_TYPE_PREFIX + "ProvisionedThroughputExceededException",
                        "The level of configured provisioned throughput for the table was "
                        "exceeded.",
                    )
                return original(handler)

            return call

        for name in ("batch_write_item", "transact_write_items"):
            monkeypatch.setattr(DynamoHandler, name, throttled(getattr(DynamoHandler, name)))


def run_files(stack: Stack, files: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Start the state machine on ``files`` (``{"key", "dataset"}``, one stage per dataset)
    directly, as the detector would plan it, and wait for it."""
    from salesflow.adapters.aws.s3 import S3ObjectStore
    from salesflow.entrypoints.runs import plan

    store = S3ObjectStore(boto3.client("s3"), stack.bucket)
    payload = plan(store, name, [(f["key"], f.get("dataset") or "") for f in files])
    client = boto3.client("stepfunctions")
    arn = client.start_execution(
        stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + EXECUTION_TIMEOUT
    while (described := client.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still running after {EXECUTION_TIMEOUT}s")
        time.sleep(0.2)
    return dict(described)


def lineage_rows(stack: Stack) -> list[Any]:
    """Every lineage row, one per file version, oldest first."""
    from salesflow.adapters import build_backend

    backend = build_backend(stack.settings())
    try:
        return backend.tables.list_files()
    finally:
        backend.close()


def lineage_of(stack: Stack) -> dict[str, Any]:
    """Lineage rows by key, read through the AWS backend as the CLI would."""
    from salesflow.adapters import build_backend

    backend = build_backend(stack.settings())
    try:
        return {r.key: r for r in backend.tables.list_files()}
    finally:
        backend.close()

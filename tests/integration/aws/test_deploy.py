"""deploy() and destroy() through the emulator's CloudFormation, and the stack they leave."""

from __future__ import annotations

import json
import urllib.request
import zipfile
from datetime import date
from pathlib import Path

import boto3
import polars as pl
import pytest

from salesflow.adapters.aws import build
from salesflow.adapters.aws.deploy import deploy, destroy
from salesflow.adapters.aws.template import template_text
from salesflow.config import Settings
from salesflow.errors import TerminalError
from tests.fixtures.memory import commit_rows
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.wheels import IMAGE_URI

pytestmark = [
    pytest.mark.aws,
    # moto warns (pytest makes it an error, in the server thread) on resource types its
    # CloudFormation does not implement: see NOT_IN_MOTO.
    pytest.mark.filterwarnings("ignore::UserWarning:moto.cloudformation.parsing"),
]
# moto 5.2.5's CloudFormation skips these types (cfn-lint still checks them offline).
# (Glue, Athena and CloudWatch alarms are taught to it by ``cloudformation_fidelity``.)
NOT_IN_MOTO = {
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::Lambda::EventInvokeConfig",
}
STACK = "sf-deploy"


def stub_package(folder: Path) -> Path:
    """A tiny stand-in for the Lambda zip: moto stores the code, it never runs it."""
    path = folder / "salesflow-lambda-stub.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("salesflow_package.json", json.dumps({"python": "3.12"}))
        zf.writestr("salesflow/__init__.py", "")
    return path


def declared_types() -> dict[str, str]:
    from cfnlint.decode import decode_str

    template, _ = decode_str(template_text())
    return {k: v["Type"] for k, v in template["Resources"].items()}


def test_deploy_creates_every_resource_then_destroy_removes_them(
    aws_env: MotoServer,
    cloudformation_fidelity: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(aws={"stack_name": STACK})
    outputs = deploy(
        settings,
        alert_email="ops@example.com",
        package=stub_package(tmp_path),
        image_uri=IMAGE_URI,
        poll_seconds=1,
    )
    assert outputs["TablePrefix"] == f"{STACK}-"
    assert outputs["StateMachineArn"].endswith(f":stateMachine:{STACK}-pipeline")

    cfn = boto3.client("cloudformation")
    summaries = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    # moto also lists one nameless entry for the skipped resources.
    named = [s for s in summaries if s["LogicalResourceId"]]
    created = {s["LogicalResourceId"]: s["ResourceType"] for s in named}
    expected = {k: t for k, t in declared_types().items() if t not in NOT_IN_MOTO}
    assert created == expected
    assert {s["ResourceStatus"] for s in named} == {"CREATE_COMPLETE"}
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    }
    assert params["PythonRuntime"] == "python3.12" and params["AlertEmail"] == "ops@example.com"

    lam = boto3.client("lambda").get_function_configuration(FunctionName=f"{STACK}-mark-failed")
    assert lam["Handler"] == "salesflow.entrypoints.lambdas.mark_failed"
    assert lam["Environment"]["Variables"]["SALESFLOW_AWS__BUCKET"] == outputs["BucketName"]
    files = boto3.client("dynamodb").describe_table(TableName=outputs["FilesTable"])["Table"]
    assert {i["IndexName"] for i in files["GlobalSecondaryIndexes"]} == {
        "by_key",
        "by_sha",
        "by_status",
    }
    # The records are Parquet fragments on S3: no table of them is deployed.
    tables = boto3.client("dynamodb").list_tables()["TableNames"]
    assert f"{STACK}-records" not in tables and f"{STACK}-files" in tables

    # With execution on, moto serves state machines from another backend than its
    # CloudFormation writes to; turn it off to read the deployed definition back.
    request = urllib.request.Request(
        f"{aws_env.endpoint}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": False}}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request).read()
    definition = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=outputs["StateMachineArn"]
    )["definition"]
    assert "${" not in definition
    assert f"function:{STACK}-mark-failed" in definition
    assert "arn:aws:states:::ecs:runTask.sync" in definition

    # The backend finds everything from the stack outputs alone.
    backend = build(settings)
    backend.store.put_bytes("inbox/orders_json/a.json", b"[]")
    row = {"_key": ["O1"], "_day": [date(2024, 3, 1)], "qty": [2], "_seq": [1], "_arrived": [1]}
    row |= {"_source": ["a.json"], "_record": [1]}
    commit_rows(backend, "orders_json", 1, pl.DataFrame(row))  # S3, catalog and lock items
    assert backend.lake.read("orders_json", days=[date(2024, 3, 1)])["qty"].to_list() == [2]

    # An update, with the template passed by URL as a large one would be.
    monkeypatch.setattr("salesflow.adapters.aws.deploy.TEMPLATE_BODY_LIMIT", 100)
    again = deploy(settings, package=stub_package(tmp_path), image_uri=IMAGE_URI, poll_seconds=1)
    assert again == outputs

    destroy(settings, poll_seconds=1)
    names = [
        s["StackName"]
        for s in cfn.list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert STACK not in names
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    destroy(settings, poll_seconds=1)  # nothing left: still fine


def test_an_invalid_stack_name_is_a_terminal_error(aws_env: MotoServer, tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="bad_name!"):
        deploy(
            Settings(aws={"stack_name": "bad_name!"}),
            package=stub_package(tmp_path),
            image_uri=IMAGE_URI,
            poll_seconds=1,
        )


class FailingStack:
    """A CloudFormation client whose stack never completes."""

    def get_waiter(self, name: str) -> object:
        from botocore.exceptions import WaiterError

        class Waiter:
            def wait(self, **kwargs: object) -> None:
                raise WaiterError(name=name, reason="failed", last_response={})

        return Waiter()

    def describe_stack_events(self, StackName: str) -> dict[str, object]:
        return {
            "StackEvents": [
                {
                    "LogicalResourceId": "FilesTable",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": "limit exceeded",
                },
                {"LogicalResourceId": "DataBucket", "ResourceStatus": "CREATE_COMPLETE"},
            ]
        }


def test_a_stack_that_fails_names_the_failed_resources() -> None:
    from salesflow.adapters.aws.deploy import _wait

    with pytest.raises(TerminalError, match="FilesTable: limit exceeded") as info:
        _wait(FailingStack(), "stack_create_complete", "sf", 1)
    assert "DataBucket" not in str(info.value)

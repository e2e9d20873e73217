"""``salesflow aws template|deploy|destroy``: the whole stack through boto3 CloudFormation.

``deploy`` needs nothing but credentials (and ``AWS_ENDPOINT_URL`` to aim at an emulator):
it builds the Lambda package (or takes one), uploads it to a code bucket it creates once per
account and region, inlines the state machine into the template, then creates or updates the
stack and waits for it. ``destroy`` empties the buckets (every object version) and deletes the
stack and the code bucket. See README "Deploy to AWS".
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from salesflow.adapters.aws import client, stack_outputs
from salesflow.adapters.aws.errors import error_code, translate
from salesflow.adapters.aws.package import build_lambda_package, read_manifest
from salesflow.adapters.aws.template import template_text
from salesflow.config import Settings
from salesflow.errors import TerminalError

__all__ = ["build_lambda_package", "deploy", "destroy", "template_text"]

TEMPLATE_BODY_LIMIT = 51_200
LAMBDA_PLATFORM = "manylinux2014_x86_64"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
GONE = {"DELETE_COMPLETE"}
DEAD = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}


def code_bucket_name(account: str, region: str, stack_name: str) -> str:
    """A bucket name unique per account, region and stack (at most 63 characters)."""
    return f"{stack_name[:24]}-code-{account}-{region}".lower()[:63]


def _session_clients(settings: Settings) -> tuple[Any, Any, Any, str]:
    from salesflow.adapters.aws import boto3_session

    session = boto3_session(settings)
    region = session.region_name or "us-east-1"
    s3 = client(settings, "s3", session=session)
    cfn = client(settings, "cloudformation", session=session)
    sts = client(settings, "sts", session=session)
    return s3, cfn, sts, region


def ensure_code_bucket(s3: Any, name: str, region: str) -> None:
    """Create the private, encrypted code bucket unless it exists."""
    try:
        s3.head_bucket(Bucket=name)
        return
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise translate(exc, f"s3 head bucket {name}") from exc
    request: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**request)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def _stack_status(cfn: Any, stack_name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise translate(exc, f"cloudformation describe stack {stack_name}") from exc
    status: str = stacks[0]["StackStatus"]
    return None if status in GONE else status


def _failure_reasons(cfn: Any, stack_name: str) -> str:
    """The first failed resources of the last operation, for the error message."""
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except (ClientError, BotoCoreError):
        return "no events available"
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("FAILED")
    ]
    return "; ".join(failed[:5]) or "no failed resource reported"


def _wait(cfn: Any, waiter: str, stack_name: str, delay: int) -> None:
    try:
        cfn.get_waiter(waiter).wait(
            StackName=stack_name, WaiterConfig={"Delay": delay, "MaxAttempts": 720 // delay + 1}
        )
    except WaiterError as exc:
        raise TerminalError(
            f"stack {stack_name} did not reach {waiter}: {_failure_reasons(cfn, stack_name)}",
            hint="see the stack events in the CloudFormation console, fix, and deploy again",
        ) from exc


def _template_argument(s3: Any, bucket: str, region: str, body: str) -> dict[str, str]:
    """TemplateBody when it fits CloudFormation's 51,200-byte limit, else TemplateURL."""
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    key = f"templates/template-{int(time.time())}.yaml"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}


def deploy(
    settings: Settings,
    *,
    stack_name: str | None = None,
    alert_email: str | None = None,
    package: Path | None = None,
    stage: str = "prod",
    live_feed: bool = True,
    poll_seconds: int = 5,
) -> dict[str, str]:
    """Create or update the stack and return its outputs (BucketName, DlqUrl, ...).

    Without ``package``, wheels for Lambda (x86_64, Python 3.12) are fetched with pip.
    """
    name = stack_name or settings.aws.stack_name
    s3, cfn, sts, region = _session_clients(settings)
    try:
        account = sts.get_caller_identity()["Account"]
        bucket = code_bucket_name(account, region, name)
        ensure_code_bucket(s3, bucket, region)
        with tempfile.TemporaryDirectory(prefix="salesflow-deploy-") as tmp:
            zip_path = package or build_lambda_package(Path(tmp), platform=LAMBDA_PLATFORM)
            code_key = f"lambda/{zip_path.name}"
            s3.upload_file(str(zip_path), bucket, code_key)
            runtime = f"python{read_manifest(zip_path)['python']}"
        parameters = {
            "AlertEmail": alert_email or "",
            "CodeBucket": bucket,
            "CodeKey": code_key,
            "Stage": stage,
            "PythonRuntime": runtime,
            "LiveFeed": "ENABLED" if live_feed else "DISABLED",
        }
        request: dict[str, Any] = {
            "StackName": name,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            "Capabilities": CAPABILITIES,
            "Tags": [{"Key": "salesflow:stage", "Value": stage}],
            **_template_argument(s3, bucket, region, template_text()),
        }
        status = _stack_status(cfn, name)
        if status in DEAD:
            cfn.delete_stack(StackName=name)
            _wait(cfn, "stack_delete_complete", name, poll_seconds)
            status = None
        if status is None:
            cfn.create_stack(**request, OnFailure="ROLLBACK")
            _wait(cfn, "stack_create_complete", name, poll_seconds)
        else:
            try:
                cfn.update_stack(**request)
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
            else:
                _wait(cfn, "stack_update_complete", name, poll_seconds)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"deploy of stack {name}") from exc
    return stack_outputs(
        settings.model_copy(update={"aws": settings.aws.model_copy(update={"stack_name": name})}),
        cloudformation=cfn,
    )


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker; return how many were removed."""
    removed = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for start in range(0, len(keys), 1000):
                batch = keys[start : start + 1000]
                s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                removed += len(batch)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return removed
        raise translate(exc, f"s3 empty bucket {bucket}") from exc
    return removed


def destroy(settings: Settings, stack_name: str | None = None, *, poll_seconds: int = 5) -> None:
    """Empty the data and code buckets, delete the stack, then the code bucket."""
    name = stack_name or settings.aws.stack_name
    s3, cfn, sts, region = _session_clients(settings)
    try:
        if _stack_status(cfn, name) is not None:
            outputs = {
                o["OutputKey"]: o["OutputValue"]
                for o in cfn.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])
            }
            if "BucketName" in outputs:
                empty_bucket(s3, outputs["BucketName"])
            cfn.delete_stack(StackName=name)
            _wait(cfn, "stack_delete_complete", name, poll_seconds)
        bucket = code_bucket_name(sts.get_caller_identity()["Account"], region, name)
        if empty_bucket(s3, bucket) or _bucket_exists(s3, bucket):
            s3.delete_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"destroy of stack {name}") from exc


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True

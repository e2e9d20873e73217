"""``salesflow aws template|deploy|destroy``: the whole stack through boto3 CloudFormation.

``deploy`` needs nothing but credentials (and ``AWS_ENDPOINT_URL`` to aim at an emulator):

1. it builds the light Lambda zip from wheels resolved for the Lambda runtime and CPU
   (``package.py``; offline with a wheelhouse) and uploads it to a code bucket it creates
   once per account, region and stack;
2. it builds and pushes the heavy steps' image (``image.py``) when a container engine runs,
   or takes ``image_uri``;
3. it creates or updates the stack (template with the state machine and the catalog inlined)
   and waits for it.

``destroy`` empties the buckets (every object version) and deletes the stack and the code
bucket. See README "Deploy to AWS".
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from salesflow.adapters.aws import client, stack_outputs
from salesflow.adapters.aws.errors import error_code, translate
from salesflow.adapters.aws.image import build_and_push, find_engine, no_engine_error
from salesflow.adapters.aws.package import build_lambda_package, read_manifest
from salesflow.adapters.aws.template import template_text
from salesflow.adapters.aws.wheels import Arch, image_target, lambda_target
from salesflow.config import Settings
from salesflow.errors import TerminalError

__all__ = ["build_lambda_package", "deploy", "destroy", "template_text"]

TEMPLATE_BODY_LIMIT = 51_200
ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::[\w.-]+|@sha256:[0-9a-f]{64})$"
)
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
GONE = {"DELETE_COMPLETE"}
DEAD = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}


def repository_arn(image_uri: str) -> str:
    """The ARN of the ECR repository an image URI points into (its pull permission)."""
    found = ECR_IMAGE.match(image_uri)
    if found is None:
        raise TerminalError(
            f"the image {image_uri!r} is not in an ECR repository",
            hint="push it to ECR: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>",
        )
    return f"arn:aws:ecr:{found['region']}:{found['account']}:repository/{found['repository']}"


def image_repository_name(stack_name: str) -> str:
    """The ECR repository ``deploy`` builds into: one per stack."""
    return f"{stack_name.lower()}-tasks"


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
    alarm_email: str | None = None,
    package: Path | None = None,
    image_uri: str | None = None,
    arch: Arch = "x86_64",
    python: str = "3.12",
    wheelhouse: Path | None = None,
    stage: str = "prod",
    live_feed: bool = False,
    poll_seconds: int = 5,
) -> dict[str, str]:
    """Create or update the stack and return its outputs (BucketName, DlqUrl, ...).

    Without ``package``, the Lambda zip is built for ``python<python>`` on ``arch``, from
    PyPI or only from ``wheelhouse``. Without ``image_uri``, the image is built and pushed
    with the container engine that runs here (TerminalError if none does).
    """
    name = stack_name or settings.aws.stack_name
    engine = find_engine() if image_uri is None else None
    if image_uri is None and engine is None:
        raise no_engine_error()
    s3, cfn, sts, region = _session_clients(settings)
    try:
        account = sts.get_caller_identity()["Account"]
        bucket = code_bucket_name(account, region, name)
        ensure_code_bucket(s3, bucket, region)
        with tempfile.TemporaryDirectory(prefix="salesflow-deploy-") as tmp:
            work = Path(tmp)
            zip_path = package or build_lambda_package(
                work, lambda_target(arch, python), wheelhouse=wheelhouse
            )
            built_for = read_manifest(zip_path)
            code_key = f"lambda/{zip_path.name}"
            s3.upload_file(str(zip_path), bucket, code_key)
            if engine is not None:
                ecr = client(settings, "ecr")
                image_uri = build_and_push(
                    engine,
                    ecr,
                    image_repository_name(name),
                    image_target(arch),
                    wheelhouse=wheelhouse,
                    workdir=work,
                )
        parameters = {
            "AlertEmail": alert_email or "",
            "AlarmEmail": alarm_email or "",
            "CodeBucket": bucket,
            "CodeKey": code_key,
            "ImageUri": str(image_uri),
            "ImageRepositoryArn": repository_arn(str(image_uri)),
            "Architecture": str(built_for.get("arch", arch)),
            "Stage": stage,
            "PythonRuntime": f"python{built_for['python']}",
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

"""The AWS backend: S3, DynamoDB, SQS and SNS behind salesflow's ports.

``build(settings)`` is the only entry point the rest of salesflow needs. boto3 is imported
here, lazily, so ``salesflow`` works without the ``aws`` extra until this backend is chosen.
Every client honours ``AWS_ENDPOINT_URL`` (boto3 reads it natively) and
``settings.aws.endpoint_url`` when set, so the same code talks to AWS or to an emulator.
Resource names come from explicit settings (``SALESFLOW_AWS__BUCKET`` ...) or else from the
outputs of the CloudFormation stack ``settings.aws.stack_name``.
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from salesflow.errors import MissingDependencyError, TerminalError

if TYPE_CHECKING:
    from salesflow.config import Settings
    from salesflow.ports import Backend, Lake, Notifier

SERVICES = ("s3", "dynamodb", "sqs", "sns", "stepfunctions", "cloudformation")


@dataclass(frozen=True)
class ResourceNames:
    """Where the stack's resources are."""

    bucket: str
    dlq_url: str
    topic_arn: str
    table_prefix: str
    state_machine_arn: str | None = None


def boto3_session(settings: Settings) -> Any:
    """A boto3 session for ``settings.aws.region`` (MissingDependencyError without boto3).

    Sessions are cached per region: a new one reloads every service model (~0.3 s a client).
    """
    return _session(settings.aws.region)


@functools.lru_cache(maxsize=8)
def _session(region: str | None) -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise MissingDependencyError("aws", "boto3") from exc
    return boto3.session.Session(region_name=region)


def client(settings: Settings, service: str, *, session: Any = None) -> Any:
    """A boto3 client with timeouts and botocore's standard retries (throttling included),
    pointed at ``settings.aws.endpoint_url`` when set (else ``AWS_ENDPOINT_URL`` or AWS)."""
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=16,
    )
    session = session or boto3_session(settings)
    return session.client(service, endpoint_url=settings.aws.endpoint_url, config=config)


def stack_outputs(
    settings: Settings, *, cloudformation: Any = None, stack_name: str | None = None
) -> dict[str, str]:
    """The outputs of stack ``stack_name`` (default ``settings.aws.stack_name``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from salesflow.adapters.aws.errors import translate

    cfn = cloudformation or client(settings, "cloudformation")
    name = stack_name or settings.aws.stack_name
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise TerminalError(
                f"the CloudFormation stack {name!r} does not exist",
                hint="deploy it with `salesflow aws deploy`, or set SALESFLOW_AWS__BUCKET, "
                "SALESFLOW_AWS__DLQ_URL, SALESFLOW_AWS__TOPIC_ARN and SALESFLOW_AWS__TABLE_PREFIX",
            ) from exc
        raise translate(exc, f"cloudformation describe stack {name}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"cloudformation describe stack {name}") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def resolve_names(settings: Settings, *, cloudformation: Any = None) -> ResourceNames:
    """Explicit settings first; the stack outputs fill in whatever is not set."""
    aws = settings.aws
    given = {
        "bucket": aws.bucket,
        "dlq_url": aws.dlq_url,
        "topic_arn": aws.topic_arn,
        "table_prefix": aws.table_prefix,
        "state_machine_arn": aws.state_machine_arn,
    }
    required = ("bucket", "dlq_url", "topic_arn", "table_prefix")
    if any(given[k] is None for k in required):
        outputs = stack_outputs(settings, cloudformation=cloudformation)
        from_stack = {
            "bucket": outputs.get("BucketName"),
            "dlq_url": outputs.get("DlqUrl"),
            "topic_arn": outputs.get("TopicArn"),
            "table_prefix": outputs.get("TablePrefix"),
            "state_machine_arn": outputs.get("StateMachineArn"),
        }
        given = {k: v if v is not None else from_stack[k] for k, v in given.items()}
    missing = [k for k in required if not given[k]]
    if missing:
        raise TerminalError(
            f"stack {aws.stack_name!r} does not say where these are: {', '.join(missing)}",
            hint="redeploy with `salesflow aws deploy` or set SALESFLOW_AWS__<NAME> explicitly",
        )
    return ResourceNames(**given)  # type: ignore[arg-type]


class Deferred:
    """A part of the backend built on first use (the lake).

    The light Lambda handlers (detector, archive, mark-failed, live feed) never read or write
    records, and their package holds no Polars or pyarrow: building the backend must not
    import them.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._built: Any = None
        self._lock = threading.Lock()

    def built(self) -> Any:
        with self._lock:
            if self._built is None:
                self._built = self._make()
            return self._built

    def __getattr__(self, name: str) -> Any:
        return getattr(self.built(), name)

    def close(self) -> None:
        if self._built is not None:
            closer = getattr(self._built, "close", None)
            if callable(closer):
                closer()


def build(settings: Settings, *, notifiers: Sequence[Notifier] | None = None) -> Backend:
    """The AWS backend: S3 store, the Parquet lake on S3 (catalog and locks in the DynamoDB
    ``meta`` table), DynamoDB tables and dead letters (announced on
    the SQS queue), and SNS alerts followed by ``notifiers`` (default: the other sinks of
    ``settings.alerts.sinks``, such as the log, built by ``salesflow.adapters.build_notifiers``).
    """
    from salesflow.adapters import build_notifiers
    from salesflow.adapters.aws.catalog import DynamoCatalog
    from salesflow.adapters.aws.dynamodb import DynamoTables, TableNames
    from salesflow.adapters.aws.letters import DynamoDeadLetters
    from salesflow.adapters.aws.locks import DynamoLocks
    from salesflow.adapters.aws.s3 import S3ObjectStore
    from salesflow.adapters.aws.sns import SnsNotifier
    from salesflow.adapters.aws.sqs import SqsLetterNotices
    from salesflow.ports import Backend

    others = list(build_notifiers(settings) if notifiers is None else notifiers)
    session = boto3_session(settings)
    names = resolve_names(settings)
    dynamodb = client(settings, "dynamodb", session=session)
    tables = TableNames.from_prefix(names.table_prefix)
    store = S3ObjectStore(client(settings, "s3", session=session), names.bucket)
    state = DynamoTables(dynamodb, tables)
    locks = DynamoLocks(dynamodb, tables.meta)

    def lake() -> Lake:
        from salesflow.adapters.lake import ParquetLake

        return ParquetLake(
            store,
            DynamoCatalog(dynamodb, tables.meta),
            locks,
            work_dir=Path(tempfile.gettempdir()) / "salesflow-lake",
            new_commit=state.next_seq,
        )

    return Backend(
        store=store,
        lake=cast("Lake", Deferred(lake)),
        locks=locks,
        tables=state,
        letters=DynamoDeadLetters(
            dynamodb,
            tables.letters,
            notices=SqsLetterNotices(client(settings, "sqs", session=session), names.dlq_url),
        ),
        notifiers=[
            SnsNotifier(client(settings, "sns", session=session), names.topic_arn),
            *others,
        ],
    )


__all__ = ["Deferred", "ResourceNames", "build", "client", "resolve_names", "stack_outputs"]

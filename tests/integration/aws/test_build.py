"""build(settings): explicit names, names from stack outputs, and the errors that say why not."""

from __future__ import annotations

import boto3
import pytest

from salesflow.adapters.aws import Deferred, build, resolve_names
from salesflow.adapters.aws.catalog import DynamoCatalog
from salesflow.adapters.aws.letters import DynamoDeadLetters
from salesflow.adapters.aws.locks import DynamoLocks
from salesflow.adapters.aws.s3 import S3ObjectStore
from salesflow.adapters.aws.sns import SnsNotifier
from salesflow.adapters.aws.sqs import SqsLetterNotices
from salesflow.adapters.lake import ParquetLake
from salesflow.config import Settings
from salesflow.errors import TerminalError
from salesflow.models import Alert
from tests.fixtures.moto_server import MotoServer
from tests.integration.aws.tables import create_tables

pytestmark = pytest.mark.aws


class Log:
    name = "log"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


def test_build_from_explicit_settings(aws_env: MotoServer) -> None:
    boto3.client("s3").create_bucket(Bucket="data")
    url = boto3.client("sqs").create_queue(QueueName="dlq")["QueueUrl"]
    topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
    create_tables(boto3.client("dynamodb"), "sf-")
    settings = Settings(
        backend="aws",
        aws={
            "bucket": "data",
            "dlq_url": url,
            "topic_arn": topic,
            "table_prefix": "sf-",
            "endpoint_url": aws_env.endpoint,
            "region": "us-east-1",
        },
    )
    log = Log()
    backend = build(settings, notifiers=[log])
    assert isinstance(backend.store, S3ObjectStore) and backend.store.bucket == "data"
    assert isinstance(backend.lake, Deferred)  # built on first use: no Polars before
    lake = backend.lake.built()
    assert isinstance(lake, ParquetLake) and lake.store is backend.store
    assert isinstance(lake.catalog, DynamoCatalog) and lake.catalog.table == "sf-meta"
    assert isinstance(backend.locks, DynamoLocks) and backend.locks.table == "sf-meta"
    assert isinstance(backend.letters, DynamoDeadLetters) and backend.letters.table == "sf-letters"
    notices = backend.letters.notices
    assert isinstance(notices, SqsLetterNotices) and notices.queue_url == url
    assert [n.name for n in backend.notifiers] == ["sns", "log"]
    assert isinstance(backend.notifiers[0], SnsNotifier)
    backend.store.put_bytes("inbox/x.json", b"[]")
    assert backend.tables.next_seq() == 1
    assert backend.letters.count() == 0
    backend.close()
    # Without explicit notifiers, the other configured sinks come from the settings.
    logged = build(
        settings.model_copy(
            update={"alerts": settings.alerts.model_copy(update={"sinks": ["log", "sns"]})}
        )
    )
    assert [n.name for n in logged.notifiers][0] == "sns" and len(logged.notifiers) == 2


def test_a_missing_stack_says_how_to_fix_it(aws_env: MotoServer) -> None:
    with pytest.raises(TerminalError, match="does not exist") as info:
        resolve_names(Settings(aws={"stack_name": "nothing-here"}))
    assert "salesflow aws deploy" in info.value.hint


def test_explicit_settings_win_without_asking_cloudformation(aws_env: MotoServer) -> None:
    names = resolve_names(
        Settings(
            aws={
                "bucket": "b",
                "dlq_url": "u",
                "topic_arn": "t",
                "table_prefix": "p-",
                "stack_name": "none",
            }
        )
    )
    assert (names.bucket, names.table_prefix, names.state_machine_arn) == ("b", "p-", None)

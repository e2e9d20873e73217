"""SnsNotifier against the emulator, read back through an SQS subscription to the topic."""

from __future__ import annotations

import json

import boto3
import pytest

from salesflow.adapters.aws.retry import Backoff
from salesflow.adapters.aws.sns import SnsNotifier, subject
from salesflow.errors import TerminalError, TransientError
from salesflow.models import Alert
from salesflow.ports import Notifier
from tests.fixtures.moto_server import MotoServer
from tests.integration.aws.spy import Spy, raising

pytestmark = pytest.mark.aws
ALERT = Alert(
    id="sale_events:S-9",
    dataset="sale_events",
    record_key="S-9",
    amount=512.5,
    threshold=400.0,
    source_file="inbox/sale_events/tick-1.json",
    message="High value sale: 512.50 > 400.00",
)


def test_publish_reaches_an_sqs_subscriber_as_json(aws_env: MotoServer) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    url = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    notifier = SnsNotifier(sns, topic)
    assert isinstance(notifier, Notifier)
    assert notifier.name == "sns"
    notifier.send(ALERT)
    envelope = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    assert envelope["Subject"] == "High value sale 512.50 in sale_events (S-9)"
    assert Alert.from_dict(json.loads(envelope["Message"])) == ALERT
    assert envelope["MessageAttributes"]["dataset"]["Value"] == "sale_events"


def test_subject_is_one_short_ascii_line() -> None:
    odd = Alert("x", "sale_events", "Café\n" + "k" * 200, 1.0, 0.0, "f", "m")
    line = subject(odd)
    assert line.isascii() and "\n" not in line and len(line) < 100


def test_throttling_is_transient_and_a_missing_topic_terminal(aws_env: MotoServer) -> None:
    sns = boto3.client("sns")
    throttled = Spy(sns, {"publish": raising("Throttling", "Publish")})
    fast = Backoff(max_attempts=2, sleep=lambda _s: None)
    with pytest.raises(TransientError):
        SnsNotifier(throttled, "arn:aws:sns:us-east-1:123456789012:alerts", backoff=fast).send(
            ALERT
        )  # type: ignore[arg-type]
    assert throttled.calls["publish"] == 2
    with pytest.raises(TerminalError):
        SnsNotifier(sns, "arn:aws:sns:us-east-1:123456789012:none", backoff=fast).send(ALERT)

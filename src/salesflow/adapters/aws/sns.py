"""High-value sale alerts on SNS (seed 003): one publish per alert to the alerts topic.

The message is per protocol (``MessageStructure="json"``): e-mail subscribers get a short text
to read, everything else (SQS, Lambda, HTTPS) gets the alert as JSON to parse. ``dataset`` and
``amount`` are also message attributes, so a subscription can filter (say, only amounts above
1000) with a filter policy instead of code. ``alert_id`` is one too: a publish repeated after
a crash carries the same id, so subscribers that keep the ids they have seen drop the repeat.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.retry import Backoff
from salesflow.models import Alert

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SUBJECT_LIMIT = 99


def subject(alert: Alert) -> str:
    """An SNS subject: ASCII, one line, under 100 characters.

    >>> subject(Alert("d:1", "sale_events", "S1", 512.5, 400, "f", "m"))  # doctest: +SKIP
    'High value sale 512.50 in sale_events (S1)'
    """
    text = f"High value sale {alert.amount:.2f} in {alert.dataset} ({alert.record_key})"
    ascii_text = text.encode("ascii", "replace").decode().replace("\n", " ")
    return ascii_text[:SUBJECT_LIMIT]


def text(alert: Alert) -> str:
    """The human-readable body for e-mail subscribers."""
    return (
        f"{alert.message}\n\n"
        f"Amount: {alert.amount:.2f} (threshold {alert.threshold:.2f})\n"
        f"Dataset: {alert.dataset}\nRecord: {alert.record_key}\n"
        f"Source file: {alert.source_file}\nAlert id: {alert.id}\n"
    )


class SnsNotifier:
    """A ``Notifier`` publishing to one topic; ``client`` is a boto3 SNS client."""

    name = "sns"

    def __init__(
        self, client: SNSClient, topic_arn: str, *, backoff: Backoff | None = None
    ) -> None:
        self.client = client
        self.topic_arn = topic_arn
        self.backoff = backoff or Backoff(max_attempts=3)

    def send(self, alert: Alert) -> None:
        """Publish ``alert``; throttling is retried briefly, then raises ``TransientError`` so
        the alert stays PENDING and is retried by the next dispatch."""
        body = json.dumps(alert.to_dict(), default=str)
        message = json.dumps({"default": body, "email": text(alert)})
        retry.call(
            self.backoff,
            f"sns publish alert {alert.id} to {self.topic_arn}",
            lambda: self.client.publish(
                TopicArn=self.topic_arn,
                Subject=subject(alert),
                Message=message,
                MessageStructure="json",
                MessageAttributes={
                    "dataset": {"DataType": "String", "StringValue": alert.dataset},
                    "amount": {"DataType": "Number", "StringValue": f"{alert.amount:.2f}"},
                    "alert_id": {"DataType": "String", "StringValue": alert.id},
                },
            ),
        )

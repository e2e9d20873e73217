"""Notices of rejected records on SQS (seeds 001/002's dead-letter queue), never the truth.

The letters live in DynamoDB (``letters.py``); ``DynamoDeadLetters`` tells this queue about each
letter the first time it is stored, for consumers that want a message per rejected record.
Each notice is one message: the body is ``DeadLetter.to_dict()`` as JSON, and the message
attributes ``letter_id``, ``rules`` (comma list), ``dataset`` and ``source_file`` let a consumer
route or filter without parsing the body. Sends go in batches of 10 (and at most 256 KiB); a
letter too big for a message is announced without its ``raw`` record (``raw_omitted``), since
the table holds it anyway. A FIFO queue (URL ending ``.fifo``) deduplicates by letter id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.retry import Backoff
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_BATCH = 10
MAX_BATCH_BYTES = 256 * 1024


def _attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class SqsLetterNotices:
    """Announces letters on one SQS queue; ``client`` is a boto3 SQS client."""

    def __init__(
        self, client: SQSClient, queue_url: str, *, backoff: Backoff | None = None
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self.backoff = backoff or Backoff()

    def _entry(self, index: int, letter: DeadLetter, *, with_raw: bool = True) -> dict[str, Any]:
        attributes = {
            "letter_id": _attribute(letter.id),
            "dataset": _attribute(letter.dataset),
            "source_file": _attribute(letter.source_file),
        }
        if letter.rules:
            attributes["rules"] = _attribute(",".join(letter.rules))
        body = letter.to_dict()
        if not with_raw:
            body["raw"] = {}
            body["raw_omitted"] = True
        entry: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": json.dumps(body, default=str, ensure_ascii=False),
            "MessageAttributes": attributes,
        }
        if self.fifo:
            entry["MessageGroupId"] = letter.dataset
            entry["MessageDeduplicationId"] = hashlib.sha256(letter.id.encode()).hexdigest()
        return entry

    def _size(self, entry: dict[str, Any]) -> int:
        attrs = entry["MessageAttributes"].items()
        return len(entry["MessageBody"].encode()) + sum(
            len(k) + len(v["StringValue"].encode()) + len("String") for k, v in attrs
        )

    def _batches(self, letters: Sequence[DeadLetter]) -> Iterator[list[dict[str, Any]]]:
        """Entries grouped by at most 10 messages and 256 KiB of payload per request."""
        batch: list[dict[str, Any]] = []
        total = 0
        for index, letter in enumerate(letters):
            entry = self._entry(index, letter)
            size = self._size(entry)
            if size > MAX_BATCH_BYTES:
                entry = self._entry(index, letter, with_raw=False)
                size = self._size(entry)
            if batch and (len(batch) == MAX_BATCH or total + size > MAX_BATCH_BYTES):
                yield batch
                batch, total = [], 0
            batch.append(entry)
            total += size
        if batch:
            yield batch

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """One notice per letter, SendMessageBatch in tens; entries SQS could not take are
        retried with backoff."""
        for batch in self._batches(letters):
            self._send_batch(batch)

    def _send_batch(self, entries: list[dict[str, Any]]) -> None:
        pending = entries
        for attempt in range(self.backoff.max_attempts):
            response = retry.call(
                self.backoff,
                f"sqs send to {self.queue_url}",
                lambda pending=pending: self.client.send_message_batch(  # type: ignore[misc]
                    QueueUrl=self.queue_url, Entries=pending
                ),
            )
            failed = response.get("Failed", [])
            if not failed:
                return
            senders = [f for f in failed if f.get("SenderFault")]
            if senders:
                first = senders[0]
                raise TerminalError(
                    f"sqs refused a rejection notice for {self.queue_url}: "
                    f"{first.get('Code')}: {first.get('Message')}",
                    hint="the message is malformed; check the letter's attributes and size",
                )
            retry_ids = {f["Id"] for f in failed}
            pending = [e for e in pending if e["Id"] in retry_ids]
            if attempt + 1 < self.backoff.max_attempts:
                self.backoff.pause(attempt)
        raise self.backoff.give_up(f"sqs send to {self.queue_url}", f"{len(pending)} unsent")

"""The dead-letter queue on SQS: rejected records with every reason (seeds 001/002).

Each letter is one message: the body is ``DeadLetter.to_dict()`` as JSON, and the message
attributes ``letter_id``, ``rules`` (comma list), ``dataset`` and ``source_file`` let a consumer
route or filter without parsing the body. Sends go in batches of 10 (and at most 256 KiB).

Exactly-once on a standard queue: a FIFO queue (URL ending ``.fifo``) deduplicates by the
letter id itself. A standard queue cannot, so a letter re-sent after a crash may be stored
twice; the pipeline's steps are idempotent (letters are sent once per file attempt), and
readers deduplicate by the deterministic letter id: ``list`` shows each id once and ``mark``
deletes every copy it saw.

Reading is receive-based: ``list`` receives every message (keeping them invisible while it
scans so none is seen twice), then makes them visible again at once. The receipt handle of the
last receive is kept on ``DeadLetter.receipt``, and ``mark(REDRIVEN | DISCARDED)`` deletes the
message with it. Every ``list`` counts as one receive of each message, so the queue's redrive
policy to the poison queue uses a high ``maxReceiveCount`` (see infra/template.yaml).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.errors import translate
from salesflow.adapters.aws.retry import Backoff
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter, LetterStatus
from salesflow.ports import iter_batches

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_BATCH = 10
MAX_BATCH_BYTES = 256 * 1024
GONE = (LetterStatus.REDRIVEN, LetterStatus.DISCARDED)


def _attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class SqsDeadLetterQueue:
    """A ``DeadLetterQueue`` over one SQS queue; ``client`` is a boto3 SQS client.

    ``visibility_timeout`` is how long messages stay hidden while ``list`` scans the queue;
    ``wait_seconds`` is the long poll that confirms the queue is drained (short polls of a
    standard queue may come back empty while messages remain).
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        backoff: Backoff | None = None,
        visibility_timeout: int = 30,
        wait_seconds: int = 1,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self.backoff = backoff or Backoff()
        self.visibility_timeout = visibility_timeout
        self.wait_seconds = wait_seconds
        self._receipts: dict[str, list[str]] = {}

    # sending
    def _entry(self, index: int, letter: DeadLetter) -> dict[str, Any]:
        attributes = {
            "letter_id": _attribute(letter.id),
            "dataset": _attribute(letter.dataset),
            "source_file": _attribute(letter.source_file),
        }
        if letter.rules:
            attributes["rules"] = _attribute(",".join(letter.rules))
        entry: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": json.dumps(letter.to_dict(), default=str, ensure_ascii=False),
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
                raise TerminalError(
                    f"dead letter {letter.id} of {letter.source_file} is {size} bytes, over "
                    "the SQS message limit of 256 KiB",
                    hint="the raw record is too large to dead-letter; fix the source file",
                )
            if batch and (len(batch) == MAX_BATCH or total + size > MAX_BATCH_BYTES):
                yield batch
                batch, total = [], 0
            batch.append(entry)
            total += size
        if batch:
            yield batch

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """SendMessageBatch in tens; entries SQS could not take are retried with backoff."""
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
                    f"sqs refused a dead letter for {self.queue_url}: "
                    f"{first.get('Code')}: {first.get('Message')}",
                    hint="the message is malformed; check the letter's attributes and size",
                )
            retry_ids = {f["Id"] for f in failed}
            pending = [e for e in pending if e["Id"] in retry_ids]
            if attempt + 1 < self.backoff.max_attempts:
                self.backoff.pause(attempt)
        raise self.backoff.give_up(f"sqs send to {self.queue_url}", f"{len(pending)} unsent")

    # reading
    def _receive(self, wait: int) -> list[Any]:
        response = retry.call(
            self.backoff,
            f"sqs receive from {self.queue_url}",
            lambda: self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=MAX_BATCH,
                VisibilityTimeout=self.visibility_timeout,
                WaitTimeSeconds=wait,
                MessageAttributeNames=["All"],
            ),
        )
        return list(response.get("Messages", []))

    def _scan(self) -> list[DeadLetter]:
        """Every letter in the queue, each id once, made visible again before returning."""
        seen: dict[str, DeadLetter] = {}
        receipts: dict[str, list[str]] = {}
        handles: list[str] = []
        wait = 0
        while True:
            messages = self._receive(wait)
            if not messages:
                if wait or not self.wait_seconds:
                    break
                wait = self.wait_seconds
                continue
            wait = 0
            for message in messages:
                handle = message["ReceiptHandle"]
                handles.append(handle)
                letter = DeadLetter.from_dict(json.loads(message["Body"]))
                receipts.setdefault(letter.id, []).append(handle)
                letter.receipt = handle
                seen.setdefault(letter.id, letter)
        self._release(handles)
        self._receipts = receipts
        return sorted(seen.values(), key=lambda d: (d.created_at, d.source_file, d.record))

    def _release(self, handles: list[str]) -> None:
        """Make scanned messages visible again now, not when the timeout ends."""
        for batch in iter_batches(handles, MAX_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(batch)
            ]
            retry.call(
                self.backoff,
                f"sqs change visibility on {self.queue_url}",
                lambda entries=entries: self.client.change_message_visibility_batch(  # type: ignore[misc]
                    QueueUrl=self.queue_url, Entries=entries
                ),
            )

    def list(
        self,
        *,
        status: LetterStatus | None = None,
        source_file: str | None = None,
        rule: str | None = None,
        limit: int | None = None,
    ) -> list[DeadLetter]:
        """Letters matching every filter, oldest first. Only NEW letters live in the queue:
        REDRIVEN and DISCARDED ones were deleted, so asking for them returns nothing."""
        if status in GONE:
            return []
        found = [
            letter
            for letter in self._scan()
            if (source_file is None or letter.source_file == source_file)
            and (rule is None or rule in letter.rules)
        ]
        return found[:limit] if limit is not None else found

    def get(self, letter_id: str) -> DeadLetter | None:
        return next((d for d in self._scan() if d.id == letter_id), None)

    def mark(self, letters: Sequence[DeadLetter], status: LetterStatus) -> None:
        """REDRIVEN or DISCARDED deletes the messages (every copy seen); NEW keeps them."""
        if status not in GONE or not letters:
            return
        if any(d.id not in self._receipts and not d.receipt for d in letters):
            self._scan()
        handles: list[str] = []
        for letter in letters:
            known = self._receipts.pop(letter.id, [])
            if letter.receipt and letter.receipt not in known:
                known.append(letter.receipt)
            handles.extend(known)
        for batch in iter_batches(handles, MAX_BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)]
            response = retry.call(
                self.backoff,
                f"sqs delete from {self.queue_url}",
                lambda entries=entries: self.client.delete_message_batch(  # type: ignore[misc]
                    QueueUrl=self.queue_url, Entries=entries
                ),
            )
            # A receipt made stale by another reader's receive is not an error: that reader
            # now owns the message and will see it is already handled by its letter id.
            errors = [
                f for f in response.get("Failed", []) if f.get("Code") != "ReceiptHandleIsInvalid"
            ]
            if errors:
                raise TerminalError(
                    f"sqs could not delete dead letters from {self.queue_url}: "
                    f"{errors[0].get('Code')}: {errors[0].get('Message')}",
                    hint="run the command again; letters still queued stay NEW",
                )

    def count(self, status: LetterStatus | None = None) -> int:
        """Approximate number of messages (visible + in flight); 0 for REDRIVEN/DISCARDED."""
        if status in GONE:
            return 0
        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"sqs attributes of {self.queue_url}") from exc
        return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

"""SqsDeadLetterQueue against the emulator: batches of 10, attributes, list, mark, count."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from salesflow.adapters.aws.retry import Backoff
from salesflow.adapters.aws.sqs import SqsDeadLetterQueue
from salesflow.errors import TerminalError, TransientError
from salesflow.models import DeadLetter, LetterStatus, Reason
from salesflow.ports import DeadLetterQueue
from tests.fixtures.moto_server import MotoServer
from tests.integration.aws.spy import Spy

pytestmark = pytest.mark.aws
T0 = datetime(2024, 3, 1, tzinfo=UTC)
FAST = Backoff(max_attempts=3, sleep=lambda _s: None)


def letter(
    n: int,
    *,
    source: str = "inbox/orders_json/a.json",
    rules: tuple[str, ...] = ("presence.contact_info",),
) -> DeadLetter:
    return DeadLetter(
        id=f"sha:{n}",
        dataset="orders_json",
        source_file=source,
        record=n,
        raw={"OrderId": f"O{n}", "qty": -1},
        reasons=[Reason(rule=r, field="qty", message=f"broke {r}") for r in rules],
        created_at=T0 + timedelta(seconds=n),
    )


def make_queue(name: str = "dlq", **attrs: str) -> tuple[Spy, str]:
    client = boto3.client("sqs")
    url = client.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    return Spy(client), url


@pytest.fixture
def queue(aws_env: MotoServer) -> SqsDeadLetterQueue:
    spy, url = make_queue()
    return SqsDeadLetterQueue(spy, url, backoff=FAST, wait_seconds=0)  # type: ignore[arg-type]


def test_is_a_dead_letter_queue(queue: SqsDeadLetterQueue) -> None:
    assert isinstance(queue, DeadLetterQueue)


def test_send_in_batches_of_ten_with_body_and_attributes(queue: SqsDeadLetterQueue) -> None:
    letters = [letter(n, rules=("range.qty", "presence.contact_info")) for n in range(23)]
    queue.send(letters)
    spy: Spy = queue.client  # type: ignore[assignment]
    sizes = [len(kw["Entries"]) for kw in spy.kwargs["send_message_batch"]]
    assert sizes == [10, 10, 3]
    raw = boto3.client("sqs").receive_message(
        QueueUrl=queue.queue_url, MaxNumberOfMessages=1, MessageAttributeNames=["All"]
    )["Messages"][0]
    body = json.loads(raw["Body"])
    assert set(body) >= {"id", "dataset", "source_file", "record", "raw", "reasons"}
    attrs = {k: v["StringValue"] for k, v in raw["MessageAttributes"].items()}
    assert attrs["rules"] == "presence.contact_info,range.qty"
    assert attrs["dataset"] == "orders_json"
    assert attrs["source_file"] == "inbox/orders_json/a.json"
    assert attrs["letter_id"] == body["id"]
    assert queue.count() == 23


def test_list_filters_and_returns_letters_to_the_queue(queue: SqsDeadLetterQueue) -> None:
    queue.send([letter(n) for n in range(12)])
    queue.send(
        [letter(n, source="inbox/orders_json/b.json", rules=("type.qty",)) for n in range(12, 15)]
    )
    everything = queue.list()
    assert [d.record for d in everything] == list(range(15))
    assert all(d.receipt for d in everything)
    assert [d.record for d in queue.list(source_file="inbox/orders_json/b.json")] == [12, 13, 14]
    assert [d.record for d in queue.list(rule="type.qty", limit=2)] == [12, 13]
    assert queue.list(status=LetterStatus.REDRIVEN) == []
    assert len(queue.list(status=LetterStatus.NEW)) == 15  # visible again right after a list
    found = queue.get("sha:13")
    assert found is not None and found.raw == {"OrderId": "O13", "qty": -1}
    assert queue.get("sha:999") is None


def test_mark_deletes_every_copy_of_a_letter(queue: SqsDeadLetterQueue) -> None:
    queue.send([letter(1), letter(2), letter(3)])
    queue.send([letter(1)])  # re-sent after a crash: a standard queue keeps both copies
    listed = queue.list()
    assert [d.id for d in listed] == ["sha:1", "sha:2", "sha:3"]
    queue.mark([listed[0], listed[1]], LetterStatus.REDRIVEN)
    assert [d.id for d in queue.list()] == ["sha:3"]
    assert queue.count() == 1
    assert queue.count(LetterStatus.DISCARDED) == 0


def test_mark_without_a_receipt_finds_the_message(queue: SqsDeadLetterQueue) -> None:
    queue.send([letter(1), letter(2)])
    fresh = SqsDeadLetterQueue(queue.client, queue.queue_url, backoff=FAST, wait_seconds=0)
    fresh.mark([letter(2)], LetterStatus.DISCARDED)
    fresh.mark([letter(1)], LetterStatus.NEW)  # NEW changes nothing
    assert [d.id for d in queue.list()] == ["sha:1"]


def test_fifo_queue_deduplicates_by_letter_id(aws_env: MotoServer) -> None:
    spy, url = make_queue("dlq.fifo", FifoQueue="true")
    queue = SqsDeadLetterQueue(spy, url, backoff=FAST, wait_seconds=0)  # type: ignore[arg-type]
    queue.send([letter(1), letter(2)])
    queue.send([letter(1)])
    assert queue.count() == 2
    assert spy.kwargs["send_message_batch"][0]["Entries"][0]["MessageGroupId"] == "orders_json"


def test_long_poll_confirms_the_queue_is_drained(aws_env: MotoServer) -> None:
    spy, url = make_queue()
    queue = SqsDeadLetterQueue(spy, url, backoff=FAST, wait_seconds=1)  # type: ignore[arg-type]
    queue.send([letter(1)])
    assert [d.id for d in queue.list()] == ["sha:1"]
    waits = [kw["WaitTimeSeconds"] for kw in spy.kwargs["receive_message"]]
    assert waits == [0, 0, 1]


def failing_send(codes: list[dict[str, Any]]) -> Any:
    """A send_message_batch hook that reports ``codes`` as failed on the first call."""

    def hook(n: int, kwargs: dict[str, Any], real: Any) -> Any:
        if n == 1:
            first = kwargs["Entries"][: len(codes)]
            if kwargs["Entries"][len(codes) :]:
                real(QueueUrl=kwargs["QueueUrl"], Entries=kwargs["Entries"][len(codes) :])
            return {
                "Successful": [],
                "Failed": [{"Id": e["Id"], **c} for e, c in zip(first, codes, strict=True)],
            }
        return real(**kwargs)

    return hook


def test_entries_sqs_could_not_take_are_retried(aws_env: MotoServer) -> None:
    spy, url = make_queue()
    spy.hooks["send_message_batch"] = failing_send(
        [{"SenderFault": False, "Code": "InternalError", "Message": "busy"}] * 2
    )
    queue = SqsDeadLetterQueue(spy, url, backoff=FAST, wait_seconds=0)  # type: ignore[arg-type]
    queue.send([letter(n) for n in range(5)])
    assert spy.calls["send_message_batch"] == 2
    assert [d.record for d in queue.list()] == [0, 1, 2, 3, 4]


def test_sender_faults_are_terminal(aws_env: MotoServer) -> None:
    spy, url = make_queue()
    spy.hooks["send_message_batch"] = failing_send(
        [{"SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}]
    )
    queue = SqsDeadLetterQueue(spy, url, backoff=FAST, wait_seconds=0)  # type: ignore[arg-type]
    with pytest.raises(TerminalError, match="InvalidMessageContents"):
        queue.send([letter(1)])


def test_persistent_failures_give_up_as_transient(aws_env: MotoServer) -> None:
    spy, url = make_queue()
    busy = {"SenderFault": False, "Code": "InternalError", "Message": "busy"}
    spy.hooks["send_message_batch"] = lambda n, kw, real: {
        "Failed": [{"Id": e["Id"], **busy} for e in kw["Entries"]]
    }
    queue = SqsDeadLetterQueue(spy, url, backoff=FAST, wait_seconds=0)  # type: ignore[arg-type]
    with pytest.raises(TransientError, match="after 3 attempts"):
        queue.send([letter(1)])
    assert spy.calls["send_message_batch"] == 3


def test_oversized_letters_are_refused_and_big_batches_split(queue: SqsDeadLetterQueue) -> None:
    big = letter(1)
    big.raw = {"blob": "x" * 300_000}
    with pytest.raises(TerminalError, match="256 KiB"):
        queue.send([big])
    halves = []
    for n in range(3):
        d = letter(n)
        d.raw = {"blob": "y" * 100_000}
        halves.append(d)
    queue.send(halves)
    spy: Spy = queue.client  # type: ignore[assignment]
    assert [len(kw["Entries"]) for kw in spy.kwargs["send_message_batch"]] == [2, 1]


def test_missing_queue_is_a_terminal_error(aws_env: MotoServer) -> None:
    client = boto3.client("sqs")
    url = client.create_queue(QueueName="gone")["QueueUrl"]
    client.delete_queue(QueueUrl=url)
    queue = SqsDeadLetterQueue(client, url, backoff=FAST, wait_seconds=0)
    with pytest.raises(TerminalError):
        queue.count()
    with pytest.raises(TerminalError):
        queue.send([letter(1)])

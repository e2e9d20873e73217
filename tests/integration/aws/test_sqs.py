"""SqsLetterNotices against the emulator: a notice per letter, batches of 10, attributes,
retries, and letters too big for a message announced without their raw record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from salesflow.adapters.aws.retry import Backoff
from salesflow.adapters.aws.sqs import SqsLetterNotices
from salesflow.errors import TerminalError, TransientError
from salesflow.models import DeadLetter, Reason
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
def queue(aws_env: MotoServer) -> SqsLetterNotices:
    spy, url = make_queue()
    return SqsLetterNotices(spy, url, backoff=FAST)  # type: ignore[arg-type]


def drain(url: str) -> list[dict[str, Any]]:
    client = boto3.client("sqs")
    got: list[dict[str, Any]] = []
    while batch := client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        got.extend(batch)
    return got


def test_send_in_batches_of_ten_with_body_and_attributes(queue: SqsLetterNotices) -> None:
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
    assert len(drain(queue.queue_url)) == 22  # and the one received above


def test_fifo_queue_deduplicates_by_letter_id(aws_env: MotoServer) -> None:
    spy, url = make_queue("dlq.fifo", FifoQueue="true")
    queue = SqsLetterNotices(spy, url, backoff=FAST)  # type: ignore[arg-type]
    queue.send([letter(1), letter(2)])
    queue.send([letter(1)])
    assert sorted(json.loads(m["Body"])["id"] for m in drain(url)) == ["sha:1", "sha:2"]
    assert spy.kwargs["send_message_batch"][0]["Entries"][0]["MessageGroupId"] == "orders_json"


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
    queue = SqsLetterNotices(spy, url, backoff=FAST)  # type: ignore[arg-type]
    queue.send([letter(n) for n in range(5)])
    assert spy.calls["send_message_batch"] == 2
    assert sorted(json.loads(m["Body"])["record"] for m in drain(url)) == [0, 1, 2, 3, 4]


def test_sender_faults_are_terminal(aws_env: MotoServer) -> None:
    spy, url = make_queue()
    spy.hooks["send_message_batch"] = failing_send(
        [{"SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}]
    )
    queue = SqsLetterNotices(spy, url, backoff=FAST)  # type: ignore[arg-type]
    with pytest.raises(TerminalError, match="InvalidMessageContents"):
        queue.send([letter(1)])


def test_persistent_failures_give_up_as_transient(aws_env: MotoServer) -> None:
    spy, url = make_queue()
    busy = {"SenderFault": False, "Code": "InternalError", "Message": "busy"}
    spy.hooks["send_message_batch"] = lambda n, kw, real: {
        "Failed": [{"Id": e["Id"], **busy} for e in kw["Entries"]]
    }
    queue = SqsLetterNotices(spy, url, backoff=FAST)  # type: ignore[arg-type]
    with pytest.raises(TransientError, match="after 3 attempts"):
        queue.send([letter(1)])
    assert spy.calls["send_message_batch"] == 3


def test_a_letter_too_big_for_a_message_is_announced_without_raw(queue: SqsLetterNotices) -> None:
    big = letter(1)
    big.raw = {"blob": "x" * 300_000}
    queue.send([big])
    [message] = drain(queue.queue_url)
    body = json.loads(message["Body"])
    assert body["id"] == "sha:1" and body["raw"] == {} and body["raw_omitted"] is True


def test_big_batches_split_by_size(queue: SqsLetterNotices) -> None:
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
    queue = SqsLetterNotices(client, url, backoff=FAST)
    with pytest.raises(TerminalError):
        queue.send([letter(1)])

"""DynamoDeadLetters beyond the contract: which calls it makes (indexes, never a table
scan), notices on first rejection, compression and the item-size limit."""

from __future__ import annotations

import json
import random
from typing import Any

import boto3
import pytest

from salesflow.adapters.aws.letters import DynamoDeadLetters
from salesflow.adapters.aws.sqs import SqsLetterNotices
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter, LetterStatus, Reason
from tests.fixtures.moto_server import MotoServer
from tests.integration.aws.spy import Spy
from tests.integration.aws.tables import template_tables

pytestmark = pytest.mark.aws


def letter(seq: int, record: int, rule: str = "range.qty", **raw: Any) -> DeadLetter:
    return DeadLetter(
        id=f"{seq}:{record}",
        seq=seq,
        dataset="order_items",
        source_file=f"inbox/order_items/{seq}.csv",
        record=record,
        raw=raw or {"id": str(record)},
        reasons=[Reason(rule, "qty", "bad")],
    )


@pytest.fixture
def spied(aws_env: MotoServer) -> tuple[DynamoDeadLetters, Spy, str]:
    client = boto3.client("dynamodb")
    client.create_table(TableName="sf-letters", **template_tables()["letters"])
    url = boto3.client("sqs").create_queue(QueueName="notices")["QueueUrl"]
    spy = Spy(client)
    store = DynamoDeadLetters(spy, "sf-letters", notices=SqsLetterNotices(boto3.client("sqs"), url))  # type: ignore[arg-type]
    return store, spy, url


def test_filters_query_an_index_and_never_scan_the_table(
    spied: tuple[DynamoDeadLetters, Spy, str],
) -> None:
    store, spy, _url = spied
    store.put([letter(1, n, "range.qty" if n % 2 else "ref.order_id") for n in range(1, 9)])
    spy.calls.clear()
    store.find(status=LetterStatus.NEW, limit=3)
    store.find(dataset="order_items", rule="range.qty")
    store.find(source_file="inbox/order_items/1.csv", status=LetterStatus.NEW)
    store.find(seqs=[1])
    store.find()
    store.count(status=LetterStatus.NEW)
    store.count(rule="ref.order_id")
    assert spy.calls["scan"] == 0 and spy.calls["query"] > 0
    indexes = {kw["IndexName"] for kw in spy.kwargs["query"]}
    assert indexes == {"by_status", "by_rule", "by_source", "by_seq"}
    store.counts()
    assert [kw["IndexName"] for kw in spy.kwargs["scan"]] == ["by_rule"]


def test_a_notice_goes_out_on_first_rejection_only(
    spied: tuple[DynamoDeadLetters, Spy, str],
) -> None:
    store, _spy, url = spied
    first = letter(1, 1)
    store.put([first, letter(1, 2)])
    first.status = LetterStatus.DISCARDED
    store.put([first, letter(2, 1)])
    sqs = boto3.client("sqs")
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies.extend(json.loads(m["Body"])["id"] for m in batch)
    assert sorted(bodies) == ["1:1", "1:2", "2:1"]


def test_big_raw_is_compressed_and_too_big_is_refused_by_name(
    spied: tuple[DynamoDeadLetters, Spy, str],
) -> None:
    store, _spy, _url = spied
    store.put([letter(1, 1, note="ab" * 200_000)])
    item = boto3.client("dynamodb").get_item(TableName="sf-letters", Key={"pk": {"S": "1:1"}})
    assert "raw_z" in item["Item"] and "raw" not in item["Item"]
    noise = random.Random(1).randbytes(450_000).hex()
    with pytest.raises(TerminalError, match="dead letter 1:2 of inbox/order_items/1.csv"):
        store.put([letter(1, 2, blob=noise)])

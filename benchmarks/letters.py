"""The dead-letter store: what writing, paging and counting cost as letters pile up.

``python -m benchmarks.letters [--letters 300000] [--dynamo 5000]`` prints one JSON object:

- ``sqlite``: ``SqliteDeadLetters`` on a fresh file: seconds to put the letters 50k at a time,
  a page of 50 at the end of the queue (keyset), ``count(status=)`` and ``counts()``;
- ``dynamodb`` (moto's server, in this process): put, ``counts()`` (a scan of the ``by_rule``
  index), and what that scan read: pages, items and bytes of index (the read units AWS
  would bill are ``bytes / 4 KB / 2`` for an eventually consistent scan). moto is a Python
  emulator: its seconds say nothing about DynamoDB's; the call and byte counts do.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from salesflow.models import DeadLetter, LetterEvent, LetterStatus, Reason

RULES = ("ref.product_id", "range.positive", "email.format")
AT = datetime(2024, 3, 1, tzinfo=UTC)


def letters(n: int) -> list[DeadLetter]:
    return [
        DeadLetter(
            id=f"{1 + i // 1000}:{i % 1000 + 1}",
            seq=1 + i // 1000,
            dataset="order_items",
            source_file=f"inbox/order_items/{i // 1000}.csv",
            record=i % 1000 + 1,
            raw={"id": str(i), "sale_price": "-1", "note": "x" * 200},
            reasons=[Reason(RULES[i % 3], "sale_price", f"rule {RULES[i % 3]} broken")],
            created_at=AT,
            history=[LetterEvent(at=AT, event="rejected", run=1 + i // 1000)],
        )
        for i in range(n)
    ]


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return round(time.perf_counter() - start, 3), value


def sqlite(n: int) -> dict[str, Any]:
    from salesflow.adapters.sqlite.letters import SqliteDeadLetters

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteDeadLetters(Path(tmp) / "salesflow.db")
        batch = letters(n)
        put = 0.0
        for start in range(0, n, 50_000):
            seconds, _ = _timed(lambda s=start: store.put(batch[s : s + 50_000]))
            put += seconds
        last = batch[-51].id
        page, found = _timed(lambda: store.find(status=LetterStatus.NEW, limit=50, after=last))
        assert len(found) == 50
        count, _ = _timed(lambda: store.count(status=LetterStatus.NEW))
        counts, _ = _timed(store.counts)
        size = (Path(tmp) / "salesflow.db").stat().st_size
        store.close()
    return {
        "letters": n,
        "put_seconds": round(put, 2),
        "letters_per_second": round(n / put),
        "last_page_seconds": page,
        "count_seconds": count,
        "counts_seconds": counts,
        "file_mb": round(size / 2**20, 1),
    }


def dynamodb(n: int) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer
    from tests.fixtures.moto_server import free_port
    from tests.integration.aws.tables import template_tables

    from salesflow.adapters.aws.letters import DynamoDeadLetters

    port = free_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client("dynamodb")
        client.create_table(TableName="bench-letters", **template_tables()["letters"])
        store = DynamoDeadLetters(client, "bench-letters")
        put, _ = _timed(lambda: store.put(letters(n)))
        counts, groups = _timed(store.counts)
        pages = items = 0
        request: dict[str, Any] = {
            "TableName": "bench-letters",
            "IndexName": "by_rule",
            "ProjectionExpression": "#r, r_dataset, r_status",
            "ExpressionAttributeNames": {"#r": "rule"},
        }
        while True:  # the same scan, counted
            response = client.scan(**request)
            pages += 1
            items += len(response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        # A scan is billed by the size of the index items read, whatever it projects.
        sample = client.scan(TableName="bench-letters", IndexName="by_rule", Limit=100)["Items"]
        size = round(sum(len(json.dumps(i)) for i in sample) / len(sample))
    finally:
        server.stop()
    return {
        "letters": n,
        "put_seconds_on_moto": round(put, 1),
        "counts_seconds_on_moto": counts,
        "groups": len(groups),
        "scan_pages": pages,
        "index_items_read": items,
        "bytes_per_index_item": size,
        "read_units_per_1000_letters": round(1000 * size / 4096 / 2, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=300_000)
    parser.add_argument("--dynamo", type=int, default=5_000)
    args = parser.parse_args()
    print(json.dumps({"sqlite": sqlite(args.letters), "dynamodb": dynamodb(args.dynamo)}, indent=2))


if __name__ == "__main__":
    main()

"""The same ``salesflow`` commands, with ``--backend aws``, against a stack in the emulator.

The CLI runs as a real subprocess that reaches moto over HTTP through ``AWS_ENDPOINT_URL``
and finds the resources from the stack's outputs (``SALESFLOW_STACK_NAME``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.e2e.aws.harness import Stack, keys_under
from tests.fixtures.cli import Cli

pytestmark = [pytest.mark.aws, pytest.mark.subprocess]

HEADER = "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
SEED_002 = {
    "orders": [
        {
            "contact-info": {"name": "Foo Bar", "email": "foobar@test.com"},
            "order-info": {"OrderId": "1", "item-id": "101", "item-desc": "Item One", "qty": "1"},
        },
        {"order-info": {"orderId": "2", "item-id": "102", "item-desc": "Item Two", "qty": "2"}},
    ]
}
SALES = (
    '{"sale_id": "a1", "product": "Desk", "category": "Office", "price": 450.0, "quantity": 1,'
    ' "timestamp": "2024-05-01T10:00:00Z"}\n'
    '{"sale_id": "a2", "product": "Lamp", "category": "Office", "price": 30.0, "quantity": 2,'
    ' "timestamp": "2024-05-01T11:00:00Z"}\n'
)


def test_cli_commands_work_against_the_stack(stack: Stack, tmp_path: Path) -> None:
    cli = Cli(
        tmp_path / "unused",
        env={
            "SALESFLOW_BACKEND": "aws",
            "SALESFLOW_STACK_NAME": stack.name,
            "SALESFLOW_ALERTS__SINKS": '["sns"]',
        },
    )
    orders = tmp_path / "mock.json"
    orders.write_text(json.dumps(SEED_002))
    sales = tmp_path / "sales.jsonl"
    sales.write_text(SALES)

    ingested = {s["dataset"]: s for s in cli.json("ingest", orders, sales)}
    assert ingested["orders_json"]["status"] == "SUCCESS"
    assert (ingested["orders_json"]["valid"], ingested["orders_json"]["rejected"]) == (1, 1)
    assert (ingested["sale_events"]["valid"], ingested["sale_events"]["rejected"]) == (2, 0)
    archived = keys_under(stack.bucket, "processed/")
    assert any(k.endswith("-mock.json") and "/orders_json/" in k for k in archived)
    assert not keys_under(stack.bucket, "inbox/")

    status = cli.json("status")
    assert status["files"]["SUCCESS"] == 2 and status["valid"] == 3 and status["rejected"] == 1

    [letter] = cli.json("dlq", "list", "--rule", "presence.contact_info")
    assert letter["raw"]["order-info"]["orderId"] == "2"
    assert cli.json("dlq", "show", letter["id"])["reasons"][0]["rule"] == "presence.contact_info"

    day = {row["id"]: row for row in cli.json("totals", "--by", "day")}
    assert day["2024-05-01"]["total_amount"] == pytest.approx(510.0)
    [alert] = cli.json("alerts")
    assert alert["record_key"] == "a1" and alert["status"] == "SENT"
    assert cli.json("audit")["ok"] is True

    again = cli.json("ingest", orders)
    assert again[0]["status"] == "DUPLICATE"
    assert cli.json("status")["valid"] == 3

    # the dead-letter workflow, on the DynamoDB table: export, fix, redrive
    exported = tmp_path / "fix.csv"
    cli.run("dlq", "export", "--format", "csv", "--out", exported)
    with exported.open(encoding="utf-8", newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["_letter_id"] == letter["id"]
    row["contact-info"] = json.dumps({"name": "Bo", "email": "bo@example.com"})
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    result = cli.json("dlq", "redrive", "--from", fixed)
    assert (result["redriven"], result["still_failing"]) == (1, 0)
    [redriven] = cli.json("dlq", "list", "--status", "REDRIVEN")
    assert redriven["id"] == letter["id"]
    assert [e["event"] for e in redriven["history"]] == ["rejected", "redriven"]
    assert cli.json("dlq", "list") == []

"""DynamoTables against the emulator: every Tables method, conditional lineage, alert dedup."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import boto3
import polars as pl
import pytest

from salesflow.adapters.aws.dynamodb import KINDS, DynamoTables
from salesflow.adapters.aws.retry import Backoff
from salesflow.errors import TerminalError
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.models import Alert, AlertStatus, FileRecord, PendingFile
from salesflow.ports import Tables
from tests.fixtures.moto_server import MotoServer
from tests.integration.aws.spy import Spy
from tests.integration.aws.tables import create_tables, template_tables

pytestmark = pytest.mark.aws
T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def tables(aws_env: MotoServer) -> DynamoTables:
    client = boto3.client("dynamodb")
    names = create_tables(client)
    return DynamoTables(Spy(client), names, backoff=Backoff(sleep=lambda _s: None))  # type: ignore[arg-type]


def record(key: str, sha: str = "a" * 64, **kw: object) -> FileRecord:
    return FileRecord(key=key, sha256=sha, size=10, dataset="orders_json", started_at=T0, **kw)  # type: ignore[arg-type]


def test_the_template_declares_every_table_the_adapter_uses() -> None:
    assert set(template_tables()) == set(KINDS)


def test_is_tables(tables: DynamoTables) -> None:
    assert isinstance(tables, Tables)


def test_pending_batches(tables: DynamoTables) -> None:
    tables.add_pending(PendingFile("inbox/orders/2.csv", "orders", T0 + timedelta(seconds=5)))
    tables.add_pending(PendingFile("inbox/products/1.csv", "products", T0))
    tables.add_pending(PendingFile("inbox/products/1.csv", "products", T0 + timedelta(hours=1)))
    pending = tables.list_pending()
    assert [(p.key, p.arrived_at) for p in pending] == [
        ("inbox/products/1.csv", T0),  # the first arrival is kept
        ("inbox/orders/2.csv", T0 + timedelta(seconds=5)),
    ]
    tables.remove_pending(["inbox/products/1.csv", "inbox/products/1.csv", "inbox/none"])
    assert [p.key for p in tables.list_pending()] == ["inbox/orders/2.csv"]


def kpis(days: list[date], revenue: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": days,
            "items": [2] * len(days),
            "revenue": [revenue] * len(days),
            "orders": [1] * len(days),
            "avg_basket": [revenue] * len(days),
            "returned": [0] * len(days),
            "return_rate": [0.0] * len(days),
        },
        schema=ORDER_KPIS.schema,
    )


def test_aggregates_replace_and_read(tables: DynamoTables) -> None:
    empty = tables.read_aggregates(ORDER_KPIS)
    assert empty.schema == pl.Schema(ORDER_KPIS.schema) and empty.is_empty()
    d1, d2, d3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
    tables.replace_aggregates(
        ORDER_KPIS, delete=kpis([], 0).select("day"), upsert=kpis([d1, d2, d3], 10.5)
    )
    tables.replace_aggregates(
        ORDER_KPIS, delete=kpis([d3], 0).select("day"), upsert=kpis([d2], 99.25)
    )
    stored = tables.read_aggregates(ORDER_KPIS).sort("day")
    assert stored["day"].to_list() == [d1, d2]
    assert stored["revenue"].to_list() == [10.5, 99.25]
    only = tables.read_aggregates(ORDER_KPIS, column="day", values=[d2])
    assert only["revenue"].to_list() == [99.25]
    assert only.schema == pl.Schema(ORDER_KPIS.schema)


def test_unchanged_aggregate_rows_are_not_rewritten(tables: DynamoTables) -> None:
    rows = pl.DataFrame(
        {
            "scope": ["online_retail.invoice"] * 30,
            "id": [f"I{n}" for n in range(30)],
            "total_amount": [1.5] * 30,
            "records": [2] * 30,
        },
        schema=TOTALS.schema,
    )
    tables.replace_aggregates(TOTALS, delete=rows.clear().select("scope", "id"), upsert=rows)
    spy: Spy = tables.client  # type: ignore[assignment]
    before = spy.calls["batch_write_item"]
    changed = rows.with_columns(
        pl.when(pl.col("id") == "I7")
        .then(9.0)
        .otherwise(pl.col("total_amount"))
        .alias("total_amount")
    )
    tables.replace_aggregates(TOTALS, delete=rows.clear().select("scope", "id"), upsert=changed)
    assert spy.calls["batch_write_item"] == before + 1
    assert spy.kwargs["batch_write_item"][-1]["RequestItems"][tables.names.aggregates][0][
        "PutRequest"
    ]["Item"]["id"] == {"S": "I7"}
    stored = tables.read_aggregates(TOTALS, column="scope", values=["online_retail.invoice"])
    assert stored.height == 30 and stored["total_amount"].sum() == pytest.approx(1.5 * 29 + 9.0)


def test_aggregates_with_two_key_columns_are_separate(tables: DynamoTables) -> None:
    frame = pl.DataFrame(
        {
            "category": ["Jeans", "Tops", "Jeans"],
            "day": [date(2024, 3, 1)] * 2 + [date(2024, 3, 2)],
            "items": [1, 2, 3],
            "revenue": [1.0, 2.0, 3.0],
            "orders": [1, 1, 1],
            "avg_basket": [1.0, 2.0, 3.0],
            "returned": [0, 0, 1],
            "return_rate": [0.0, 0.0, 1 / 3],
        },
        schema=CATEGORY_KPIS.schema,
    )
    tables.replace_aggregates(
        CATEGORY_KPIS, delete=frame.clear().select(CATEGORY_KPIS.key), upsert=frame
    )
    assert (
        tables.read_aggregates(CATEGORY_KPIS)
        .sort("category", "day")
        .equals(frame.sort("category", "day"))
    )
    assert tables.read_aggregates(ORDER_KPIS).is_empty()


def alert(n: int) -> Alert:
    return Alert(
        id=f"sale_events:S{n}",
        dataset="sale_events",
        record_key=f"S{n}",
        amount=400.5 + n,
        threshold=400.0,
        source_file="inbox/sale_events/t.json",
        message="big",
        created_at=T0 + timedelta(seconds=n),
    )


def test_alerts_are_deduplicated_by_id(tables: DynamoTables) -> None:
    assert tables.add_alerts([alert(1), alert(2)]) == [alert(1), alert(2)]
    assert tables.add_alerts([alert(2), alert(3)]) == [alert(3)]
    assert [a.id for a in tables.list_alerts()] == [
        "sale_events:S1",
        "sale_events:S2",
        "sale_events:S3",
    ]
    sent = alert(2)
    sent.status, sent.attempts, sent.sent_at = AlertStatus.SENT, 1, T0
    tables.update_alert(sent)
    assert tables.list_alerts(AlertStatus.SENT) == [sent]
    assert len(tables.list_alerts(AlertStatus.PENDING)) == 2


def test_missing_tables_are_terminal(aws_env: MotoServer) -> None:
    from salesflow.adapters.aws.dynamodb import TableNames

    tables = DynamoTables(boto3.client("dynamodb"), TableNames.from_prefix("none-"))
    with pytest.raises(TerminalError, match="ResourceNotFoundException"):
        tables.next_seq()
    with pytest.raises(TerminalError):
        tables.list_files()

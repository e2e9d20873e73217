"""The state tables on DynamoDB: the ``Tables`` port (lineage, batching, aggregates, alerts).

One table per kind, named ``<prefix><kind>`` (``TableNames``), each keyed by a string ``pk``:

- ``files``: lineage, ``pk`` = inbox key; GSI ``by_sha`` (``sha256``) for content dedup.
  Status changes are conditional writes (``put_file(..., expect=...)``) so two invocations
  cannot both move a file out of IN_PROGRESS.
- ``pending``: files waiting for their batch, ``pk`` = key; adding is ``attribute_not_exists``.
- ``aggregates``: every aggregate in one table, ``pk`` = spec name (``totals``,
  ``category_kpis``, ``order_kpis``), ``sk`` = the row's key values as JSON. One Query reads an
  aggregate; a new spec needs no new table. Replacing writes only rows that changed.
- ``alerts``: ``pk`` = alert id; insertion is ``attribute_not_exists(pk)``, so a replayed sale
  never alerts twice.
- ``meta``: ``pk``/``sk``: the file sequence counter, and the record store's schemas and
  per-file row counts (see ``records.py``).
- ``records``: the record store (``DynamoRecordStore``, in ``records.py``).

Every table has server-side encryption and point-in-time recovery in infra/template.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.batch import BatchWriter
from salesflow.adapters.aws.retry import Backoff
from salesflow.models import Alert, FileRecord, FileStatus, PendingFile
from salesflow.ports import AggregateSpec

if TYPE_CHECKING:
    # Polars only for the aggregates: the light Lambda handlers use lineage and batching.
    import polars as pl
    from mypy_boto3_dynamodb import DynamoDBClient

CHECK_FAILED = "ConditionalCheckFailedException"
Item = dict[str, Any]
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class TableNames:
    """The physical name of each table."""

    records: str
    files: str
    pending: str
    aggregates: str
    alerts: str
    meta: str

    @classmethod
    def from_prefix(cls, prefix: str) -> TableNames:
        """``<prefix>records``, ``<prefix>files``, ...: the template's naming."""
        return cls(**{kind: f"{prefix}{kind}" for kind in KINDS})


KINDS = ("records", "files", "pending", "aggregates", "alerts", "meta")


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_item(data: Mapping[str, Any], **keys: str) -> Item:
    """A plain dict (``to_dict()`` of a model) as an item; ``None`` values are left out."""
    item = {k: _serializer.serialize(_dynamo_value(v)) for k, v in data.items() if v is not None}
    item.update({k: {"S": v} for k, v in keys.items()})
    return item


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as a plain dict (numbers come back as ``Decimal``; models convert them)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def aggregate_sort_key(values: Sequence[Any], dtypes: Sequence[pl.DataType]) -> str:
    """The ``sk`` of an aggregate row: its key values, as text, in a JSON list."""
    from salesflow.adapters.aws.items import encode

    parts = []
    for value, dtype in zip(values, dtypes, strict=True):
        attribute = encode(value, dtype)
        parts.append(None if attribute is None else next(iter(attribute.values())))
    return json.dumps(parts, ensure_ascii=False, default=str)


class DynamoTables:
    """The ``Tables`` port on DynamoDB; ``client`` is a boto3 DynamoDB client."""

    def __init__(
        self, client: DynamoDBClient, names: TableNames, *, backoff: Backoff | None = None
    ) -> None:
        self.client = client
        self.names = names
        self.backoff = backoff or Backoff()

    def _call(self, what: str, fn: Any, *, keep: Sequence[str] = ()) -> Any:
        return retry.call(self.backoff, f"dynamodb {what}", fn, keep=keep)

    def _conditional_put(self, table: str, item: Item, condition: str, **values: Any) -> bool:
        """PutItem with ``condition``; False when the condition does not hold."""
        request: Item = {"TableName": table, "Item": item, "ConditionExpression": condition}
        if values:
            request["ExpressionAttributeValues"] = values
        if "#status" in condition:
            request["ExpressionAttributeNames"] = {"#status": "status"}
        try:
            self._call(
                f"put into {table}", lambda: self.client.put_item(**request), keep=[CHECK_FAILED]
            )
        except ClientError:
            return False
        return True

    def _pages(self, operation: str, table: str, **request: Any) -> list[Item]:
        """Every item of a paginated Scan or Query (restarted whole if throttled midway)."""

        def run() -> list[Item]:
            paginator = self.client.get_paginator(operation)  # type: ignore[call-overload]
            pages = paginator.paginate(TableName=table, **request)
            return [item for page in pages for item in page.get("Items", [])]

        result: list[Item] = self._call(f"{operation} {table}", run)
        return result

    def _scan(self, table: str) -> list[Item]:
        return self._pages("scan", table, ConsistentRead=True)

    def _query(self, table: str, **request: Any) -> list[Item]:
        return self._pages("query", table, **request)

    # lineage
    def next_seq(self) -> int:
        """An atomic counter (UpdateItem ADD), strictly increasing across every invocation."""
        response = self._call(
            f"update {self.names.meta}",
            lambda: self.client.update_item(
                TableName=self.names.meta,
                Key={"pk": {"S": "counter"}, "sk": {"S": "seq"}},
                UpdateExpression="ADD #n :one",
                ExpressionAttributeNames={"#n": "value"},
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            ),
        )
        return int(response["Attributes"]["value"]["N"])

    def get_file(self, key: str) -> FileRecord | None:
        response = self._call(
            f"get from {self.names.files}",
            lambda: self.client.get_item(
                TableName=self.names.files, Key={"pk": {"S": key}}, ConsistentRead=True
            ),
        )
        item = response.get("Item")
        return FileRecord.from_dict(from_item(item)) if item else None

    def find_by_sha(
        self, sha256: str, status: FileStatus = FileStatus.SUCCESS
    ) -> FileRecord | None:
        """The oldest file with this content and status, via the ``by_sha`` index."""
        items = self._query(
            self.names.files,
            IndexName="by_sha",
            KeyConditionExpression="sha256 = :sha",
            ExpressionAttributeValues={":sha": {"S": sha256}},
        )
        found = [FileRecord.from_dict(from_item(i)) for i in items]
        matching = sorted(
            (r for r in found if r.status == status), key=lambda r: (r.seq, r.started_at)
        )
        return matching[0] if matching else None

    def put_file(self, record: FileRecord, *, expect: FileStatus | None = None) -> bool:
        """Upsert a lineage row; with ``expect``, a conditional write (see the port)."""
        item = to_item(record.to_dict(), pk=record.key)
        if expect is None:
            self._call(
                f"put into {self.names.files}",
                lambda: self.client.put_item(TableName=self.names.files, Item=item),
            )
            return True
        condition = "#status = :expect"
        if expect == FileStatus.IN_PROGRESS:
            condition = f"attribute_not_exists(pk) OR {condition}"
        return self._conditional_put(
            self.names.files, item, condition, **{":expect": {"S": expect.value}}
        )

    def list_files(self, status: FileStatus | None = None) -> list[FileRecord]:
        records = [FileRecord.from_dict(from_item(i)) for i in self._scan(self.names.files)]
        if status is not None:
            records = [r for r in records if r.status == status]
        return sorted(records, key=lambda r: (r.started_at, r.seq, r.key))

    # batching
    def add_pending(self, pending: PendingFile) -> None:
        """Remember a waiting file; the first arrival time of a key is kept."""
        data = {"key": pending.key, "dataset": pending.dataset, "arrived_at": pending.arrived_at}
        self._conditional_put(
            self.names.pending, to_item(data, pk=pending.key), "attribute_not_exists(pk)"
        )

    def list_pending(self) -> list[PendingFile]:
        found = []
        for item in self._scan(self.names.pending):
            data = from_item(item)
            found.append(
                PendingFile(
                    key=str(data["key"]),
                    dataset=str(data["dataset"]),
                    arrived_at=datetime.fromisoformat(str(data["arrived_at"])),
                )
            )
        return sorted(found, key=lambda p: (p.arrived_at, p.key))

    def remove_pending(self, keys: Sequence[str]) -> None:
        writer = BatchWriter(self.client, self.names.pending, self.backoff)
        writer.delete([{"pk": {"S": k}} for k in dict.fromkeys(keys)])

    # aggregates
    def _aggregate_items(self, spec: AggregateSpec) -> list[Item]:
        return self._query(
            self.names.aggregates,
            KeyConditionExpression="pk = :name",
            ExpressionAttributeValues={":name": {"S": spec.name}},
            ConsistentRead=True,
        )

    def read_aggregates(
        self, spec: AggregateSpec, *, column: str | None = None, values: Sequence[Any] | None = None
    ) -> pl.DataFrame:
        """One Query for the aggregate; the ``column in values`` filter runs in Polars."""
        import polars as pl

        from salesflow.adapters.aws.items import items_to_frame

        frame = items_to_frame(self._aggregate_items(spec), spec.schema)
        if column is not None and values is not None:
            wanted = pl.Series(list(values), dtype=spec.schema[column])
            frame = frame.filter(pl.col(column).is_in(wanted))
        return frame

    def _sort_keys(self, spec: AggregateSpec, frame: pl.DataFrame) -> list[str]:
        dtypes = [spec.schema[c] for c in spec.key]
        return [aggregate_sort_key(row, dtypes) for row in frame.select(spec.key).iter_rows()]

    def replace_aggregates(
        self, spec: AggregateSpec, *, delete: pl.DataFrame, upsert: pl.DataFrame
    ) -> None:
        """Delete the rows keyed in ``delete``, then put the rows of ``upsert`` that differ
        from what is stored (a refresh usually changes a few rows of many). DynamoDB has no
        transaction this large, so readers may briefly see a mix; a retry converges."""
        from salesflow.adapters.aws.items import frame_to_items

        upsert = upsert.select(spec.columns)
        put_keys = self._sort_keys(spec, upsert)
        stored = {i["sk"]["S"]: i for i in self._aggregate_items(spec)}
        changed = []
        for sk, item in zip(put_keys, frame_to_items(upsert), strict=True):
            item.update(pk={"S": spec.name}, sk={"S": sk})
            if stored.get(sk) != item:
                changed.append(item)
        keep = set(put_keys)
        gone = [
            {"pk": {"S": spec.name}, "sk": {"S": sk}}
            for sk in dict.fromkeys(self._sort_keys(spec, delete))
            if sk not in keep and sk in stored
        ]
        writer = BatchWriter(self.client, self.names.aggregates, self.backoff)
        writer.delete(gone)
        writer.put(list({i["sk"]["S"]: i for i in changed}.values()))

    # alerts
    def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Conditional inserts (``attribute_not_exists(pk)``): only unseen ids are new."""
        fresh = []
        for alert in alerts:
            item = to_item(alert.to_dict(), pk=alert.id)
            if self._conditional_put(self.names.alerts, item, "attribute_not_exists(pk)"):
                fresh.append(alert)
        return fresh

    def list_alerts(self, status: str | None = None) -> list[Alert]:
        alerts = [Alert.from_dict(from_item(i)) for i in self._scan(self.names.alerts)]
        if status is not None:
            alerts = [a for a in alerts if a.status == status]
        return sorted(alerts, key=lambda a: (a.created_at, a.id))

    def update_alert(self, alert: Alert) -> None:
        item = to_item(alert.to_dict(), pk=alert.id)
        self._call(
            f"put into {self.names.alerts}",
            lambda: self.client.put_item(TableName=self.names.alerts, Item=item),
        )


__all__ = ["DynamoTables", "TableNames", "from_item", "to_item"]

"""The state tables on DynamoDB: the ``Tables`` port (lineage, batching, aggregates, alerts).

One table per kind, named ``<prefix><kind>`` (``TableNames``), each keyed by a string ``pk``:

- ``files``: lineage, one row per file version under ``pk = "seq#<seq>"``, plus a claim item
  ``pk = "claim#<key>@<version>"`` naming its ``seq``. ``claim`` writes both in one
  transaction conditioned on the claim item being new, so two invocations never process one
  version. GSIs ``by_key``, ``by_sha`` and ``by_status`` (each sorted by ``seq``) serve the
  listings and content dedup. Status changes are conditional writes; ``commit_files`` is one
  TransactWriteItems of the rows (each still IN_PROGRESS) and the commit marker
  (``meta``: ``pk = "commit"``, ``sk = <id>``).
- ``pending``: files waiting for their batch, ``pk`` = key; adding is ``attribute_not_exists``.
- ``aggregates``: every aggregate in one table, ``pk`` = spec name (``totals``,
  ``category_kpis``, ``order_kpis``), ``sk`` = the row's key values as JSON. One Query reads an
  aggregate; a new spec needs no new table. Replacing writes only rows that changed.
- ``alerts``: ``pk`` = alert id; insertion is ``attribute_not_exists(pk)``, so a replayed sale
  never alerts twice. Delivery claims and settles an alert with conditional updates on its
  ``status`` and ``attempts``. Every item carries ``due_at`` (next attempt, else creation
  time) so that a GSI (``status``, ``due_at``) can serve "what is due now" and listing by
  status as a Query; until the template adds one, those reads Scan.
- ``meta``: ``pk``/``sk``: the file sequence counter, the lake's fragment catalog and commit
  markers (``catalog.py``), locks (``locks.py``) and the totals markers. The records
  themselves are Parquet fragments on S3 (the lake), not DynamoDB items.
- ``letters``: dead letters (``DynamoDeadLetters``, in ``letters.py``).

Every table has server-side encryption and point-in-time recovery in infra/template.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.batch import BatchWriter
from salesflow.adapters.aws.errors import translate
from salesflow.adapters.aws.retry import Backoff
from salesflow.errors import TransientError
from salesflow.models import Alert, AlertStatus, FileRecord, FileStatus, PendingFile, utcnow
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

    files: str
    pending: str
    aggregates: str
    alerts: str
    meta: str
    letters: str

    @classmethod
    def from_prefix(cls, prefix: str) -> TableNames:
        """``<prefix>records``, ``<prefix>files``, ...: the template's naming."""
        return cls(**{kind: f"{prefix}{kind}" for kind in KINDS})


KINDS = ("files", "pending", "aggregates", "alerts", "meta", "letters")


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


def _row_pk(seq: int) -> str:
    return f"seq#{seq:012d}"


def _claim_pk(key: str, version: str) -> str:
    return f"claim#{key}@{version}"


def _record(item: Mapping[str, Any]) -> FileRecord:
    return FileRecord.from_dict(from_item(item))


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

    def _row_item(self, record: FileRecord) -> Item:
        item = to_item(record.to_dict(), pk=_row_pk(record.seq))
        item["seq"] = {"N": str(record.seq)}
        return item

    def _get(self, pk: str) -> Item | None:
        response = self._call(
            f"get from {self.names.files}",
            lambda: self.client.get_item(
                TableName=self.names.files, Key={"pk": {"S": pk}}, ConsistentRead=True
            ),
        )
        item: Item | None = response.get("Item")
        return item

    def get_file(self, seq: int) -> FileRecord | None:
        item = self._get(_row_pk(seq))
        return _record(item) if item else None

    def find_version(self, key: str, version: str) -> FileRecord | None:
        claim = self._get(_claim_pk(key, version))
        return self.get_file(int(claim["seq"]["N"])) if claim else None

    def claim(self, record: FileRecord) -> tuple[FileRecord, bool]:
        """Claim item and row in one transaction, both ``attribute_not_exists(pk)``."""
        claim = {"pk": {"S": _claim_pk(record.key, record.version)}, "seq": {"N": str(record.seq)}}
        request = [
            {
                "Put": {
                    "TableName": self.names.files,
                    "Item": claim,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.names.files,
                    "Item": self._row_item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if self._transact("claim", request):
            return record, True
        stored = self.find_version(record.key, record.version)
        if stored is None:  # pragma: no cover - a claim item without its row cannot be written
            raise TransientError(f"lineage claim of {record.key} is incomplete", hint="retry")
        return stored, False

    def _transact(self, what: str, items: list[Item]) -> bool:
        """TransactWriteItems; False when a condition failed (nothing was written)."""
        try:
            self._call(
                f"transact {what} on {self.names.files}",
                lambda: self.client.transact_write_items(TransactItems=items),  # type: ignore[arg-type]
                keep=["TransactionCanceledException"],
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise translate(exc, f"dynamodb transact {what}") from exc
        return True

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
        found = sorted((_record(i) for i in items), key=lambda r: r.seq)
        return next((r for r in found if r.status == status), None)

    def update_file(self, record: FileRecord, *, expect: FileStatus | None = None) -> bool:
        item = self._row_item(record)
        if expect is None:
            return self._conditional_put(self.names.files, item, "attribute_exists(pk)")
        return self._conditional_put(
            self.names.files, item, "#status = :expect", **{":expect": {"S": expect.value}}
        )

    def commit_files(self, records: Sequence[FileRecord], *, commit: int) -> bool:
        """The rows (each conditioned on IN_PROGRESS) and the commit marker in one
        TransactWriteItems."""
        items: list[Item] = [
            {
                "Put": {
                    "TableName": self.names.files,
                    "Item": self._row_item(r),
                    "ConditionExpression": "#status = :open",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":open": {"S": FileStatus.IN_PROGRESS.value}},
                }
            }
            for r in records
        ]
        marker = {
            "pk": {"S": "commit"},
            "sk": {"S": str(commit)},
            "at": {"S": utcnow().isoformat()},
        }
        items.append({"Put": {"TableName": self.names.meta, "Item": marker}})
        return self._transact("commit", items)

    def apply_totals(self, commit: int, deltas: pl.DataFrame) -> None:
        """The deltas as ``ADD`` updates in TransactWriteItems of up to 99 groups, each with
        a marker item ``applied#<commit>``/``<chunk>`` that must not exist yet: a chunk that
        went through once is refused as a whole the second time (exactly once). Chunks are
        cut the same way on every call (groups sorted by key). Groups left with no records
        are deleted afterwards."""
        from salesflow.kpis import TOTALS

        if deltas.is_empty():
            return
        spec = TOTALS
        frame = deltas.select(spec.columns).sort(list(spec.key))
        keys = self._sort_keys(spec, frame)
        rows = frame.select("total_amount", "records").rows()
        for chunk, start in enumerate(range(0, len(keys), 99)):
            marker = {
                "pk": {"S": f"applied#{commit}"},
                "sk": {"S": str(chunk)},
                "at": {"S": utcnow().isoformat()},
            }
            items: list[Item] = [
                {
                    "Put": {
                        "TableName": self.names.meta,
                        "Item": marker,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
            chunk_rows = zip(keys[start : start + 99], rows[start : start + 99], strict=True)
            items.extend(self._add_total(sk, amount, count) for sk, (amount, count) in chunk_rows)
            self._transact(f"totals of commit {commit}", items)
        empty = [
            {"pk": {"S": spec.name}, "sk": i["sk"]}
            for i in self._aggregate_items(spec)
            if int(i.get("records", {"N": "0"})["N"]) <= 0
        ]
        BatchWriter(self.client, self.names.aggregates, self.backoff).delete(empty)

    def _add_total(self, sk: str, amount: float, count: int) -> Item:
        from salesflow.kpis import TOTALS

        scope, group = json.loads(sk)
        return {
            "Update": {
                "TableName": self.names.aggregates,
                "Key": {"pk": {"S": TOTALS.name}, "sk": {"S": sk}},
                "UpdateExpression": "ADD total_amount :a, #r :n SET #s = :s, #i = :i",
                "ExpressionAttributeNames": {"#r": "records", "#s": "scope", "#i": "id"},
                "ExpressionAttributeValues": {
                    ":a": {"N": repr(float(amount))},
                    ":n": {"N": str(int(count))},
                    ":s": {"S": str(scope)},
                    ":i": {"S": str(group)},
                },
            }
        }

    def list_files(
        self,
        status: FileStatus | None = None,
        *,
        dataset: str | None = None,
        key: str | None = None,
        source: str | None = None,
        settled: bool | None = None,
        limit: int | None = None,
    ) -> list[FileRecord]:
        """A Query on ``by_key`` or ``by_status`` when a key or status is given, else a Scan
        of the rows; the other filters apply to what comes back."""
        if key is not None:
            items = self._query(
                self.names.files,
                IndexName="by_key",
                KeyConditionExpression="#k = :k",
                ExpressionAttributeNames={"#k": "key"},
                ExpressionAttributeValues={":k": {"S": key}},
            )
        elif status is not None:
            items = self._query(
                self.names.files,
                IndexName="by_status",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": FileStatus(status).value}},
            )
        else:
            items = [i for i in self._scan(self.names.files) if i["pk"]["S"].startswith("seq#")]
        records = sorted((_record(i) for i in items), key=lambda r: r.seq)
        records = [
            r
            for r in records
            if status in (None, r.status)
            and dataset in (None, r.dataset)
            and source in (None, r.source)
            and (settled is None or r.settled == settled)
        ]
        return records[-limit:] if limit is not None else records

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

    def aggregate_rows(
        self, spec: AggregateSpec, *, column: str | None = None, values: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        return self.read_aggregates(spec, column=column, values=values).to_dicts()

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
    # Reads Scan the table and filter here. The delivery thread's "what is due" and
    # ``alerts --status`` should Query a GSI instead: partition key ``status``, sort key
    # ``due_at`` (written on every item below); see the note in the module docstring.
    def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Conditional inserts (``attribute_not_exists(pk)``): only unseen ids are new."""
        fresh = []
        for alert in alerts:
            item = _alert_item(alert)
            if self._conditional_put(self.names.alerts, item, "attribute_not_exists(pk)"):
                fresh.append(alert)
        return fresh

    def _alerts(self) -> list[Alert]:
        alerts = [Alert.from_dict(from_item(i)) for i in self._scan(self.names.alerts)]
        return sorted(alerts, key=lambda a: (a.created_at, a.id))

    def list_alerts(
        self,
        status: AlertStatus | str | None = None,
        *,
        dataset: str | None = None,
        source_file: str | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        found = [
            a
            for a in self._alerts()
            if status in (None, a.status.value)
            and dataset in (None, a.dataset)
            and source_file in (None, a.source_file)
        ]
        return found if limit is None else found[max(len(found) - limit, 0) :]

    def count_alerts(
        self,
        status: AlertStatus | str | None = None,
        *,
        dataset: str | None = None,
        source_file: str | None = None,
    ) -> int:
        return len(self.list_alerts(status, dataset=dataset, source_file=source_file))

    def get_alerts(self, ids: Sequence[str]) -> list[Alert]:
        found = []
        for alert_id in dict.fromkeys(ids):
            response = self._call(
                f"get from {self.names.alerts}",
                lambda alert_id=alert_id: self.client.get_item(
                    TableName=self.names.alerts, Key={"pk": {"S": alert_id}}, ConsistentRead=True
                ),
            )
            if "Item" in response:
                found.append(Alert.from_dict(from_item(response["Item"])))
        return found

    def due_alerts(self, now: datetime, *, limit: int) -> list[Alert]:
        def due(a: Alert) -> bool:
            if a.status == AlertStatus.PENDING:
                return a.next_attempt_at is None or a.next_attempt_at <= now
            at = a.next_attempt_at
            return a.status == AlertStatus.SENDING and at is not None and at <= now

        return [a for a in self._alerts() if due(a)][:limit]

    def update_alert(self, alert: Alert, *, expect: Alert | None = None) -> bool:
        """One UpdateItem; with ``expect``, conditional on its status and attempts."""
        values: dict[str, Any] = {
            ":status": {"S": alert.status.value},
            ":attempts": {"N": str(alert.attempts)},
            ":due": {"S": _due_at(alert)},
        }
        names = {"#status": "status", "#attempts": "attempts", "#due_at": "due_at"}
        sets = ["#status = :status", "#attempts = :attempts", "#due_at = :due"]
        removes = []
        for name, value in (
            ("error", alert.error),
            ("sent_at", alert.sent_at.isoformat() if alert.sent_at else None),
            (
                "next_attempt_at",
                alert.next_attempt_at.isoformat() if alert.next_attempt_at else None,
            ),
        ):
            names[f"#{name}"] = name  # "error" is a reserved word
            if value is None:
                removes.append(f"#{name}")
            else:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = {"S": value}
        condition = "attribute_exists(pk)"
        if expect is not None:
            condition += " AND #status = :was_status AND #attempts = :was_attempts"
            values[":was_status"] = {"S": expect.status.value}
            values[":was_attempts"] = {"N": str(expect.attempts)}
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._call(
                f"update {self.names.alerts}",
                lambda: self.client.update_item(
                    TableName=self.names.alerts,
                    Key={"pk": {"S": alert.id}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                ),
                keep=[CHECK_FAILED],
            )
        except ClientError:
            return False
        return True


def _due_at(alert: Alert) -> str:
    """The GSI sort key: when the alert is next due (its creation until its first retry)."""
    return (
        (alert.next_attempt_at or alert.created_at)
        .astimezone(UTC)
        .isoformat(timespec="microseconds")
    )


def _alert_item(alert: Alert) -> Item:
    item = to_item(alert.to_dict(), pk=alert.id)
    item["due_at"] = {"S": _due_at(alert)}
    return item


__all__ = ["DynamoTables", "TableNames", "from_item", "to_item"]

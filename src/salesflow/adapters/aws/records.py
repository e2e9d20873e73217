"""Valid records on DynamoDB plus the Parquet lake on S3: the ``RecordStore`` port on AWS.

Items live in the ``records`` table under ``pk = "<dataset>#<record key>"``, one item per key
holding its current version: the typed columns (see ``items.py``), ``_key``, ``_seq`` and ``_day``,
plus ``_dsday = "<dataset>#<day>"``, the partition key of the ``by_day`` index, so
``read(days=...)`` is one Query per day (no Scan). A read of a whole dataset is a parallel Scan.

Upserts never let an older file win: a ``BatchGetItem`` first learns each key's stored
``_seq``; keys already holding a newer version are skipped, keys holding an older one get a
``PutItem`` conditioned on ``attribute_not_exists(pk) OR _seq <= :seq``, and brand-new keys go
in ``BatchWriteItem``s of 25 (a condition is not possible there). A consistent re-read then
repairs, with the same conditional put, any new key that a concurrent older file overwrote in
the meantime. The one interleaving this cannot see (the older file's batch landing after the
newer file's re-read, both inserting the same new key within milliseconds) is why the state
machine's Map keeps a low concurrency; the audit compares the store with the lake.

The same rows also go to the lake as Parquet fragments at ``salesflow.layout.lake_key``
(Hive partitions ``year=/month=``, so Athena or DuckDB query them as they are). The lake keeps
every version, so ``drop(seq)`` can bring back what file ``seq`` had replaced. A manifest item
per ``(seq, part)`` in the ``meta`` table lists the fragments (written *before* them, so a
crash never leaves a fragment nobody knows) and the rows written (``count_by_seq``); another
``meta`` item keeps each dataset's schema so reads return typed columns.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING, Any

import polars as pl
from botocore.exceptions import ClientError

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.batch import BatchWriter
from salesflow.adapters.aws.items import (
    frame_to_items,
    items_to_frame,
    schema_bytes,
    schema_from_bytes,
)
from salesflow.adapters.aws.retry import Backoff
from salesflow.pipeline.lake import lake_fragments
from salesflow.ports import ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

META_COLUMNS = ("_key", "_seq", "_day")
ROWS_META = "salesflow.rows"  # Parquet metadata the local lake uses too
CHECK_FAILED = "ConditionalCheckFailedException"
NEWER_WINS = "attribute_not_exists(pk) OR #seq <= :seq"
Item = dict[str, Any]


class DynamoRecordStore:
    """A ``RecordStore``: items in the ``table`` DynamoDB table, fragments in ``store``.

    ``meta_table`` holds schemas and manifests (default: the ``records`` table's name with
    ``meta`` in place of ``records``); ``workers`` bounds the parallel requests per call.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        store: ObjectStore,
        *,
        meta_table: str | None = None,
        backoff: Backoff | None = None,
        workers: int = 4,
    ) -> None:
        self.client = client
        self.table = table
        self.store = store
        self.meta_table = meta_table or f"{table.removesuffix('records')}meta"
        self.backoff = backoff or Backoff()
        self.workers = max(1, workers)
        self.batch = BatchWriter(client, table, self.backoff, workers=self.workers)
        self._schemas: dict[str, dict[str, pl.DataType]] = {}

    def _call(self, what: str, fn: Any, *, keep: Sequence[str] = ()) -> Any:
        return retry.call(self.backoff, f"dynamodb {what}", fn, keep=keep)

    def _map(self, fn: Any, items: Iterable[Any]) -> list[Any]:
        work = list(items)
        if self.workers == 1 or len(work) <= 1:
            return [fn(x) for x in work]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, work))

    # -- meta: schemas and manifests ---------------------------------------------------
    def _schema(self, dataset: str) -> dict[str, pl.DataType] | None:
        if dataset not in self._schemas:
            response = self._call(
                f"get from {self.meta_table}",
                lambda: self.client.get_item(
                    TableName=self.meta_table,
                    Key={"pk": {"S": "schema"}, "sk": {"S": dataset}},
                    ConsistentRead=True,
                ),
            )
            item = response.get("Item")
            if not item:
                return None
            self._schemas[dataset] = schema_from_bytes(item["ipc"]["B"])
        return self._schemas[dataset]

    def _save_schema(self, dataset: str, schema: dict[str, pl.DataType]) -> None:
        if self._schema(dataset) == schema:
            return
        item: Item = {
            "pk": {"S": "schema"},
            "sk": {"S": dataset},
            "ipc": {"B": schema_bytes(schema)},
        }
        self._call(
            f"put into {self.meta_table}",
            lambda: self.client.put_item(TableName=self.meta_table, Item=item),
        )
        self._schemas[dataset] = schema

    def _manifests(self, dataset: str) -> list[dict[str, Any]]:
        """Every ``(seq, part)`` written for ``dataset``: rows and fragment keys."""

        def run() -> list[Item]:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.meta_table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"rows#{dataset}"}},
                ConsistentRead=True,
            )
            return [item for page in pages for item in page.get("Items", [])]

        found = []
        for item in self._call(f"query {self.meta_table}", run):
            seq, part = (int(x) for x in item["sk"]["S"].split("#"))
            fragments = [v["S"] for v in item.get("fragments", {}).get("L", [])]
            found.append(
                {"seq": seq, "part": part, "rows": int(item["rows"]["N"]), "fragments": fragments}
            )
        return found

    def _put_manifest(
        self, dataset: str, seq: int, part: int, rows: int, fragments: Iterable[str]
    ) -> None:
        item: Item = {
            "pk": {"S": f"rows#{dataset}"},
            "sk": {"S": f"{seq:012d}#{part:05d}"},
            "rows": {"N": str(rows)},
            "fragments": {"L": [{"S": k} for k in sorted(set(fragments))]},
        }
        self._call(
            f"put into {self.meta_table}",
            lambda: self.client.put_item(TableName=self.meta_table, Item=item),
        )

    # -- writes -------------------------------------------------------------------------
    def write(self, dataset: str, seq: int, frame: pl.DataFrame, *, part: int = 0) -> None:
        """Store chunk ``part`` of file ``seq``: lake fragments first, then the items.

        Writing the same ``(seq, part)`` again replaces it: keys it no longer holds are
        removed (and their older versions restored), and stale fragments deleted.
        """
        frame, planned = lake_fragments(dataset, seq, part, frame)
        previous = next(
            (m for m in self._manifests(dataset) if (m["seq"], m["part"]) == (seq, part)), None
        )
        old_keys = self._fragment_keys(previous["fragments"]) if previous else set()
        known = set(planned) | set(previous["fragments"] if previous else [])
        self._put_manifest(dataset, seq, part, frame.height, known)
        self._save_schema(dataset, dict(frame.schema))
        for key, rows in planned.items():
            buffer = io.BytesIO()
            rows.write_parquet(buffer, metadata={ROWS_META: str(rows.height)})
            self.store.put_bytes(key, buffer.getvalue())
        self._upsert(dataset, seq, frame)
        gone = old_keys - set(frame.get_column("_key").to_list())
        if gone:
            self._unwrite(dataset, seq, gone, exclude=known - set(planned))
        for key in known - set(planned):
            self.store.delete(key)
        if known != set(planned):
            self._put_manifest(dataset, seq, part, frame.height, planned)

    def _items(self, dataset: str, frame: pl.DataFrame) -> list[Item]:
        """Items with ``pk`` and ``_dsday``, one per key (the last row of a key wins)."""
        items = frame_to_items(frame)
        for item in items:
            item["pk"] = {"S": f"{dataset}#{item['_key']['S']}"}
            if "_day" in item:
                item["_dsday"] = {"S": f"{dataset}#{item['_day']['S']}"}
        return list({item["pk"]["S"]: item for item in items}.values())

    def _stored_seqs(self, items: Sequence[Item]) -> dict[str, int]:
        keys = [{"pk": item["pk"]} for item in items]
        found = self.batch.get(keys, projection="pk, #seq", seq="_seq")
        return {i["pk"]["S"]: int(i["_seq"]["N"]) for i in found if "_seq" in i}

    def _upsert(self, dataset: str, seq: int, frame: pl.DataFrame) -> None:
        items = self._items(dataset, frame)
        if not items:
            return
        stored = self._stored_seqs(items)
        fresh = [i for i in items if i["pk"]["S"] not in stored]
        older = [i for i in items if stored.get(i["pk"]["S"], seq + 1) <= seq]
        self.batch.put(fresh)
        self._put_if_newer(older)
        if fresh:
            now = self._stored_seqs(fresh)
            self._put_if_newer([i for i in fresh if now.get(i["pk"]["S"], -1) < seq])

    def _put_if_newer(self, items: Sequence[Item]) -> None:
        """Conditional PutItems: each item is written unless a newer ``_seq`` is stored."""

        def put(item: Item) -> None:
            try:
                self._call(
                    f"put into {self.table}",
                    lambda: self.client.put_item(
                        TableName=self.table,
                        Item=item,
                        ConditionExpression=NEWER_WINS,
                        ExpressionAttributeNames={"#seq": "_seq"},
                        ExpressionAttributeValues={":seq": item["_seq"]},
                    ),
                    keep=[CHECK_FAILED],
                )
            except ClientError:
                pass  # a newer file holds the key: exactly what the condition protects

        self._map(put, items)

    def _fragment_keys(self, fragments: Iterable[str]) -> set[str]:
        keys: set[str] = set()
        for frame in self._read_fragments(fragments, columns=["_key"]):
            keys.update(frame.get_column("_key").to_list())
        return keys

    def _read_fragments(
        self, fragments: Iterable[str], columns: list[str] | None = None
    ) -> list[pl.DataFrame]:
        def read(key: str) -> pl.DataFrame | None:
            try:
                data = self.store.get_bytes(key)
            except FileNotFoundError:
                return None  # planned in a manifest, never written: nothing to undo
            return pl.read_parquet(io.BytesIO(data), columns=columns)

        return [f for f in self._map(read, sorted(set(fragments))) if f is not None]

    def drop(self, dataset: str, seq: int) -> None:
        """Remove what file ``seq`` wrote and bring back the versions it had replaced."""
        mine = [m for m in self._manifests(dataset) if m["seq"] == seq]
        if not mine:
            return
        fragments = {f for m in mine for f in m["fragments"]}
        keys = self._fragment_keys(fragments)
        if keys:
            self._unwrite(dataset, seq, keys, exclude=fragments)
        for key in sorted(fragments):
            self.store.delete(key)
        meta = BatchWriter(self.client, self.meta_table, self.backoff)
        meta.delete(
            [
                {"pk": {"S": f"rows#{dataset}"}, "sk": {"S": f"{seq:012d}#{m['part']:05d}"}}
                for m in mine
            ]
        )

    def _unwrite(self, dataset: str, seq: int, keys: Collection[str], *, exclude: set[str]) -> None:
        """Delete ``keys`` where file ``seq`` holds them, then restore their latest other
        version from the lake (fragments in ``exclude`` are the ones being removed)."""

        def delete(key: str) -> str | None:
            try:
                self._call(
                    f"delete from {self.table}",
                    lambda: self.client.delete_item(
                        TableName=self.table,
                        Key={"pk": {"S": f"{dataset}#{key}"}},
                        ConditionExpression="#seq = :seq",
                        ExpressionAttributeNames={"#seq": "_seq"},
                        ExpressionAttributeValues={":seq": {"N": str(seq)}},
                    ),
                    keep=[CHECK_FAILED],
                )
            except ClientError:
                return None  # another file's version is stored: leave it
            return key

        deleted = {k for k in self._map(delete, sorted(keys)) if k is not None}
        if not deleted:
            return
        others = {f for m in self._manifests(dataset) for f in m["fragments"]} - exclude
        wanted = pl.Series(sorted(deleted), dtype=pl.String)
        frames = [f.filter(pl.col("_key").is_in(wanted)) for f in self._read_fragments(others)]
        frames = [f for f in frames if f.height]
        if not frames:
            return
        versions = (
            pl.concat(frames, how="diagonal_relaxed")
            .sort("_seq", maintain_order=True)
            .unique("_key", keep="last", maintain_order=True)
        )
        self._put_if_newer(self._items(dataset, versions))

    # -- reads --------------------------------------------------------------------------
    def read(
        self,
        dataset: str,
        *,
        days: Collection[date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Current records: a Query on ``by_day`` per day, or a parallel Scan of the dataset."""
        wanted = None if columns is None else list(dict.fromkeys([*META_COLUMNS, *columns]))
        schema = self._schema(dataset)
        if schema is None:
            extra = {c: pl.Null() for c in wanted or [] if c not in META_COLUMNS}
            return pl.DataFrame(
                schema={"_key": pl.String, "_seq": pl.Int64, "_day": pl.Date, **extra}
            )
        target = {c: schema.get(c, pl.Null()) for c in wanted} if wanted else schema
        request: Item = {}
        if wanted:
            names = {f"#c{i}": c for i, c in enumerate(wanted)}
            request = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        if days is None:
            items = self._scan_dataset(dataset, request)
        else:
            parts = self._map(lambda d: self._query_day(dataset, d, request), sorted(set(days)))
            items = [item for part in parts for item in part]
        return items_to_frame(items, target)

    def previous_days(self, dataset: str, keys: pl.Series, *, before_seq: int) -> pl.DataFrame:
        """The stored day of each of ``keys``: BatchGetItem, 100 keys a request."""
        wanted = [{"pk": {"S": f"{dataset}#{k}"}} for k in keys.cast(pl.String).unique()]
        found = self.batch.get(wanted, projection="#key, #day", key="_key", day="_day")
        rows = [(i["_key"]["S"], i["_day"]["S"]) for i in found if "_day" in i and "_key" in i]
        return pl.DataFrame(
            {"_key": [r[0] for r in rows], "_day": [r[1] for r in rows]},
            schema={"_key": pl.String, "_day": pl.String},
        ).with_columns(pl.col("_day").str.to_date())

    def _query_day(self, dataset: str, day: date, request: Item) -> list[Item]:
        names = {**request.get("ExpressionAttributeNames", {}), "#dsday": "_dsday"}

        def run() -> list[Item]:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table,
                IndexName="by_day",
                KeyConditionExpression="#dsday = :d",
                ExpressionAttributeValues={":d": {"S": f"{dataset}#{day.isoformat()}"}},
                **{**request, "ExpressionAttributeNames": names},
            )
            return [item for page in pages for item in page.get("Items", [])]

        result: list[Item] = self._call(f"query {self.table}.by_day", run)
        return result

    def _scan_dataset(self, dataset: str, request: Item) -> list[Item]:
        segments = self.workers

        def segment(n: int) -> list[Item]:
            def run() -> list[Item]:
                pages = self.client.get_paginator("scan").paginate(
                    TableName=self.table,
                    Segment=n,
                    TotalSegments=segments,
                    FilterExpression="begins_with(pk, :prefix)",
                    ExpressionAttributeValues={":prefix": {"S": f"{dataset}#"}},
                    ConsistentRead=True,
                    **request,
                )
                return [item for page in pages for item in page.get("Items", [])]

            result: list[Item] = self._call(f"scan {self.table}", run)
            return result

        return [item for part in self._map(segment, range(segments)) for item in part]

    def count_by_seq(self, dataset: str) -> dict[int, int]:
        """Rows each file wrote (before dedup), from the manifests."""
        counts: dict[int, int] = {}
        for manifest in self._manifests(dataset):
            counts[manifest["seq"]] = counts.get(manifest["seq"], 0) + manifest["rows"]
        return counts

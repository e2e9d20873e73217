"""The lake's catalog on DynamoDB: the ``Catalog`` port, in the ``meta`` table.

- a fragment is an item ``pk = "frag#<dataset>"``, ``sk = <path>`` holding the ``Fragment``'s
  fields, so the fragments of a dataset are one strongly consistent Query (a month is a
  ``begins_with`` on its path prefix);
- a commit marker is ``pk = "commit"``, ``sk = <id>``: ``Tables.commit_files`` writes it in the
  same TransactWriteItems as the lineage rows, ``commit`` writes a bare one (compaction), and
  ``committed`` reads them with BatchGetItem (100 keys a request).

Every write is idempotent: puts of whole items, updates that set a value, deletes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.batch import BatchWriter
from salesflow.adapters.aws.dynamodb import from_item, to_item
from salesflow.adapters.aws.retry import Backoff
from salesflow.models import Fragment, utcnow
from salesflow.ports import iter_batches

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]
CHECK_FAILED = "ConditionalCheckFailedException"
FIELDS = {f.name for f in dataclasses.fields(Fragment)}


def _pk(dataset: str) -> str:
    return f"frag#{dataset}"


def _dataset_of(path: str) -> str:
    """``lake/<dataset>/...`` -> ``<dataset>``."""
    return path.split("/", 2)[1]


def _fragment(item: Item) -> Fragment:
    data = from_item(item)
    values = {k: v for k, v in data.items() if k in FIELDS}
    for name in ("year", "month", "rows", "min_seq", "max_seq", "created_by", "bytes"):
        if values.get(name) is not None:
            values[name] = int(values[name])
    if values.get("retired_by") is not None:
        values["retired_by"] = int(values["retired_by"])
    values["published"] = bool(values.get("published"))
    return Fragment(**values)


class DynamoCatalog:
    """The ``Catalog`` port over the ``meta`` table ``table``."""

    def __init__(
        self, client: DynamoDBClient, table: str, *, backoff: Backoff | None = None
    ) -> None:
        self.client = client
        self.table = table
        self.backoff = backoff or Backoff()

    def _call(self, what: str, fn: Any) -> Any:
        return retry.call(self.backoff, f"dynamodb {what} {self.table}", fn)

    def add_fragments(self, fragments: Sequence[Fragment]) -> None:
        items = [to_item(dataclasses.asdict(f), pk=_pk(f.dataset), sk=f.path) for f in fragments]
        BatchWriter(self.client, self.table, self.backoff).put(items)

    def fragments(
        self, dataset: str, *, months: Collection[tuple[int, int]] | None = None
    ) -> list[Fragment]:
        items = self._query(dataset)
        found = [_fragment(i) for i in items]
        if months is not None:
            wanted = set(months)
            found = [f for f in found if (f.year, f.month) in wanted]
        return sorted(found, key=lambda f: f.path)

    def _query(self, dataset: str) -> list[Item]:
        def run() -> list[Item]:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": _pk(dataset)}},
                ConsistentRead=True,
            )
            return [item for page in pages for item in page.get("Items", [])]

        result: list[Item] = self._call("query", run)
        return result

    def _update(self, path: str, expression: str, values: Item | None = None) -> None:
        request: Item = {
            "TableName": self.table,
            "Key": {"pk": {"S": _pk(_dataset_of(path))}, "sk": {"S": path}},
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            retry.call(
                self.backoff,
                f"dynamodb update {self.table}",
                lambda: self.client.update_item(**request),
                keep=[CHECK_FAILED],
            )
        except ClientError:
            return  # a fragment dropped meanwhile: nothing to mark

    def retire_fragments(self, paths: Sequence[str], *, by: int) -> None:
        for path in dict.fromkeys(paths):
            self._update(path, "SET retired_by = :by", {":by": {"N": str(by)}})

    def unretire(self, dataset: str, *, by: int) -> None:
        for fragment in self.fragments(dataset):
            if fragment.retired_by == by:
                self._update(fragment.path, "REMOVE retired_by")

    def mark_published(self, paths: Sequence[str]) -> None:
        for path in dict.fromkeys(paths):
            self._update(path, "SET published = :yes", {":yes": {"BOOL": True}})

    def drop_fragments(self, paths: Sequence[str]) -> None:
        keys = [{"pk": {"S": _pk(_dataset_of(p))}, "sk": {"S": p}} for p in dict.fromkeys(paths)]
        BatchWriter(self.client, self.table, self.backoff).delete(keys)

    def committed(self, commits: Collection[int]) -> set[int]:
        found: set[int] = set()
        for batch in iter_batches(sorted(set(commits)), 100):
            keys = [{"pk": {"S": "commit"}, "sk": {"S": str(c)}} for c in batch]
            pending: Item = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while pending:
                request = pending
                response = self._call(
                    "batch-get",
                    lambda request=request: self.client.batch_get_item(RequestItems=request),
                )
                for item in response.get("Responses", {}).get(self.table, []):
                    found.add(int(item["sk"]["S"]))
                pending = response.get("UnprocessedKeys") or {}
        return found

    def commit(self, commit: int) -> None:
        item = {"pk": {"S": "commit"}, "sk": {"S": str(commit)}, "at": {"S": utcnow().isoformat()}}
        self._call("put", lambda: self.client.put_item(TableName=self.table, Item=item))

"""DynamoDB batch reads and writes that lose nothing under throttling.

``BatchWriteItem`` takes 25 requests and may hand some back as ``UnprocessedItems`` when a
partition is hot; ``BatchGetItem`` takes 100 keys and may hand back ``UnprocessedKeys``. Both,
and throttling errors of the whole call, are retried with exponential backoff and full jitter
(seed 001: retries with exponential backoff; seed 000: retry on throttling). After the last
attempt a ``TransientError`` says how many items are still pending, so the step fails and is
retried as a whole (every write here is idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.retry import Backoff
from salesflow.ports import iter_batches

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITE_BATCH = 25
GET_BATCH = 100
Item = dict[str, Any]


class BatchWriter:
    """Batched writes and reads on one table, with retries and optional parallel batches."""

    def __init__(
        self, client: DynamoDBClient, table: str, backoff: Backoff, *, workers: int = 4
    ) -> None:
        self.client = client
        self.table = table
        self.backoff = backoff
        self.workers = max(1, workers)

    def _parallel(self, fn: Any, batches: Iterable[Sequence[Any]]) -> list[Any]:
        chunks = list(batches)
        if self.workers == 1 or len(chunks) <= 1:
            return [fn(chunk) for chunk in chunks]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, chunks))

    # writes
    def put(self, items: Sequence[Item]) -> None:
        """Unconditional puts, 25 per request."""
        requests = [{"PutRequest": {"Item": item}} for item in items]
        self._parallel(self._write_batch, iter_batches(requests, WRITE_BATCH))

    def delete(self, keys: Sequence[Item]) -> None:
        """Deletes by primary key, 25 per request (deleting a missing item is not an error)."""
        requests = [{"DeleteRequest": {"Key": key}} for key in keys]
        self._parallel(self._write_batch, iter_batches(requests, WRITE_BATCH))

    def _write_batch(self, requests: Sequence[Item]) -> None:
        pending: list[Item] = list(requests)
        what = f"dynamodb batch write to {self.table}"
        for attempt in range(self.backoff.max_attempts):
            response: Any = retry.call(
                self.backoff,
                what,
                lambda pending=pending: self.client.batch_write_item(  # type: ignore[misc]
                    RequestItems={self.table: pending}
                ),
            )
            pending = list(response.get("UnprocessedItems", {}).get(self.table, []))
            if not pending:
                return
            if attempt + 1 < self.backoff.max_attempts:
                self.backoff.pause(attempt)
        raise self.backoff.give_up(what, f"{len(pending)} unprocessed items")

    # reads
    def get(
        self, keys: Sequence[Item], *, projection: str | None = None, **names: str
    ) -> list[Item]:
        """The items that exist among ``keys`` (consistent reads), 100 keys per request.

        ``projection`` is a ProjectionExpression; ``names`` fill its ``#placeholders``.
        """
        spec: Item = {"ConsistentRead": True}
        if projection:
            spec["ProjectionExpression"] = projection
        if names:
            spec["ExpressionAttributeNames"] = {f"#{k}": v for k, v in names.items()}

        def one(batch: Sequence[Item]) -> list[Item]:
            return self._get_batch(batch, spec)

        found: list[Item] = []
        for part in self._parallel(one, iter_batches(keys, GET_BATCH)):
            found.extend(part)
        return found

    def _get_batch(self, keys: Sequence[Item], spec: Item) -> list[Item]:
        found: list[Item] = []
        pending: list[Item] = list(keys)
        what = f"dynamodb batch get from {self.table}"
        for attempt in range(self.backoff.max_attempts):
            request = {self.table: {**spec, "Keys": pending}}
            response: Any = retry.call(
                self.backoff,
                what,
                lambda request=request: self.client.batch_get_item(RequestItems=request),  # type: ignore[misc]
            )
            found.extend(response.get("Responses", {}).get(self.table, []))
            pending = list(response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", []))
            if not pending:
                return found
            if attempt + 1 < self.backoff.max_attempts:
                self.backoff.pause(attempt)
        raise self.backoff.give_up(what, f"{len(pending)} unprocessed keys")

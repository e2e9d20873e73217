"""Named locks across processes and machines: the ``Locks`` port on the DynamoDB ``meta`` table.

A lock is an item ``pk = "lock"``, ``sk = <name>`` holding its ``owner`` (a random id per
hold) and ``expires`` (epoch seconds). It is taken with a conditional put (no item, or one
whose lease ended) and given back with a conditional delete (still ours). While it is held, a
thread renews the lease every ``lease / 3`` seconds, so a long commit keeps it; a holder that
dies (``kill -9``, a Lambda timeout) stops renewing, and the lock is free once ``lease``
seconds have passed. ``ttl`` (the same time) lets DynamoDB's TTL sweep stale items.

Like ``LocalLocks``, a lock is re-entrant within a thread and exclusive between threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.errors import error_code
from salesflow.adapters.aws.retry import Backoff
from salesflow.errors import TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CHECK_FAILED = "ConditionalCheckFailedException"
LOCK_PK = "lock"
POLL_START = 0.01
POLL_MAX = 0.5


class DynamoLocks:
    """``Locks`` as leased items in the ``meta`` table ``table``."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        lease: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        if lease <= 0:
            raise ValueError("a lock lease must be positive")
        self.client = client
        self.table = table
        self.lease = lease
        self.backoff = backoff or Backoff()
        self._held = threading.local()

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] | None = getattr(self._held, "counts", None)
        if counts is None:
            counts = self._held.counts = {}
        return counts

    @contextlib.contextmanager
    def hold(self, name: str, *, timeout: float = 600.0) -> Iterator[None]:
        counts = self._counts()
        if counts.get(name):
            counts[name] += 1
            try:
                yield
            finally:
                counts[name] -= 1
            return
        owner = uuid.uuid4().hex
        self._acquire(name, owner, timeout)
        counts[name] = 1
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(name, owner, stop), name=f"lease {name}", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            counts[name] = 0
            stop.set()
            renewer.join()
            self._release(name, owner)

    def _key(self, name: str) -> dict[str, Any]:
        return {"pk": {"S": LOCK_PK}, "sk": {"S": name}}

    def _put(self, name: str, owner: str, *, renew: bool) -> bool:
        now = time.time()
        expires = now + self.lease
        item = {
            **self._key(name),
            "owner": {"S": owner},
            "expires": {"N": f"{expires:.3f}"},
            "ttl": {"N": str(int(expires) + 1)},
        }
        if renew:
            condition = "#o = :me"
            values: dict[str, Any] = {":me": {"S": owner}}
        else:
            condition = "attribute_not_exists(pk) OR #e < :now"
            values = {":now": {"N": f"{now:.3f}"}}
        names = {"#o": "owner"} if renew else {"#e": "expires"}
        try:
            retry.call(
                self.backoff,
                f"dynamodb put lock {name!r} in {self.table}",
                lambda: self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                ),
                keep=[CHECK_FAILED],
            )
        except ClientError as exc:
            if error_code(exc) == CHECK_FAILED:
                return False
            raise
        return True

    def _acquire(self, name: str, owner: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pause = POLL_START
        while not self._put(name, owner, renew=False):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransientError(
                    f"lock {name!r} is held by another process",
                    hint=f"it was not released within {timeout:g} s; it is retried later",
                )
            time.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)

    def _renew(self, name: str, owner: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            try:
                if not self._put(name, owner, renew=True):
                    return  # lost (the lease ended while we could not renew): nothing to keep
            except Exception:  # noqa: BLE001 - a failed renewal is retried at the next beat
                continue

    def _release(self, name: str, owner: str) -> None:
        with contextlib.suppress(ClientError):
            retry.call(
                self.backoff,
                f"dynamodb delete lock {name!r} in {self.table}",
                lambda: self.client.delete_item(
                    TableName=self.table,
                    Key=self._key(name),
                    ConditionExpression="#o = :me",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":me": {"S": owner}},
                ),
                keep=[CHECK_FAILED],
            )

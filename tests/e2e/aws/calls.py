"""Count the AWS API calls the pipeline makes, per service and operation.

``CallCounter.install`` hooks botocore's ``before-call`` (and ``before-parameter-build`` and
``after-call``, for the items a call writes or reads, their read units and the bytes S3
GetObject returns) on every client created afterwards, wherever it is created: in our
handlers, in the adapters' worker threads, and in moto's Step Functions interpreter (its
``lambda:Invoke`` calls are the Lambda requests a deployment pays for). Calls made by the test
itself (uploads, assertions) run on the main thread and are left out, except inside
``counter.including_main()``, which the test uses for the S3 event -> detector invocations
that AWS would make for it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
import pytest

Operation = tuple[str, str]
READ_UNIT_BYTES = 4096
"""One read request unit reads up to 4 KB strongly consistently (two, eventually consistent)."""


class CallCounter:
    """API calls, DynamoDB items written, items read and read units, and S3 bytes read, by
    (service, operation).

    Read units are computed from the items returned, as DynamoDB bills them (moto's
    ``ConsumedCapacity`` is a constant, not a measure): a GetItem, or each item of a
    BatchGetItem, is its size rounded up to 4 KB; a Query or Scan page is the size of the items
    it returned, summed, then rounded up (at least one unit); half for eventually consistent
    reads. Filtered-out items, which DynamoDB also bills, are not seen (no read here filters).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._main_too = False
        self.calls: Counter[Operation] = Counter()
        self.items_written: Counter[Operation] = Counter()
        self.items_read: Counter[Operation] = Counter()
        self.read_units: Counter[Operation] = Counter()
        self.bytes_read: Counter[Operation] = Counter()
        self.enabled = True

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            for counter in (
                self.calls,
                self.items_written,
                self.items_read,
                self.read_units,
                self.bytes_read,
            ):
                counter.clear()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = botocore.session.Session.create_client
        counter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build.*.*", counter._params)
            client.meta.events.register("before-call.*.*", counter._before)
            client.meta.events.register("after-call.*.*", counter._after)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", create_client)

    @contextmanager
    def including_main(self) -> Iterator[None]:
        """Count the main thread's calls too (the invocations S3 events would cause)."""
        self._main_too = True
        try:
            yield
        finally:
            self._main_too = False

    def _counting(self) -> bool:
        if not self.enabled:
            return False
        return self._main_too or threading.current_thread() is not threading.main_thread()

    @staticmethod
    def _operation(model: Any) -> Operation:
        return (str(model.service_model.service_name), str(model.name))

    def _params(
        self, model: Any, params: dict[str, Any], context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        """The API parameters of a call about to be made: how many items it writes, and
        whether its reads are strongly consistent (kept in the request's context)."""
        if not self._counting():
            return
        op = self._operation(model)
        if context is not None and op[0] == "dynamodb":
            context["salesflow_consistent"] = _consistent(params)
        written = 0
        if op == ("dynamodb", "BatchWriteItem"):
            written = sum(len(v) for v in params.get("RequestItems", {}).values())
        elif op[0] == "dynamodb" and op[1] in ("PutItem", "UpdateItem", "DeleteItem"):
            written = 1
        elif op == ("dynamodb", "TransactWriteItems"):
            written = len(params.get("TransactItems", []))
        with self._lock:
            self.items_written[op] += written

    def _before(self, model: Any, **_: Any) -> None:
        if not self._counting():
            return
        with self._lock:
            self.calls[self._operation(model)] += 1

    def _after(
        self,
        model: Any,
        parsed: dict[str, Any],
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if not self._counting():
            return
        op = self._operation(model)
        if op == ("s3", "GetObject"):
            with self._lock:
                self.bytes_read[op] += int(parsed.get("ContentLength", 0))
        if op[0] != "dynamodb":
            return
        read = 0
        sizes: list[int] = []
        if op[1] in ("Query", "Scan"):
            read = int(parsed.get("ScannedCount", parsed.get("Count", 0)))
            if "Items" in parsed:
                sizes = [sum(item_size(i) for i in parsed["Items"])]
        elif op[1] == "GetItem":
            read = 1 if parsed.get("Item") else 0
            if "Error" not in parsed:
                sizes = [item_size(parsed.get("Item", {}))]
        elif op[1] == "BatchGetItem":
            items = [i for v in parsed.get("Responses", {}).values() for i in v]
            read = len(items)
            sizes = [item_size(i) for i in items]
        elif op[1] == "BatchWriteItem":
            unprocessed = sum(len(v) for v in parsed.get("UnprocessedItems", {}).values())
            with self._lock:
                self.items_written[op] -= unprocessed
        share = 1.0 if (context or {}).get("salesflow_consistent") else 0.5
        units = sum(max(1, math.ceil(size / READ_UNIT_BYTES)) for size in sizes) * share
        with self._lock:
            self.items_read[op] += read
            self.read_units[op] += units

    def by_service(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (service, _), n in self.calls.items():
            out[service] += n
        return dict(out)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe copy: ``{"calls": {"service:Operation": n}, ...}``."""
        with self._lock:
            return {
                "calls": {f"{s}:{o}": n for (s, o), n in sorted(self.calls.items())},
                "items_written": {
                    f"{s}:{o}": n for (s, o), n in sorted(self.items_written.items()) if n
                },
                "items_read": {f"{s}:{o}": n for (s, o), n in sorted(self.items_read.items()) if n},
                "read_units": {f"{s}:{o}": n for (s, o), n in sorted(self.read_units.items()) if n},
                "bytes_read": {f"{s}:{o}": n for (s, o), n in sorted(self.bytes_read.items()) if n},
            }


def _consistent(params: dict[str, Any]) -> bool:
    """Does a DynamoDB read ask for strongly consistent reads (BatchGetItem: any table)?"""
    if params.get("ConsistentRead"):
        return True
    tables = params.get("RequestItems", {}).values()
    return any(isinstance(t, dict) and bool(t.get("ConsistentRead")) for t in tables)


def item_size(item: dict[str, Any]) -> int:
    """The size DynamoDB bills an item at: its attribute names and values in UTF-8 bytes."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: dict[str, Any]) -> int:
    """An attribute value's size: strings and binaries their bytes, numbers about one byte per
    two digits plus one, containers three bytes plus one per element and the elements."""
    ((kind, inner),) = value.items()
    if kind in ("S", "B"):
        return len(inner.encode() if isinstance(inner, str) else inner)
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + item_size({k: v}) for k, v in inner.items())
    return 1  # BOOL, NULL

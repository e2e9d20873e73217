"""Count the AWS API calls the pipeline makes, per service and operation.

``CallCounter.install`` hooks botocore's ``before-call`` (and ``before-parameter-build`` and
``after-call``, for the items a call writes or reads) on every client created afterwards,
wherever it is created: in our handlers, in the adapters' worker threads, and in moto's Step
Functions interpreter (its ``lambda:Invoke`` calls are the Lambda requests a deployment pays
for). Calls made by the test itself (uploads, assertions) run on the main thread and are left
out, except inside ``counter.including_main()``, which the test uses for the S3 event ->
detector invocations that AWS would make for it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
import pytest

Operation = tuple[str, str]


class CallCounter:
    """API calls, DynamoDB items written and items read, by (service, operation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._main_too = False
        self.calls: Counter[Operation] = Counter()
        self.items_written: Counter[Operation] = Counter()
        self.items_read: Counter[Operation] = Counter()
        self.enabled = True

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

    def _params(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        """The API parameters of a call about to be made: how many items it writes."""
        if not self._counting():
            return
        op = self._operation(model)
        written = 0
        if op == ("dynamodb", "BatchWriteItem"):
            written = sum(len(v) for v in params.get("RequestItems", {}).values())
        elif op[0] == "dynamodb" and op[1] in ("PutItem", "UpdateItem", "DeleteItem"):
            written = 1
        with self._lock:
            self.items_written[op] += written

    def _before(self, model: Any, **_: Any) -> None:
        if not self._counting():
            return
        with self._lock:
            self.calls[self._operation(model)] += 1

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not self._counting():
            return
        op = self._operation(model)
        if op[0] != "dynamodb":
            return
        read = 0
        if op[1] in ("Query", "Scan"):
            read = int(parsed.get("ScannedCount", parsed.get("Count", 0)))
        elif op[1] == "GetItem":
            read = 1 if parsed.get("Item") else 0
        elif op[1] == "BatchGetItem":
            read = sum(len(v) for v in parsed.get("Responses", {}).values())
        elif op[1] == "BatchWriteItem":
            unprocessed = sum(len(v) for v in parsed.get("UnprocessedItems", {}).values())
            with self._lock:
                self.items_written[op] -= unprocessed
        with self._lock:
            self.items_read[op] += read

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
            }

"""A boto3 client wrapper that counts calls and can inject faults into chosen operations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

# A hook gets (call number of that operation, kwargs, the real method) and returns the result.
Hook = Callable[[int, dict[str, Any], Callable[..., Any]], Any]


def client_error(code: str, operation: str, status: int = 400) -> ClientError:
    """The error botocore raises when AWS answers ``code``."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class _PaginatorSpy:
    """Counts ``paginate`` as one call of the operation (pages are not counted)."""

    def __init__(self, spy: Spy, operation: str, paginator: Any) -> None:
        self._spy, self._operation, self._paginator = spy, operation, paginator

    def paginate(self, **kwargs: Any) -> Any:
        self._spy.calls[self._operation] += 1
        self._spy.kwargs.setdefault(self._operation, []).append(kwargs)
        return self._paginator.paginate(**kwargs)


class Spy:
    """Delegates to ``client``; ``calls`` counts each operation, ``kwargs`` keeps arguments."""

    def __init__(self, client: Any, hooks: dict[str, Hook] | None = None) -> None:
        self._client = client
        self.hooks = hooks or {}
        self.calls: Counter[str] = Counter()
        self.kwargs: dict[str, list[dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name == "meta":
            return attr
        if name == "get_paginator":
            return lambda operation: _PaginatorSpy(self, operation, attr(operation))

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.kwargs.setdefault(name, []).append(kwargs)
            hook = self.hooks.get(name)
            if hook is not None:
                return hook(self.calls[name], kwargs, attr)
            return attr(*args, **kwargs)

        return wrapper


def raising(code: str, operation: str) -> Hook:
    """A hook that always fails with AWS error ``code``."""

    def hook(n: int, kwargs: dict[str, Any], real: Callable[..., Any]) -> Any:
        raise client_error(code, operation)

    return hook

"""One exception class per failure mode of the system.

A bad *record* is never an exception: validation returns it as data with its reasons.
Exceptions are for the system: a file that cannot be read, a store that is down, a key that
would escape the bucket. ``TransientError`` is retried; ``TerminalError`` fails the file and
keeps it in ``failed/``.
"""

from __future__ import annotations


class SalesflowError(Exception):
    """Base of every salesflow error. ``hint`` says what to do next."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class TransientError(SalesflowError):
    """A failure that may pass on retry (throttling, a store briefly down, a sink timing out)."""


class TerminalError(SalesflowError):
    """A failure that retrying will not fix; the file goes to ``failed/``."""


class StoreUnavailable(TransientError):
    """The state store itself cannot be reached or is locked (SQLite busy, DynamoDB down).

    Not the file's fault: the service waits and retries; the file is not failed.
    """


class StoreBroken(TerminalError):
    """The state store is unusable (disk full, corrupt or read-only database): nothing can be
    recorded, so the service stops with this message instead of failing every file."""


class InvalidKeyError(TerminalError):
    """An object key that is empty, absolute, contains ``..`` or NUL, or would leave the bucket."""

    def __init__(self, key: str, cause: str) -> None:
        super().__init__(
            f"object key {key!r} is not allowed: {cause}",
            hint="use a relative key such as 'inbox/orders_json/file.json'",
        )
        self.key = key
        self.cause = cause


class FileLevelError(TerminalError):
    """A whole file cannot be read (not text, not JSON, no header, unknown dataset)."""

    def __init__(self, file: str, cause: str, *, rule: str, hint: str = "") -> None:
        super().__init__(f"{file}: {cause}", hint=hint)
        self.file = file
        self.cause = cause
        self.rule = rule


class UnknownDatasetError(FileLevelError):
    """The dataset of a file could not be told from its key, header or JSON shape."""

    def __init__(self, file: str) -> None:
        super().__init__(
            file,
            "cannot tell which dataset this file holds from its key, header or JSON shape",
            rule="structure.unknown_dataset",
            hint="drop it under inbox/<dataset>/ or pass --dataset",
        )


class UsageError(SalesflowError):
    """What was asked cannot be done as asked: a bad argument, a data dir that is not there.
    The command line exits 2 on it, before anything is written."""


class ConfigError(UsageError):
    """The configuration (flags, ``SALESFLOW_*`` variables, ``salesflow.toml``) is invalid."""


class MissingDependencyError(SalesflowError):
    """An optional backend was selected but its extra is not installed."""

    def __init__(self, extra: str, package: str) -> None:
        super().__init__(
            f"the '{extra}' backend needs the package {package!r}, which is not installed",
            hint=f'pip install "salesflow[{extra}]"',
        )
        self.extra = extra
        self.package = package

"""Build the backend the settings name: a dict from backend name to factory.

``local`` is a folder, a Parquet lake and one SQLite file under ``settings.data_dir``;
``aws`` is S3, DynamoDB, SQS and SNS, built by ``salesflow.adapters.aws.build`` and imported
only when chosen, so boto3 stays an optional extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from salesflow.config import Settings
from salesflow.errors import ConfigError, MissingDependencyError, SalesflowError
from salesflow.ports import Backend, Notifier


def build_notifiers(settings: Settings) -> list[Notifier]:
    """One notifier per sink in ``settings.alerts.sinks``, in that order.

    ``sns`` is left to the aws backend, which adds its own notifier; on the local backend it
    is a configuration error.
    """
    from salesflow.adapters.alerts import (
        JsonlNotifier,
        LogNotifier,
        SmtpNotifier,
        WebhookNotifier,
    )

    alerts = settings.alerts
    notifiers: list[Notifier] = []
    for sink in dict.fromkeys(alerts.sinks):
        if sink == "log":
            notifiers.append(LogNotifier())
        elif sink == "jsonl":
            notifiers.append(JsonlNotifier(alerts.jsonl_path or settings.data_dir / "alerts.jsonl"))
        elif sink == "smtp":
            notifiers.append(SmtpNotifier(alerts.smtp))
        elif sink == "webhook":
            if not alerts.webhook_url:
                raise SalesflowError(
                    "the webhook alert sink has no URL",
                    hint="set SALESFLOW_ALERTS__WEBHOOK_URL or drop 'webhook' from the sinks",
                )
            notifiers.append(WebhookNotifier(alerts.webhook_url, alerts.webhook_timeout))
        elif sink == "sns" and settings.backend != "aws":
            raise SalesflowError(
                "the sns alert sink needs the aws backend",
                hint="set SALESFLOW_BACKEND=aws or drop 'sns' from SALESFLOW_ALERTS__SINKS",
            )
    return notifiers


def _local(settings: Settings) -> Backend:
    from salesflow.adapters.lake import ParquetLake
    from salesflow.adapters.local.locks import LocalLocks
    from salesflow.adapters.local.store import LocalObjectStore
    from salesflow.adapters.sqlite.catalog import SqliteCatalog
    from salesflow.adapters.sqlite.letters import SqliteDeadLetters
    from salesflow.adapters.sqlite.tables import SqliteTables

    notifiers = build_notifiers(settings)
    store = LocalObjectStore(settings.bucket_dir)
    tables = SqliteTables(settings.db_path, busy_seconds=settings.sqlite_busy_seconds)
    locks = LocalLocks(settings.data_dir / "locks")
    lake = ParquetLake(
        store,
        SqliteCatalog(settings.db_path, busy_seconds=settings.sqlite_busy_seconds),
        locks,
        work_dir=settings.data_dir / "work",  # beside the bucket: fragments are renamed in
        new_commit=tables.next_seq,
    )
    return Backend(
        store=store,
        lake=lake,
        locks=locks,
        tables=tables,
        letters=SqliteDeadLetters(settings.db_path, busy_seconds=settings.sqlite_busy_seconds),
        notifiers=notifiers,
    )


def _aws(settings: Settings) -> Backend:
    try:
        importlib.import_module("boto3")
    except ImportError as exc:
        raise MissingDependencyError("aws", "boto3") from exc
    module = importlib.import_module("salesflow.adapters.aws")
    if not module.boto3_session(settings).region_name:
        raise ConfigError(
            "the aws backend needs an AWS region, and none is configured",
            hint="set SALESFLOW_AWS__REGION (or AWS_REGION, or region in ~/.aws/config)",
        )
    return cast(Backend, module.build(settings))


BACKENDS: dict[str, Callable[[Settings], Backend]] = {"local": _local, "aws": _aws}


def build_backend(settings: Settings) -> Backend:
    """The ``Backend`` for ``settings.backend``; close it with ``backend.close()``."""
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise SalesflowError(
            f"unknown backend {settings.backend!r}", hint=f"choose one of {sorted(BACKENDS)}"
        ) from None
    return factory(settings)

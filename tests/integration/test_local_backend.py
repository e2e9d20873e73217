"""build_backend and build_notifiers: the local backend from settings, and the aws fallback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from salesflow.adapters import BACKENDS, build_backend, build_notifiers
from salesflow.adapters.alerts import JsonlNotifier, LogNotifier, SmtpNotifier, WebhookNotifier
from salesflow.adapters.lake import ParquetLake
from salesflow.adapters.local.locks import LocalLocks
from salesflow.adapters.local.store import LocalObjectStore
from salesflow.adapters.sqlite.catalog import SqliteCatalog
from salesflow.adapters.sqlite.letters import SqliteDeadLetters
from salesflow.adapters.sqlite.tables import SqliteTables
from salesflow.config import Settings
from salesflow.errors import MissingDependencyError, SalesflowError


def test_local_backend_lives_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", alerts={"sinks": ["log", "jsonl"]})
    backend = build_backend(settings)
    try:
        assert isinstance(backend.store, LocalObjectStore)
        assert isinstance(backend.lake, ParquetLake) and backend.lake.store is backend.store
        assert isinstance(backend.lake.catalog, SqliteCatalog)
        assert backend.lake.catalog.db.path == settings.db_path
        assert isinstance(backend.locks, LocalLocks)
        assert isinstance(backend.tables, SqliteTables)
        assert isinstance(backend.letters, SqliteDeadLetters)
        assert backend.store.root == settings.bucket_dir
        assert backend.tables.db.path == backend.letters.db.path == settings.db_path
        assert settings.db_path.exists() and settings.bucket_dir.is_dir()
        log, jsonl = backend.notifiers
        assert isinstance(log, LogNotifier) and isinstance(jsonl, JsonlNotifier)
        assert jsonl.path == tmp_path / "data" / "alerts.jsonl"
    finally:
        backend.close()


def test_every_sink_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        alerts={
            "sinks": ["webhook", "smtp", "jsonl", "jsonl"],
            "jsonl_path": tmp_path / "elsewhere.jsonl",
            "webhook_url": "https://hooks.example/x",
            "webhook_timeout": 2.5,
            "smtp": {"recipients": ["ops@example.com"]},
        },
    )
    webhook, smtp, jsonl = build_notifiers(settings)
    assert isinstance(webhook, WebhookNotifier) and webhook.timeout == 2.5
    assert isinstance(smtp, SmtpNotifier) and smtp.settings.recipients == ["ops@example.com"]
    assert isinstance(jsonl, JsonlNotifier) and jsonl.path == tmp_path / "elsewhere.jsonl"


def test_webhook_without_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SalesflowError, match="no URL"):
        build_notifiers(Settings(data_dir=tmp_path, alerts={"sinks": ["webhook"]}))


def test_sns_needs_the_aws_backend(tmp_path: Path) -> None:
    with pytest.raises(SalesflowError, match="aws backend"):
        build_notifiers(Settings(data_dir=tmp_path, alerts={"sinks": ["sns"]}))
    aws = Settings(data_dir=tmp_path, backend="aws", alerts={"sinks": ["sns", "log"]})
    assert [n.name for n in build_notifiers(aws)] == ["log"]  # the aws factory adds SNS


def test_aws_without_boto3_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    with pytest.raises(MissingDependencyError) as err:
        build_backend(Settings(data_dir=tmp_path, backend="aws"))
    assert err.value.package == "boto3" and 'pip install "salesflow[aws]"' in str(err.value)


def test_aws_is_built_by_the_aws_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import salesflow.adapters.aws as aws

    seen: list[Settings] = []
    monkeypatch.setenv("SALESFLOW_AWS__REGION", "eu-west-1")  # the aws backend needs a region
    monkeypatch.setattr(aws, "build", lambda s: seen.append(s) or "aws-backend", raising=False)
    settings = Settings(data_dir=tmp_path, backend="aws")
    assert build_backend(settings) == "aws-backend"  # type: ignore[comparison-overlap]
    assert seen == [settings]


def test_unknown_backend(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path).model_copy(update={"backend": "gcp"})
    with pytest.raises(SalesflowError, match="unknown backend 'gcp'"):
        build_backend(settings)
    assert sorted(BACKENDS) == ["aws", "local"]

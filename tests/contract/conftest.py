"""Fixtures of the contract suites: the same port, implemented by every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesflow.ports import Tables

TABLES = [
    "memory",
    "sqlite",
    pytest.param("dynamodb", marks=pytest.mark.aws),
]


@pytest.fixture(params=TABLES)
def tables(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tables]:
    """``Tables`` in memory, on a real SQLite file, and on DynamoDB in moto's server."""
    if request.param == "memory":
        from tests.fixtures.memory import MemoryTables

        yield MemoryTables()
    elif request.param == "sqlite":
        from salesflow.adapters.sqlite.tables import SqliteTables

        sqlite = SqliteTables(tmp_path / "salesflow.db")
        yield sqlite
        sqlite.close()
    else:
        import boto3

        from salesflow.adapters.aws.dynamodb import DynamoTables
        from salesflow.adapters.aws.retry import Backoff
        from tests.integration.aws.tables import create_tables

        request.getfixturevalue("aws_env")
        client = boto3.client("dynamodb")
        yield DynamoTables(client, create_tables(client), backoff=Backoff(sleep=lambda _s: None))

"""The AWS adapters' tests run against moto's server; its fixtures live in tests/fixtures."""

from __future__ import annotations

from tests.fixtures.moto_server import aws_env, moto_server

__all__ = ["aws_env", "moto_server"]

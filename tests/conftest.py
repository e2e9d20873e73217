"""Shared fixtures. Each backend's fixtures live in tests/fixtures/<name>.py."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.servers",
    "tests.fixtures.moto_server",
    "tests.fixtures.spark",
]

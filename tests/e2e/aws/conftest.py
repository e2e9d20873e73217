"""The end-to-end AWS suite: moto's server in this process, and our handlers dispatched in it."""

from __future__ import annotations

from tests.fixtures.moto_lambda import lambda_dispatch
from tests.fixtures.moto_server import aws_env, moto_server

__all__ = ["aws_env", "lambda_dispatch", "moto_server"]

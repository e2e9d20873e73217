"""The AWS adapters' tests run against moto's server; its fixtures live in tests/fixtures."""

from __future__ import annotations

from tests.fixtures.moto_cfn import cloudformation_fidelity
from tests.fixtures.moto_server import aws_env, moto_server
from tests.fixtures.wheels import lambda_zip, wheelhouse

__all__ = ["aws_env", "cloudformation_fidelity", "lambda_zip", "moto_server", "wheelhouse"]

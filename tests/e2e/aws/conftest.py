"""The end-to-end AWS suite: moto's server in this process, our handlers and tasks run in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.aws.harness import Stack, deploy_stack
from tests.fixtures.iam_calls import iam_calls
from tests.fixtures.moto_cfn import cloudformation_fidelity
from tests.fixtures.moto_ecs import ecs_dispatch
from tests.fixtures.moto_lambda import executable_state_machines, lambda_dispatch
from tests.fixtures.moto_server import MotoServer, aws_env, moto_server
from tests.fixtures.wheels import lambda_zip, wheelhouse

__all__ = [
    "aws_env",
    "cloudformation_fidelity",
    "ecs_dispatch",
    "executable_state_machines",
    "iam_calls",
    "lambda_dispatch",
    "lambda_zip",
    "moto_server",
    "wheelhouse",
]


@pytest.fixture(scope="session")
def emulated(
    lambda_dispatch: object,
    ecs_dispatch: object,
    executable_state_machines: None,
    cloudformation_fidelity: None,
) -> None:
    """Everything the emulator needs to run the stack as AWS would."""


@pytest.fixture
def stack(aws_env: MotoServer, emulated: None, lambda_zip: Path) -> Stack:
    """A freshly deployed salesflow stack whose functions and tasks run our code."""
    return deploy_stack(package=lambda_zip)


@pytest.fixture(scope="module")
def module_stack(moto_server: MotoServer, emulated: None, lambda_zip: Path) -> Stack:
    """One stack for a whole module (its tests use distinct keys)."""
    moto_server.reset()
    return deploy_stack(package=lambda_zip)

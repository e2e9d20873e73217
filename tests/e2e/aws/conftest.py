"""The end-to-end AWS suite: moto's server in this process, our handlers dispatched in it."""

from __future__ import annotations

import pytest

from tests.e2e.aws.harness import Stack, deploy_stack
from tests.fixtures.moto_lambda import executable_state_machines, lambda_dispatch
from tests.fixtures.moto_server import MotoServer, aws_env, moto_server

__all__ = ["aws_env", "executable_state_machines", "lambda_dispatch", "moto_server"]


@pytest.fixture
def stack(aws_env: MotoServer, lambda_dispatch: object, executable_state_machines: None) -> Stack:
    """A freshly deployed salesflow stack whose functions run our handlers."""
    return deploy_stack()


@pytest.fixture(scope="module")
def module_stack(
    moto_server: MotoServer, lambda_dispatch: object, executable_state_machines: None
) -> Stack:
    """One stack for a whole module (its tests use distinct keys)."""
    moto_server.reset()
    return deploy_stack()

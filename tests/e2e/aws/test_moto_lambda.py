"""The in-process Lambda dispatch: moto's invoke runs the configured handler, as AWS would."""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import boto3
import pytest

from tests.fixtures.moto_lambda import InvocationLog, import_handler
from tests.fixtures.moto_server import MotoServer

pytestmark = pytest.mark.aws

VARIABLE = "SALESFLOW_TEST_DISPATCH"


class Boom(Exception):
    """An error whose class name must reach the caller as the errorType."""


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "variable": os.environ.get(VARIABLE),
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
    }


def explode(event: Any, context: Any) -> None:
    raise Boom(f"cannot handle {event['key']}")


def _function(name: str, handler: str, variables: dict[str, str] | None = None) -> str:
    iam = boto3.client("iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "")
    return str(
        boto3.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=handler,
            Code={"ZipFile": code.getvalue()},
            Timeout=30,
            Environment={"Variables": variables or {}},
        )["FunctionName"]
    )


def test_invoke_runs_the_configured_handler_with_its_environment(
    aws_env: MotoServer, lambda_dispatch: InvocationLog
) -> None:
    name = _function("echo", f"{__name__}.echo", {VARIABLE: "from-the-function"})
    response = boto3.client("lambda").invoke(FunctionName=name, Payload=b'{"key": "inbox/a"}')
    assert "FunctionError" not in response
    assert json.load(response["Payload"]) == {
        "event": {"key": "inbox/a"},
        "variable": "from-the-function",
        "function": "echo",
        "remaining": 30_000,
    }
    assert VARIABLE not in os.environ
    assert [c.function for c in lambda_dispatch.of(".echo")][-1] == "echo"


def test_an_exception_becomes_a_function_error_named_by_its_class(
    aws_env: MotoServer, lambda_dispatch: InvocationLog
) -> None:
    name = _function("explode", f"{__name__}.explode")
    response = boto3.client("lambda").invoke(FunctionName=name, Payload=b'{"key": "inbox/b"}')
    assert response["FunctionError"] == "Unhandled"
    assert json.load(response["Payload"]) == {
        "errorType": "Boom",
        "errorMessage": "cannot handle inbox/b",
    }
    assert lambda_dispatch.of(".explode")[-1].error_type == "Boom"


def test_the_environment_is_restored_after_the_call(
    aws_env: MotoServer, lambda_dispatch: InvocationLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, "before")
    name = _function("echo2", f"{__name__}.echo", {VARIABLE: "during"})
    response = boto3.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    assert json.load(response["Payload"])["variable"] == "during"
    assert os.environ[VARIABLE] == "before"


def test_import_handler_needs_a_module_path() -> None:
    assert import_handler(f"{__name__}.echo") is echo
    with pytest.raises(ValueError, match="module.function"):
        import_handler("echo")


def test_a_layer_is_seen_by_its_own_thread_only() -> None:
    import threading

    from tests.fixtures.moto_lambda import ThreadEnviron

    base = {"SHARED": "1"}
    environ = ThreadEnviron(base)
    seen: dict[str, object] = {}

    def other_thread() -> None:
        seen["other"] = environ.get(VARIABLE)

    with environ.layer({VARIABLE: "mine"}):
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert environ[VARIABLE] == "mine"
        assert environ.copy() == {"SHARED": "1", VARIABLE: "mine"} and len(environ) == 2
        environ["WRITTEN"] = "to-base"
    assert seen["other"] is None
    assert VARIABLE not in environ
    assert base == {"SHARED": "1", "WRITTEN": "to-base"}
    del environ["WRITTEN"]
    assert list(environ) == ["SHARED"]

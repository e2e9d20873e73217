"""The dashboard's gate, in process: loopback names, the token (header, cookie, login URL),
the Host check without a token, and the security headers on every answer."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from salesflow.entrypoints.ui.security import Gate, _host_name, is_loopback, require_token
from salesflow.errors import SalesflowError


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def get(gate: Gate, path: str, **kwargs: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=gate)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get(path, **kwargs)

    return asyncio.run(call())


def test_loopback_names() -> None:
    for host in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", ""):
        assert not is_loopback(host), host
    assert [_host_name(h) for h in ("localhost:8050", "[::1]:8050", "::1", "a.b")] == [
        "localhost",
        "::1",
        "::1",
        "a.b",
    ]


def test_beyond_loopback_a_token_is_required() -> None:
    with pytest.raises(SalesflowError, match="refusing to bind the dashboard to 0.0.0.0"):
        require_token("0.0.0.0", None)
    require_token("0.0.0.0", "t")
    require_token("127.0.0.1", None)


def test_the_token_in_a_header_a_cookie_or_the_login_url() -> None:
    gate = Gate(hello, token="s3cret")
    assert get(gate, "/").status_code == 401
    assert get(gate, "/", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert get(gate, "/", headers={"Authorization": "Bearer s3cret"}).text == "hello"
    assert get(gate, "/", headers={"X-Salesflow-Token": "s3cret"}).status_code == 200
    assert get(gate, "/", headers={"Cookie": "salesflow_token=s3cret"}).status_code == 200
    assert get(gate, "/", headers={"Cookie": "salesflow_token=nope"}).status_code == 403
    login = get(gate, "/dlq?status=NEW&token=s3cret")
    assert login.status_code == 303 and login.headers["location"] == "/dlq?status=NEW"
    cookie = login.headers["set-cookie"]
    assert "salesflow_token=s3cret" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert get(gate, "/?token=nope").status_code == 403


def test_without_a_token_only_a_loopback_host_is_served() -> None:
    gate = Gate(hello, token=None)
    assert get(gate, "/").status_code == 200
    assert get(gate, "/", headers={"Host": "localhost:8050"}).status_code == 200
    assert get(gate, "/", headers={"Host": "[::1]:8050"}).status_code == 200
    assert get(gate, "/", headers={"Host": "rebind.example:8050"}).status_code == 403


def test_every_answer_carries_the_security_headers() -> None:
    for gate, headers in ((Gate(hello, token=None), {}), (Gate(hello, token="t"), {})):
        answer = get(gate, "/", headers=headers)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"

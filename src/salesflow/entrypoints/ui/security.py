"""Who may use the dashboard: loopback by default, a token for anything wider.

- ``salesflow ui`` binds to 127.0.0.1. Bound to another address it refuses to start unless it
  has a token (``SALESFLOW_UI__TOKEN``, or ``--new-token`` to generate one, printed once).
- With a token, every request must carry it: ``Authorization: Bearer <token>``, the
  ``X-Salesflow-Token`` header, or the cookie that opening ``/?token=<token>`` sets (the URL
  printed at start-up; the token is then dropped from the address bar).
- Without a token (loopback only), the ``Host`` header must name a loopback address, so a web
  page elsewhere cannot reach the dashboard by pointing its own domain at 127.0.0.1.
- State-changing actions are POSTs checked by Litestar's CSRF middleware (double-submit
  cookie, HMAC-signed); every response forbids framing and inline scripts.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from salesflow.errors import SalesflowError

# Plain ASGI shapes: this gate sits in front of any ASGI app.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

TOKEN_COOKIE = "salesflow_token"
TOKEN_HEADER = b"x-salesflow-token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the dashboard on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def require_token(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise SalesflowError(
            f"refusing to bind the dashboard to {host} without a token: anyone who can reach "
            "that address could read and change the dead-letter queue",
            hint="set SALESFLOW_UI__TOKEN, or pass --new-token to generate one, "
            "or bind to 127.0.0.1 (the default)",
        )


def _host_name(value: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:8050`` -> ``::1``)."""
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class Gate:
    """ASGI middleware in front of the whole app: the token (or, without one, a loopback
    ``Host``), and the security headers on every response."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.token is None:
            host = headers.get(b"host", b"").decode("latin-1")
            if not is_loopback(_host_name(host)):
                await _plain(send, 403, "this dashboard answers only to a loopback Host")
                return
        else:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            offered = query.get("token")
            if offered is not None and scope["method"] == "GET":
                await self._login(scope, send, offered, query)
                return
            given = _presented(headers)
            if given is None:
                await _plain(
                    send, 401, "this dashboard needs its token: open the URL salesflow ui printed"
                )
                return
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                await _plain(send, 403, "wrong token")
                return
        await self.app(scope, receive, _with_headers(send, SECURITY_HEADERS))

    async def _login(self, scope: Scope, send: Send, offered: str, query: dict[str, str]) -> None:
        """``?token=``: set the cookie and redirect to the same page without the token."""
        assert self.token is not None
        if not secrets.compare_digest(offered.encode(), self.token.encode()):
            await _plain(send, 403, "wrong token")
            return
        rest = urlencode({k: v for k, v in query.items() if k != "token"})
        location = scope["path"] + (f"?{rest}" if rest else "")
        cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie.encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _presented(headers: dict[bytes, bytes]) -> str | None:
    """The token a request carries: bearer header, our header, or our cookie."""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if TOKEN_HEADER in headers:
        return headers[TOKEN_HEADER].decode("latin-1")
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed Cookie header is no token
        return None
    morsel = cookies.get(TOKEN_COOKIE)
    return morsel.value if morsel is not None else None


def _with_headers(send: Send, extra: Iterable[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            added = [(k, v) for k, v in extra if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *added]}
        await send(message)

    return wrapped


async def _plain(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": (text + "\n").encode()})

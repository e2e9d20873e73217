"""``salesflow ui``: the web dashboard, over the same backend as every other command.

Litestar renders the pages (``app.py``), uvicorn serves them, ``security.py`` decides who may
look. Chart.js is vendored in ``static/`` (see ``static/VENDORED.md``): no CDN.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

from salesflow.config import Settings
from salesflow.errors import MissingDependencyError


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port), IPv4 or IPv6."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    token: str | None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the dashboard until Ctrl-C or SIGTERM. Raises ``SalesflowError`` (before
    binding) if ``host`` is not loopback and there is no token."""
    try:
        import uvicorn

        from salesflow.entrypoints.ui.app import create_app
    except ImportError as exc:
        raise MissingDependencyError("ui", exc.name or "litestar") from exc
    from salesflow.entrypoints.cli.common import open_backend
    from salesflow.entrypoints.ui.security import require_token

    require_token(host, token)
    with open_backend(settings) as backend:
        app = create_app(backend, settings, token=token)
        sock = _bind(host, port)
        url = url_of(sock)
        announce(f"salesflow ui: {url} (backend {settings.backend})")
        if token:
            announce(f"open {url}?token={token}")
        sys.stdout.flush()
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        uvicorn.Server(config).run(sockets=[sock])

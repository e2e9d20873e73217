"""The webhook sink: POST the alert as JSON, with the alert id as the idempotency key."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from salesflow.adapters.alerts.errors import SinkError
from salesflow.errors import SalesflowError
from salesflow.models import Alert
from salesflow.redact import redact_url, redact_urls

if TYPE_CHECKING:
    import httpx


class WebhookNotifier:
    """POSTs each alert to ``url`` with httpx. Any answer outside 2xx is a failure.

    The ``Idempotency-Key`` header is the alert id, so a receiver that keeps the keys it has
    seen drops a delivery repeated after a timeout or a crash. ``timeout`` bounds connecting,
    each read and each write, so a receiver that hangs costs at most about ``timeout``
    seconds. User info in the URL (``https://user:pass@host/...``) is sent as HTTP basic
    auth; the URL is shown and logged only redacted (``salesflow.redact``).
    """

    name = "webhook"

    def __init__(
        self, url: str, timeout: float = 5.0, *, client: httpx.Client | None = None
    ) -> None:
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise SalesflowError(
                f"webhook URL {redact_url(url)!r} is not an http(s) URL",
                hint="set SALESFLOW_ALERTS__WEBHOOK_URL=https://host/path",
            )
        self.url = url
        self.shown_url = redact_url(url)
        self.timeout = timeout
        self._client = client
        self._lock = threading.Lock()
        self._auth: tuple[str, str] | None = None
        if parts.username is not None:
            self._auth = (parts.username, parts.password or "")
            netloc = parts.netloc.rpartition("@")[2]
            self._target = urlunsplit(parts._replace(netloc=netloc))
        else:
            self._target = url

    @property
    def client(self) -> httpx.Client:
        """One pooled client per sink, made on first use (httpx is imported only then)."""
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    follow_redirects=False,
                    headers={"User-Agent": "salesflow"},
                )
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def send(self, alert: Alert) -> None:
        import httpx

        auth = httpx.BasicAuth(*self._auth) if self._auth else httpx.USE_CLIENT_DEFAULT
        try:
            response = self.client.post(
                self._target,
                content=json.dumps(alert.to_dict()).encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": alert.id},
                auth=auth,
            )
        except httpx.TimeoutException as exc:
            cause = f"{self.shown_url} did not answer within {self.timeout:g}s ({_kind(exc)})"
            raise SinkError(self.name, alert.id, cause) from exc
        except httpx.HTTPError as exc:
            cause = f"{self.shown_url} unreachable: {_kind(exc)}"
            raise SinkError(self.name, alert.id, cause) from exc
        if not response.is_success:
            cause = f"{self.shown_url} answered HTTP {response.status_code}"
            raise SinkError(self.name, alert.id, cause)


def _kind(exc: Exception) -> str:
    """The error's type and message, without the URL httpx may put in it."""
    text = redact_urls(str(exc).replace("\n", " "))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

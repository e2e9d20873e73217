"""Credentials and tokens out of URLs before they are shown or logged.

A webhook URL is a secret. ``https://user:pass@host/...`` carries a password, and Slack,
Discord, Teams or Zapier hooks carry their token in the path (``/services/T0/B0/XXXX``,
``/api/webhooks/<id>/<token>``) or in the query (``?token=...``). ``redact_url`` keeps what
helps a reader tell which sink it is (scheme, host, port, the path's plain words) and
replaces everything else with ``***``: the user info, every path segment that does not read
as a word, every query value and the fragment.

>>> redact_url("https://bot:s3cret@hooks.slack.com/services/T0AB12/B0CD34/xYz9QwErTy?x=1")
'https://***@hooks.slack.com/services/***/***/***?x=***'
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_WORD = re.compile(r"[A-Za-z]{1,16}(?:[-_.][A-Za-z]{1,16}){0,4}\d{0,2}")
"""A path segment that reads as a word: ``hooks``, ``sales-alerts``, ``api``, ``v1``."""

KNOWN_HOOKS = {
    "hooks.slack.com": 1,  # /services/<team>/<bot>/<token>
    "discord.com": 2,  # /api/webhooks/<id>/<token>
    "discordapp.com": 2,
    "hooks.zapier.com": 2,  # /hooks/catch/<account>/<hook>/
    "webhook.office.com": 1,  # /webhookb2/<guid>@<tenant>/IncomingWebhook/<id>/<guid>
    "chat.googleapis.com": 0,  # /v1/spaces/<space>/messages?key=...&token=...
}
"""Hosts whose webhook paths are all secret after a fixed prefix of this many segments."""

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s'\"<>]+")
_TRAILING = ".,;:!?)]}"


def _plain(segment: str) -> bool:
    """Whether a path segment is a word rather than an id or a token. Random tokens that are
    letters only give themselves away by their mixed case (``xYzQwErTy``)."""
    if not segment or not _WORD.fullmatch(segment):
        return not segment
    inner_upper = sum(c.isupper() for c in segment[1:])
    return inner_upper <= 2 or segment.isupper() and len(segment) <= 8


def _known_prefix(host: str) -> int | None:
    for known, keep in KNOWN_HOOKS.items():
        if host == known or host.endswith("." + known):
            return keep
    return None


def redact_url(url: str) -> str:
    """``url`` with its user info, token-like path segments, query values and fragment
    replaced by ``***``. Text that is not a URL with a host comes back unchanged."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return url
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    keep = _known_prefix(host)
    segments = parts.path.split("/")
    path = "/".join(
        s if (keep is None and _plain(s)) or (keep is not None and i <= keep) or not s else MASK
        for i, s in enumerate(segments)
    )
    query = "&".join(
        f"{pair.partition('=')[0]}={MASK}" if "=" in pair else MASK
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, path, query, MASK if parts.fragment else ""))


def redact_urls(text: str) -> str:
    """Every URL inside ``text`` redacted with ``redact_url`` (for error messages and logs).

    >>> redact_urls("POST https://u:p@h.example/hook/abcdEFGH1234 answered HTTP 500")
    'POST https://***@h.example/hook/*** answered HTTP 500'
    """
    if "://" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        stripped = url.rstrip(_TRAILING)
        return redact_url(stripped) + url[len(stripped) :]

    return _URL.sub(one, text)


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact_urls(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = str(arg)
    return redact_urls(text) if "://" in text else arg


class RedactUrls(logging.Filter):
    """Redacts URLs in a record's message, arguments and exception text (attach it to a
    handler, as ``salesflow.logs.configure_logging`` does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_redact_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_urls(record.exc_text)
        return True

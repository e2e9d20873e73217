"""Logging for salesflow: emails masked everywhere, plain or JSON lines on stderr.

Sales records carry customer emails; logs travel further than the data (terminals, CI output,
CloudWatch), so every record passing through ``configure_logging``'s handler has its message,
its arguments and its traceback text masked: ``foobar@test.com`` becomes ``f*****@test.com``,
and a URL's credentials and path or query tokens are redacted (webhook URLs carry secrets:
``https://user:pw@hooks.example.com/services/T0/B0/abc`` becomes
``https://user:***@hooks.example.com/services/***``).

What reaches a terminal goes through :func:`printable` too: a file name holding a newline or
an escape sequence is shown escaped, so it cannot forge a line of output.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from salesflow.errors import SalesflowError
from salesflow.redact import RedactUrls, redact_urls

EMAIL = re.compile(r"(?<![\w.%+'-])([\w.%+'-])([\w.%+'-]*)@([\w-]+(?:\.[\w-]+)+)")
"""An address: local part, ``@``, a dotted domain; Unicode letters allowed on both sides.

The look-behind starts a match only where a run of local-part characters starts, so each
character is scanned a bounded number of times: linear in the text (without it, a long run
with no ``@`` was rescanned from every position, quadratic: 25 s for 60,000 characters)."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HANDLER_FLAG = "_salesflow_handler"


def mask_email(text: str) -> str:
    """Hide the local part of every email address in ``text`` but its first character.

    >>> mask_email("contact foobar@test.com now, jörg@exämple.de")
    'contact f*****@test.com now, j***@exämple.de'
    """
    if "@" not in text:
        return text
    return EMAIL.sub(lambda m: f"{m.group(1)}{'*' * max(len(m.group(2)), 3)}@{m.group(3)}", text)


def mask_secrets(text: str) -> str:
    """Emails masked and URLs redacted: what every log line and console error goes through."""
    return mask_email(redact_urls(text))


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``, ``\\u2028``), so a
    name read from a file or a key always prints as exactly one line, as it is.

    >>> printable("inbox/a\\nSUCCESS fake.csv")
    'inbox/a\\\\nSUCCESS fake.csv'
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(0)) or _escape(m.group(0)), text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _mask_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return mask_secrets(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    return mask_secrets(str(arg))


class MaskEmails(logging.Filter):
    """Masks emails (and redacts URLs) in a record's message, arguments and exception text.

    Attach it to a handler (as ``configure_logging`` does), not a logger: a logger's filters
    do not see records that propagate from its children.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_secrets(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _mask_arg(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_mask_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str | int = "INFO", json: bool = False) -> logging.Handler:
    """Send logs to stderr, plain or as JSON lines, with emails masked.

    Calling it again replaces the handler it installed before (tests and the CLI may call it
    more than once); handlers installed by others are left alone.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_FLAG, True)
    handler.addFilter(MaskEmails())
    handler.addFilter(RedactUrls())  # webhook URLs carry passwords and tokens
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # one line per webhook request would drown the service's own lines (delivery logs failures)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def one_line(text: str) -> str:
    """``text`` as one safe console line: whitespace runs (newlines too) collapsed, emails
    masked, URLs redacted, any other control character escaped."""
    return printable(mask_secrets(" ".join(text.split())))


def error_line(exc: BaseException) -> str:
    """One masked line for an error a user should read, never a traceback.

    A ``SalesflowError`` already names the file, the cause and the fix (its ``hint``); any
    other exception is shown as its type and message.

    >>> error_line(ValueError("bad foobar@test.com"))
    'error: ValueError: bad f*****@test.com'
    """
    text = str(exc) if isinstance(exc, SalesflowError) else f"{type(exc).__name__}: {exc}"
    return "error: " + one_line(text)

"""Logging for salesflow: emails masked everywhere, plain or JSON lines on stderr.

Sales records carry customer emails; logs travel further than the data (terminals, CI output,
CloudWatch), so every record passing through ``configure_logging``'s handler has its message,
its arguments and its traceback text masked: ``foobar@test.com`` becomes ``f*****@test.com``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from salesflow.errors import SalesflowError
from salesflow.redact import RedactUrls

EMAIL = re.compile(r"([A-Za-z0-9._%+-])([A-Za-z0-9._%+-]*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_HANDLER_FLAG = "_salesflow_handler"


def mask_email(text: str) -> str:
    """Hide the local part of every email address in ``text`` but its first character.

    >>> mask_email("contact foobar@test.com now")
    'contact f*****@test.com now'
    """
    return EMAIL.sub(lambda m: f"{m.group(1)}{'*' * max(len(m.group(2)), 3)}@{m.group(3)}", text)


def _mask_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return mask_email(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    return mask_email(str(arg))


class MaskEmails(logging.Filter):
    """Masks emails in a record's message, its arguments and its exception text.

    Attach it to a handler (as ``configure_logging`` does), not a logger: a logger's filters
    do not see records that propagate from its children.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_email(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _mask_arg(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_mask_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_email(record.exc_text)
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


def error_line(exc: BaseException) -> str:
    """One masked line for an error a user should read, never a traceback.

    A ``SalesflowError`` already names the file, the cause and the fix (its ``hint``); any
    other exception is shown as its type and message.

    >>> error_line(ValueError("bad foobar@test.com"))
    'error: ValueError: bad f*****@test.com'
    """
    text = str(exc) if isinstance(exc, SalesflowError) else f"{type(exc).__name__}: {exc}"
    return "error: " + mask_email(" ".join(text.split()))

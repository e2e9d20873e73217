"""Emails never reach the logs in clear: message, arguments and tracebacks are masked."""

# The tests log through a logger outside the "salesflow" tree: the Lambda handlers (imported by
# the AWS suite in the same worker) route "salesflow" to Powertools and stop its propagation.

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from salesflow.errors import FileLevelError
from salesflow.logs import (
    MaskEmails,
    configure_logging,
    error_line,
    mask_email,
    one_line,
    printable,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("foobar@test.com", "f*****@test.com"),
        ("mail ab@x.co and c.d+e@sub.example.org!", "mail a***@x.co and c****@sub.example.org!"),
        ("a@b.io", "a***@b.io"),
        ("no email here @ all, user@localhost", "no email here @ all, user@localhost"),
    ],
)
def test_mask_email(text: str, masked: str) -> None:
    assert mask_email(text) == masked


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Route logs through ``configure_logging``'s handler into a buffer."""
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("DEBUG")
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


def test_filter_masks_message_and_args(stream: io.StringIO) -> None:
    log = logging.getLogger("tests.logs")
    log.info("customer foobar@test.com bought %s from %s", "x", "seller@shop.example")
    log.info("by name %(who)s", {"who": "someone@corp.example"})
    log.info("object arg %s", {"email": "inner@corp.example"})
    out = stream.getvalue()
    assert "foobar@test.com" not in out and "f*****@test.com" in out
    assert "seller@shop.example" not in out and "s*****@shop.example" in out
    assert "someone@corp.example" not in out and "s******@corp.example" in out
    assert "inner@corp.example" not in out and "i****@corp.example" in out


def test_filter_masks_tracebacks(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad row for leak@corp.example")
    except ValueError:
        logging.getLogger("tests.logs").exception("failed")
    out = stream.getvalue()
    assert "Traceback" in out and "leak@corp.example" not in out and "l***@corp.example" in out


def test_filter_keeps_numbers_as_numbers() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d rows, %.1f s", (3, 1.25), None)
    assert MaskEmails().filter(record)
    assert record.getMessage() == "3 rows, 1.2 s"


def test_json_lines(stream: io.StringIO) -> None:
    root = logging.getLogger()
    handler = configure_logging("INFO", json=True)
    handler.setStream(stream)  # type: ignore[attr-defined]
    assert sum(1 for h in root.handlers if h is handler) == 1
    logging.getLogger("tests.logs").debug("hidden")
    logging.getLogger("tests.logs").warning("to %s", "foobar@test.com")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "tests.logs"
    assert entry["message"] == "to f*****@test.com"
    root.removeHandler(handler)


def test_json_lines_carry_the_traceback(stream: io.StringIO) -> None:
    handler = configure_logging("INFO", json=True)
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("tests.logs").exception("boom")
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert "KeyError" in entry["exception"]
    logging.getLogger().removeHandler(handler)


def test_configure_logging_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    first = configure_logging("INFO")
    second = configure_logging("WARNING")
    try:
        assert first not in root.handlers and second in root.handlers and other in root.handlers
        assert root.level == logging.WARNING
    finally:
        root.removeHandler(second)
        root.removeHandler(other)


def test_error_line_is_one_masked_line() -> None:
    exc = FileLevelError(
        "inbox/x.csv", "row 3 of bob@corp.example\nis broken", rule="structure.x", hint="fix it"
    )
    assert error_line(exc) == "error: inbox/x.csv: row 3 of b***@corp.example is broken (fix it)"
    assert error_line(KeyError("k")) == "error: KeyError: 'k'"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("jörg@exämple.de", "j***@exämple.de"),
        ("an Ωmega.user@δοκιμή.ελ wrote", "an Ω*********@δοκιμή.ελ wrote"),
        ("zoë_o'hara@example.co.uk", "z*********@example.co.uk"),
    ],
)
def test_mask_email_masks_non_ascii_addresses(text: str, masked: str) -> None:
    assert mask_email(text) == masked


def test_mask_email_is_linear_on_a_60000_character_field() -> None:
    """Quadratic masking took 25 s on this input. A child process with a 10 s CPU budget
    (a linear pass takes milliseconds; the quadratic one is killed long before it ends)."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (10, 10))\n"
        "from salesflow.logs import mask_email\n"
        "field = 'a' * 60_000\n"
        "for text in (field, 'x@' * 30_000, 'a.' * 30_000 + '@' + 'b' * 60_000):\n"
        "    assert mask_email(text) == text\n"
        "print(mask_email(field + '@example.com')[:3])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"killed or failed ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.strip() == "a**"


def test_logs_redact_urls_and_mask_emails(stream: io.StringIO) -> None:
    url = "https://user:pw123@hooks.example.com/services/T0/B0/tok3n"
    logging.getLogger("tests.logs").warning("webhook %s failed for a@b.io", url)
    out = stream.getvalue()
    assert "pw123" not in out and "tok3n" not in out and "a***@b.io" in out
    assert "hooks.example.com/services/" in out


def test_printable_escapes_what_could_forge_or_restyle_a_line() -> None:
    assert printable("a\nb\rc\td\x1b[31m\u2028e\u202ef\x7f") == (
        "a\\nb\\rc\\td\\x1b[31m\\u2028e\\u202ef\\x7f"
    )
    assert printable("plain café ✓") == "plain café ✓"
    assert one_line("two\nlines bob@corp.example") == "two lines b***@corp.example"

"""Turning the dashboard's forms into library calls: filters from query strings, and a
corrected dead letter from the fields a person edited.

The page shows every value with emails masked. A field sent back unchanged (still masked)
keeps the stored value, so fixing one field never writes ``f*****@test.com`` into another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from salesflow.logs import mask_email
from salesflow.models import DeadLetter

FIELD_PREFIX = "fix."


def shown(value: Any) -> str:
    """How a raw field appears in the form: text as is, anything else as JSON; emails
    masked."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return mask_email(text)


def corrected(letter: DeadLetter, form: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The letter's raw record with the edited fields applied, and a problem per field that
    could not be read (JSON fields must stay JSON)."""
    raw = dict(letter.raw)
    problems: list[str] = []
    for name, original in letter.raw.items():
        submitted = form.get(FIELD_PREFIX + name)
        if submitted is None or submitted == shown(original):
            continue
        if isinstance(original, dict | list):
            try:
                raw[name] = json.loads(submitted)
            except json.JSONDecodeError as exc:
                problems.append(f"{name}: not JSON ({exc.msg}); keep the braces and quotes")
            continue
        raw[name] = submitted
    return raw, problems


def day(value: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value, or None if empty or not a date."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def safe_next(value: str | None, default: str) -> str:
    """A same-site path to go back to after a POST (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default

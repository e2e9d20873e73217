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


def fields(raw: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """The editable leaves of a raw record: ``(form name, label, value)``. Nested objects (a
    JSON order's ``contact-info``) are opened up, so each value gets its own input; the form
    name carries the path as JSON, which any key can be part of."""
    out: list[tuple[str, str, Any]] = []

    def walk(path: list[str], value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk([*path, str(key)], inner)
        else:
            out.append((FIELD_PREFIX + json.dumps(path), " › ".join(path), value))

    for key, value in raw.items():
        walk([str(key)], value)
    return out


def corrected(letter: DeadLetter, form: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The letter's raw record with the edited fields applied, and a problem per field that
    could not be read (a list must stay JSON)."""
    raw: dict[str, Any] = json.loads(json.dumps(letter.raw))  # a deep copy
    problems: list[str] = []
    for name, label, original in fields(letter.raw):
        submitted = form.get(name)
        if submitted is None or submitted == shown(original):
            continue
        value: Any = submitted
        if isinstance(original, list | dict):
            try:
                value = json.loads(submitted)
            except json.JSONDecodeError as exc:
                problems.append(f"{label}: not JSON ({exc.msg}); keep the brackets and quotes")
                continue
        *parents, last = json.loads(name[len(FIELD_PREFIX) :])
        node = raw
        for key in parents:
            node = node[key]
        node[last] = value
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

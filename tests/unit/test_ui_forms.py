"""The dashboard's forms: nested raw records opened into one input per value, corrections
applied where a person edited, masked values sent back unchanged keeping the stored ones."""

from __future__ import annotations

from datetime import date

from salesflow.entrypoints.ui import forms
from salesflow.models import DeadLetter, Reason

NESTED = {
    "order-info": {"OrderId": "J-1", "item-id": "5", "qty": "0"},
    "contact-info": {"name": "Di Eve", "email": "di.eve@example.com"},
    "tags": ["a", "b"],
}


def letter(raw: dict[str, object]) -> DeadLetter:
    return DeadLetter("s:1", "orders_json", "inbox/o.json", 1, raw, [Reason("r", "qty", "bad")])


def form_of(raw: dict[str, object], **edits: str) -> dict[str, str]:
    """What the browser sends back: every shown value, with ``edits`` by label."""
    sent = {name: forms.shown(value) for name, _, value in forms.fields(raw)}
    for name, label, _ in forms.fields(raw):
        if label in edits:
            sent[name] = edits[label]
    return sent


def test_nested_values_get_one_input_each() -> None:
    labels = [label for _, label, _ in forms.fields(NESTED)]
    assert labels == [
        "order-info › OrderId",
        "order-info › item-id",
        "order-info › qty",
        "contact-info › name",
        "contact-info › email",
        "tags",
    ]
    shown = {label: forms.shown(v) for _, label, v in forms.fields(NESTED)}
    assert shown["contact-info › email"] == "d*****@example.com"
    assert shown["tags"] == '["a", "b"]'


def test_an_edit_lands_in_place_and_masked_values_keep_the_stored_ones() -> None:
    raw, problems = forms.corrected(letter(NESTED), form_of(NESTED, **{"order-info › qty": "3"}))
    assert problems == []
    assert raw == {**NESTED, "order-info": {**NESTED["order-info"], "qty": "3"}}  # type: ignore[dict-item]
    assert raw["contact-info"]["email"] == "di.eve@example.com"  # type: ignore[index]


def test_a_field_can_be_fixed_even_when_it_was_masked() -> None:
    edits = {"contact-info › email": "di@example.org"}
    raw, _ = forms.corrected(letter(NESTED), form_of(NESTED, **edits))
    assert raw["contact-info"]["email"] == "di@example.org"  # type: ignore[index]


def test_a_list_must_stay_json() -> None:
    raw, problems = forms.corrected(letter(NESTED), form_of(NESTED, tags="[oops"))
    assert raw["tags"] == ["a", "b"]
    assert len(problems) == 1 and problems[0].startswith("tags: not JSON")
    raw, problems = forms.corrected(letter(NESTED), form_of(NESTED, tags='["c"]'))
    assert raw["tags"] == ["c"] and problems == []


def test_flat_records_and_keys_with_odd_characters() -> None:
    flat = {"a.b": "1", "c/d": None, 'q"x': 2}
    raw, problems = forms.corrected(letter(flat), form_of(flat, **{"a.b": "9", 'q"x': "3"}))
    assert (raw, problems) == ({"a.b": "9", "c/d": None, 'q"x': "3"}, [])


def test_day_and_next() -> None:
    assert forms.day("2024-06-01") == date(2024, 6, 1)
    assert forms.day("June") is None and forms.day("") is None
    assert forms.safe_next("/dlq?status=NEW", "/dlq") == "/dlq?status=NEW"
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil", None):
        assert forms.safe_next(hostile, "/dlq") == "/dlq"

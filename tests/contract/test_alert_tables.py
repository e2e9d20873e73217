"""The alert half of the ``Tables`` port, one suite for every store: the in-memory fake, the
SQLite file and DynamoDB on moto's server (the ``tables`` fixture of ``conftest.py``). A
store that answers differently fails here."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from salesflow.models import Alert, AlertStatus
from salesflow.ports import Tables

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def alert(n: int, sink: str = "log", *, dataset: str = "sale_events", file: str = "a") -> Alert:
    return Alert(
        id=f"{dataset}:S{n}@{sink}",
        dataset=dataset,
        record_key=f"S{n}",
        amount=400.5 + n,
        threshold=400.0,
        source_file=f"inbox/{dataset}/{file}.json",
        message=f"sale S{n}",
        created_at=T0 + timedelta(seconds=n),
    )


def ids(alerts: list[Alert]) -> list[str]:
    return [a.id for a in alerts]


def test_is_tables(tables: Tables) -> None:
    assert isinstance(tables, Tables)


def test_alerts_are_added_once_and_listed_oldest_first(tables: Tables) -> None:
    assert tables.add_alerts([alert(1), alert(2)]) == [alert(1), alert(2)]
    assert tables.add_alerts([alert(2), alert(3), alert(3, "webhook")]) == [
        alert(3),
        alert(3, "webhook"),
    ]
    assert tables.list_alerts() == [alert(1), alert(2), alert(3), alert(3, "webhook")]


def test_filters_by_status_dataset_and_source_file_and_limit(tables: Tables) -> None:
    tables.add_alerts(
        [
            alert(1, file="a"),
            alert(2, file="b"),
            alert(3, dataset="orders_json", file="a"),
            alert(4, file="a"),
        ]
    )
    sent = replace(alert(2, file="b"), status=AlertStatus.SENT, attempts=1, sent_at=T0)
    assert tables.update_alert(sent)
    assert ids(tables.list_alerts(AlertStatus.SENT)) == [sent.id]
    assert ids(tables.list_alerts("PENDING")) == [
        alert(1).id,
        alert(3, dataset="orders_json").id,
        alert(4).id,
    ]
    assert ids(tables.list_alerts(dataset="orders_json")) == [alert(3, dataset="orders_json").id]
    assert ids(tables.list_alerts(source_file="inbox/sale_events/a.json")) == [
        alert(1).id,
        alert(4).id,
    ]
    assert ids(tables.list_alerts(AlertStatus.PENDING, dataset="sale_events")) == [
        alert(1).id,
        alert(4).id,
    ]
    # a limit keeps the newest, still oldest first
    assert ids(tables.list_alerts(limit=2)) == [alert(3, dataset="orders_json").id, alert(4).id]
    assert tables.count_alerts() == 4
    assert tables.count_alerts(AlertStatus.PENDING, dataset="sale_events") == 2
    assert tables.count_alerts(source_file="inbox/sale_events/b.json") == 1
    assert tables.count_alerts(AlertStatus.FAILED) == 0


def test_get_alerts_in_the_order_given(tables: Tables) -> None:
    tables.add_alerts([alert(1), alert(2)])
    got = tables.get_alerts([alert(2).id, "nope@log", alert(1).id, alert(2).id])
    assert got == [alert(2), alert(1)]
    assert tables.get_alerts([]) == []


def test_due_alerts(tables: Tables) -> None:
    now = T0 + timedelta(hours=1)
    tables.add_alerts([alert(n) for n in range(1, 8)])
    states = {
        1: (AlertStatus.PENDING, None),  # never tried: due
        2: (AlertStatus.PENDING, now + timedelta(seconds=1)),  # backing off
        3: (AlertStatus.PENDING, now),  # due exactly now
        4: (AlertStatus.SENDING, now - timedelta(microseconds=1)),  # its sender died
        5: (AlertStatus.SENDING, now + timedelta(seconds=30)),  # in flight
        6: (AlertStatus.SENT, None),
        7: (AlertStatus.FAILED, None),
    }
    for n, (status, when) in states.items():
        assert tables.update_alert(replace(alert(n), status=status, next_attempt_at=when))
    assert ids(tables.due_alerts(now, limit=10)) == [alert(n).id for n in (1, 3, 4)]
    assert ids(tables.due_alerts(now, limit=2)) == [alert(n).id for n in (1, 3)]
    later = now + timedelta(minutes=1)
    assert ids(tables.due_alerts(later, limit=10)) == [alert(n).id for n in (1, 2, 3, 4, 5)]


def test_update_round_trips_every_delivery_field(tables: Tables) -> None:
    tables.add_alerts([alert(1)])
    failed = replace(
        alert(1),
        status=AlertStatus.PENDING,
        attempts=2,
        error="webhook: HTTP 500",
        next_attempt_at=T0 + timedelta(seconds=3.25),
    )
    assert tables.update_alert(failed)
    assert tables.get_alerts([failed.id]) == [failed]
    sent = replace(failed, status=AlertStatus.SENT, error=None, next_attempt_at=None, sent_at=T0)
    assert tables.update_alert(sent)
    assert tables.get_alerts([failed.id]) == [sent]
    assert not tables.update_alert(alert(9))  # unknown id: nothing written
    assert tables.get_alerts([alert(9).id]) == []


def test_conditional_update_is_compare_and_set_on_status_and_attempts(tables: Tables) -> None:
    tables.add_alerts([alert(1)])
    (fresh,) = tables.get_alerts([alert(1).id])
    lease = T0 + timedelta(minutes=1)
    claimed = replace(fresh, status=AlertStatus.SENDING, attempts=1, next_attempt_at=lease)
    assert tables.update_alert(claimed, expect=fresh)
    # a second process that read the same row loses
    rival = replace(fresh, status=AlertStatus.SENDING, attempts=1, next_attempt_at=lease)
    assert not tables.update_alert(rival, expect=fresh)
    # settling needs the claim it made
    sent = replace(claimed, status=AlertStatus.SENT, sent_at=T0, next_attempt_at=None)
    assert not tables.update_alert(sent, expect=replace(claimed, attempts=7))
    assert not tables.update_alert(sent, expect=replace(claimed, status=AlertStatus.PENDING))
    assert tables.get_alerts([fresh.id]) == [claimed]
    assert tables.update_alert(sent, expect=claimed)
    assert tables.get_alerts([fresh.id]) == [sent]

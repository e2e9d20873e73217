"""The pipeline's decisions, on the in-memory backend."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from salesflow.config import Settings
from salesflow.models import FileStatus, LetterStatus
from salesflow.ops import summaries as summary
from salesflow.ops.audit import audit
from salesflow.pipeline.inbox import ingest
from salesflow.pipeline.steps import claim, load, process_file, recover
from salesflow.ports import Backend
from tests.fixtures.memory import MemoryStore, memory_backend
from tests.fixtures.thelook import ITEMS_CSV, ITEMS_HEADER, ORDERS_CSV, PRODUCTS_CSV

SEED_002 = {
    "orders": [
        {
            "contact-info": {"name": "Foo Bar", "email": "foobar@test.com"},
            "order-info": {"OrderId": "1", "item-id": "101", "item-desc": "Item One", "qty": "1"},
        },
        {"order-info": {"orderId": "2", "item-id": "102", "item-desc": "Item Two", "qty": "2"}},
    ]
}
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def backend() -> Backend:
    return memory_backend()


def _put(backend: Backend, key: str, body: str | bytes) -> str:
    backend.store.put_bytes(key, body.encode() if isinstance(body, str) else body)
    return key


def _objects(backend: Backend) -> list[str]:
    store = backend.store
    assert isinstance(store, MemoryStore)
    return sorted(store.objects)


def test_seed_002_example_stores_one_and_dead_letters_the_other(
    backend: Backend, settings: Settings
) -> None:
    key = _put(backend, "inbox/orders_json/mock.json", json.dumps(SEED_002))
    state = process_file(backend, settings, key, now=NOW)
    assert (state.status, state.rows_in, state.valid, state.rejected) == ("SUCCESS", 2, 1, 1)
    stored = backend.records.read("orders_json")
    assert stored.get_column("_key").to_list() == ["1"]
    [letter] = backend.letters.find()
    assert letter.record == 2 and letter.rules == ["presence.contact_info"]
    assert (letter.id, letter.seq) == (f"{state.seq}:2", state.seq)
    assert [e.event for e in letter.history] == ["rejected"]
    assert letter.raw["order-info"]["orderId"] == "2"
    assert f"processed/year=2024/month=06/orders_json/{state.seq:012d}-mock.json" in _objects(
        backend
    )
    assert not backend.store.exists(key)
    record = backend.tables.get_file(state.seq)
    assert record is not None and record.status == FileStatus.SUCCESS
    report = json.loads(backend.store.get_bytes(state.report_key or ""))
    assert report["rows_in"] == 2 and report["rules"] == {"presence.contact_info": 1}


def test_same_content_under_another_key_is_duplicate_and_changes_nothing(
    backend: Backend, settings: Settings
) -> None:
    process_file(backend, settings, _put(backend, "inbox/orders_json/a.json", json.dumps(SEED_002)))
    letters = backend.letters.count()
    state = process_file(
        backend, settings, _put(backend, "inbox/orders_json/b.json", json.dumps(SEED_002))
    )
    assert state.status == "DUPLICATE"
    assert backend.letters.count() == letters
    assert backend.lake.rows_by_seq("orders_json") == {1: 1}
    assert backend.store.exists(state.archive_key or "")
    assert audit(backend).ok


def test_corrected_record_later_replaces_the_old_one(backend: Backend, settings: Settings) -> None:
    first = {"orders": [SEED_002["orders"][0]]}
    fixed = json.loads(json.dumps(first))
    fixed["orders"][0]["order-info"]["qty"] = "5"
    process_file(backend, settings, _put(backend, "inbox/orders_json/a.json", json.dumps(first)))
    process_file(backend, settings, _put(backend, "inbox/orders_json/a.json", json.dumps(fixed)))
    stored = backend.records.read("orders_json")
    assert stored.height == 1 and stored.get_column("qty").to_list() == [5]
    # the second version under the same key keeps its own lineage row and archive
    rows = backend.tables.list_files()
    assert [f.key for f in rows] == ["inbox/orders_json/a.json"] * 2
    assert len({f.seq for f in rows}) == 2 and len({f.archive_key for f in rows}) == 2
    assert audit(backend).ok


def test_unreadable_file_fails_into_failed_with_a_clear_error(
    backend: Backend, settings: Settings
) -> None:
    key = _put(backend, "inbox/orders_json/bad.json", b'{"orders": [ {"order-info": ')
    state = process_file(backend, settings, key, now=NOW)
    assert state.status == "FAILED"
    assert "bad.json" in (state.error or "")
    assert f"failed/year=2024/month=06/orders_json/{state.seq:012d}-bad.json" in _objects(backend)
    assert audit(backend).ok


def test_unknown_dataset_fails_without_crashing(backend: Backend, settings: Settings) -> None:
    key = _put(backend, "inbox/mystery.bin", b"\x00\x01\x02 binary")
    state = process_file(backend, settings, key, now=NOW)
    assert state.status == "FAILED" and "not text" in (state.error or "")
    assert backend.store.exists(state.archive_key or "")


def test_crash_after_load_is_redone_without_duplicates(
    backend: Backend, settings: Settings
) -> None:
    key = _put(backend, "inbox/orders_json/a.json", json.dumps(SEED_002))
    state = claim(backend, settings, key)
    load(backend, settings, state)  # ... and the process dies here
    [redone] = recover(backend, settings)
    assert redone.status == "SUCCESS" and redone.seq == state.seq
    assert backend.lake.rows_by_seq("orders_json") == {state.seq: 1}
    assert backend.letters.count() == 1
    record = backend.tables.get_file(state.seq)
    assert record is not None and record.attempts == 2
    assert audit(backend).ok


def test_thelook_kpis_follow_the_definitions(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    paths = []
    for name, body in (
        ("items.csv", ITEMS_CSV),
        ("products.csv", PRODUCTS_CSV),
        ("orders.csv", ORDERS_CSV),
    ):
        (tmp_path / name).write_text(body)
        paths.append(tmp_path / name)
    states = ingest(backend, settings, paths)
    assert [s.dataset for s in states] == ["products", "orders", "order_items"]
    assert all(s.status == "SUCCESS" for s in states)
    kpis = summary.kpis(backend).to_dicts()
    day1, day2 = kpis
    assert day1["day"] == date(2024, 3, 1)
    assert (day1["items"], day1["revenue"], day1["orders"], day1["returned"]) == (3, 35.0, 2, 1)
    assert day1["avg_basket"] == pytest.approx(17.5)
    assert day1["return_rate"] == round(1 / 3, 4)  # ratios are shown to 4 places
    assert (day2["items"], day2["revenue"], day2["orders"]) == (2, 500.0, 1)
    cats = summary.kpis(backend, by="category").filter(pl.col("day") == date(2024, 3, 1))
    assert dict(zip(cats["category"], cats["revenue"], strict=True)) == {
        "Jeans": 20.0,
        "Tops": 15.0,
    }
    # the 500.00 item is a high-value sale: one alert per sink, exactly once
    assert [a.record_key for a in backend.tables.list_alerts()] == ["1004"]
    assert audit(backend).ok


def test_dangling_product_is_rejected_then_redriven_once_the_product_exists(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    from salesflow.ops.dlq import redrive

    for name, body in (("products.csv", PRODUCTS_CSV), ("orders.csv", ORDERS_CSV)):
        (tmp_path / name).write_text(body)
    ingest(backend, settings, [tmp_path / "products.csv", tmp_path / "orders.csv"])
    (tmp_path / "items.csv").write_text(
        ITEMS_HEADER + "2000,10,100,9,1,Complete,2024-03-01 10:00:00 UTC,,,,30.0\n"
    )
    [state] = ingest(backend, settings, [tmp_path / "items.csv"])
    assert (state.valid, state.rejected) == (0, 1)
    [letter] = backend.letters.find()
    assert letter.rules == ["ref.product_id"]
    extra = PRODUCTS_CSV.splitlines()[0] + "\n9,5.0,Hats,Cap,Acme,30.0,Men,SKU9,1\n"
    (tmp_path / "more.csv").write_text(extra)
    ingest(backend, settings, [tmp_path / "more.csv"])
    result = redrive(backend, settings, [(letter.id, letter.raw)])
    assert (result.redriven, result.still_failing) == (1, 0)
    [after] = backend.letters.get([letter.id])
    assert after.status == LetterStatus.REDRIVEN
    assert [(e.event, e.run) for e in after.history] == [
        ("rejected", letter.seq),
        ("redriven", result.files[0].seq),
    ]
    assert "2000" in backend.records.read("order_items").get_column("_key").to_list()
    assert audit(backend).ok


def test_moving_a_record_to_another_day_refreshes_both_days(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    for name, body in (
        ("products.csv", PRODUCTS_CSV),
        ("orders.csv", ORDERS_CSV),
        ("i.csv", ITEMS_CSV),
    ):
        (tmp_path / name).write_text(body)
    ingest(backend, settings, [tmp_path / n for n in ("products.csv", "orders.csv", "i.csv")])
    moved = ITEMS_HEADER + "1004,12,102,2,5,Shipped,2024-03-01 09:00:00 UTC,,,,500.0\n"
    (tmp_path / "fix.csv").write_text(moved)
    ingest(backend, settings, [tmp_path / "fix.csv"])
    by_day = {r["day"]: r for r in summary.kpis(backend).to_dicts()}
    assert by_day[date(2024, 3, 2)]["items"] == 1
    assert by_day[date(2024, 3, 1)]["items"] == 4
    assert audit(backend).ok


def test_same_file_sent_again_to_the_same_key_is_duplicate(
    backend: Backend, settings: Settings
) -> None:
    key = "inbox/orders_json/a.json"
    first = process_file(backend, settings, _put(backend, key, json.dumps(SEED_002)))
    again = process_file(backend, settings, _put(backend, key, json.dumps(SEED_002)))
    assert (first.status, again.status) == ("SUCCESS", "DUPLICATE")
    assert again.seq != first.seq and again.archive_key != first.archive_key
    assert not backend.store.exists(key)
    assert backend.lake.rows_by_seq("orders_json") == {first.seq: 1}
    assert audit(backend).ok


def test_a_missing_object_fails_without_a_lineage_row(backend: Backend, settings: Settings) -> None:
    state = process_file(backend, settings, "inbox/orders_json/gone.json")
    assert state.status == "FAILED" and "not in the bucket" in (state.error or "")
    assert backend.tables.list_files() == []


def test_publish_without_refresh_settles_the_file_and_leaves_the_kpis_to_its_caller(
    backend: Backend, settings: Settings
) -> None:
    """The AWS KPI task refreshes a stage's KPIs once, then publishes each file with
    ``refresh=False``: the file is settled and archived, its letters sent, and its totals
    delta applied (exactly once: totals are never recomputed by the caller); recomputing
    them from the lake gives the same."""
    from salesflow.kpis import TOTALS
    from salesflow.kpis.refresh import refresh_aggregates
    from salesflow.pipeline.steps import commit, publish

    sale = (
        '{"sale_id": "s-%d", "product": "Mug", "price": 5, "quantity": %d,'
        ' "timestamp": "2026-01-0%dT10:00:00Z"}\n'
    )
    states = []
    for n in (1, 2):
        key = _put(backend, f"inbox/sale_events/{n}.jsonl", sale % (n, n, n) + "{broken\n")
        state = commit(backend, settings, load(backend, settings, claim(backend, settings, key)))
        states.append(publish(backend, settings, state, refresh=False))
    for state in states:
        record = backend.tables.get_file(state.seq)
        assert record is not None and record.settled and record.status == FileStatus.SUCCESS
        assert record.archive_key and backend.store.exists(record.archive_key)
    assert len(backend.letters.find()) == 2
    by_delta = backend.tables.read_aggregates(TOTALS).filter(pl.col("scope") == "sale_events.day")
    assert sorted(by_delta.get_column("total_amount").to_list()) == [5.0, 10.0]
    for state in states:  # published again (a redo): nothing moves twice
        publish(backend, settings, state, refresh=False)
    days = sorted({d for s in states for d in s.day_dates})
    refresh_aggregates(backend.records, backend.tables, "sale_events", days)
    totals = backend.tables.read_aggregates(TOTALS).filter(pl.col("scope") == "sale_events.day")
    assert totals.sort("id").equals(by_delta.sort("id"))


def _orders(n_bad: int, n_good: int) -> str:
    good = SEED_002["orders"][0]
    bad = SEED_002["orders"][1]
    orders = [
        {**bad, "order-info": {**bad["order-info"], "orderId": f"b{i}"}} for i in range(n_bad)
    ] + [{**good, "order-info": {**good["order-info"], "OrderId": f"g{i}"}} for i in range(n_good)]
    return json.dumps({"orders": orders})


def test_key_manifests_are_numbered_without_gaps_and_a_half_done_drop_is_finished(
    backend: Backend, settings: Settings
) -> None:
    """A chunk with no valid record writes no manifest, yet the parts are numbered 0, 1, 2...,
    so part 0 exists whenever any part does; deleting from the last part down keeps it so
    after a crash, and the redo's one probe of part 0 finds the leftovers and drops them."""
    key = _put(backend, "inbox/orders_json/a.json", _orders(2, 4))
    state = claim(backend, settings.model_copy(update={"chunk_rows": 1}), key)
    load(backend, settings.model_copy(update={"chunk_rows": 1}), state)  # ... and dies here
    prefix = f"reports/keys/orders_json/{state.seq:012d}-"
    parts = [k for k in _objects(backend) if k.startswith(prefix)]
    assert parts == [f"{prefix}{n:05d}.parquet" for n in range(4)]
    backend.store.delete(parts[-1])  # a drop that died after its first delete
    [redone] = recover(backend, settings)  # one chunk now: one part
    assert redone.status == "SUCCESS" and redone.valid == 4 and redone.rejected == 2
    assert [k for k in _objects(backend) if k.startswith(prefix)] == parts[:1]
    assert audit(backend).ok

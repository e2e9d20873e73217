"""``ops.replay`` on the local backend: a file the pipeline failed for a cause outside its
bytes (here a store outage, recorded the way the pipeline records any failure) is replayed
once the cause is gone, and its records land."""

from __future__ import annotations

import pytest

from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.errors import TerminalError
from salesflow.models import FileStatus
from salesflow.ops.replay import replay
from salesflow.pipeline.steps import claim, fail

ORDERS = (
    "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
    "P-1,7,Lamp,1,Ann Lee,ann@example.com\n"
    "P-2,8,Mug,2,Bo Chan,bo@example.com\n"
)


def test_a_failed_file_is_replayed_as_a_new_version(settings: Settings) -> None:
    backend = build_backend(settings)
    try:
        key = "inbox/orders_json/orders.csv"
        backend.store.put_bytes(key, ORDERS.encode())
        failed = fail(backend, settings, claim(backend, settings, key), f"{key}: store down")
        assert failed.status == "FAILED" and failed.archive_key
        assert not backend.store.exists(key)

        state = replay(backend, settings, failed.archive_key)
        assert (state.status, state.valid, state.seq > failed.seq) == ("SUCCESS", 2, True)
        stored = sorted(backend.records.read("orders_json").get_column("order_id").to_list())
        assert stored == ["P-1", "P-2"]
        assert backend.store.exists(failed.archive_key)  # the failed version keeps its archive
        versions = backend.tables.list_files(key=key)
        assert [r.status for r in versions] == [FileStatus.FAILED, FileStatus.SUCCESS]

        with pytest.raises(TerminalError, match="latest version is SUCCESS"):
            replay(backend, settings, key)
    finally:
        backend.close()


def test_replay_waits_for_a_newer_version_in_the_inbox(settings: Settings) -> None:
    backend = build_backend(settings)
    try:
        key = "inbox/orders_json/orders.csv"
        backend.store.put_bytes(key, ORDERS.encode())
        failed = fail(backend, settings, claim(backend, settings, key), "outage")
        backend.store.put_bytes(key, ORDERS.encode())  # a newer upload waits in the inbox
        with pytest.raises(TerminalError, match="is in the inbox already"):
            replay(backend, settings, failed.archive_key or "")
    finally:
        backend.close()

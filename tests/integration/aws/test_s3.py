"""S3ObjectStore against the emulator: layout, move, key checks, URL-encoded event keys."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from salesflow.adapters.aws.s3 import S3ObjectStore, decode_event_key
from salesflow.errors import InvalidKeyError, TerminalError
from salesflow.ports import ObjectStore
from tests.fixtures.moto_server import MotoServer

pytestmark = pytest.mark.aws


@pytest.fixture
def store(aws_env: MotoServer) -> S3ObjectStore:
    client = boto3.client("s3")
    client.create_bucket(Bucket="lake")
    return S3ObjectStore(client, "lake")


def test_is_an_object_store(store: S3ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_list_exists_delete(store: S3ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("inbox/orders_json/a.json", b"[]")
    source = tmp_path / "b.csv"
    source.write_bytes(b"x,y\n1,2\n")
    store.put_file("inbox/online_retail/b.csv", source)
    store.put_bytes("reports/validation/r.json", b"{}")
    assert store.get_bytes("inbox/online_retail/b.csv") == b"x,y\n1,2\n"
    assert [o.key for o in store.list("inbox/")] == [
        "inbox/online_retail/b.csv",
        "inbox/orders_json/a.json",
    ]
    assert [o.size for o in store.list("inbox/orders_json/")] == [2]
    assert len(store.list("")) == 3
    assert store.exists("inbox/orders_json/a.json")
    store.delete("inbox/orders_json/a.json")
    store.delete("inbox/orders_json/a.json")  # a missing key is not an error
    assert not store.exists("inbox/orders_json/a.json")
    with pytest.raises(FileNotFoundError, match="inbox/orders_json/a.json"):
        store.get_bytes("inbox/orders_json/a.json")


def test_fetch_downloads_to_a_temporary_file(store: S3ObjectStore) -> None:
    store.put_bytes("inbox/orders_json/a.json", b'{"orders": []}')
    with store.fetch("inbox/orders_json/a.json") as path:
        assert path.suffix == ".json"
        assert path.read_bytes() == b'{"orders": []}'
    assert not path.exists()
    with pytest.raises(FileNotFoundError), store.fetch("inbox/missing.json"):
        pass


def test_move_is_copy_then_delete_and_idempotent(store: S3ObjectStore) -> None:
    src = "inbox/orders_json/a.json"
    dst = "processed/year=2024/month=03/orders_json/a.json"
    store.put_bytes(src, b"[1]")
    store.move(src, dst)
    assert not store.exists(src)
    assert store.get_bytes(dst) == b"[1]"
    store.move(src, dst)  # a retried archive step finds the work done
    assert store.get_bytes(dst) == b"[1]"
    with pytest.raises(FileNotFoundError, match="absent"):
        store.move("inbox/none.json", "failed/none.json")


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "inbox/../../x", "a\x00b", ""])
def test_keys_that_leave_the_bucket_are_refused_before_any_request(
    store: S3ObjectStore, key: str
) -> None:
    with pytest.raises(InvalidKeyError):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKeyError):
        store.move("inbox/a.json", key)


def test_url_encoded_event_keys_are_decoded_and_usable(store: S3ObjectStore) -> None:
    key = "inbox/orders_json/March sales (1)+€.json"
    store.put_bytes(key, b"[]")
    encoded = "inbox/orders_json/March+sales+%281%29%2B%E2%82%AC.json"
    assert decode_event_key(encoded) == key
    assert store.exists(decode_event_key(encoded))


def test_sdk_errors_become_terminal_errors(aws_env: MotoServer) -> None:
    store = S3ObjectStore(boto3.client("s3"), "no-such-bucket")
    with pytest.raises(TerminalError, match="no-such-bucket") as info:
        store.put_bytes("inbox/a.json", b"x")
    assert info.value.__cause__ is not None
    with pytest.raises(TerminalError):
        store.list("inbox/")
    with pytest.raises(TerminalError, match="NoSuchBucket"):
        store.get_bytes("inbox/a.json")


def test_an_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    from botocore.config import Config

    from salesflow.errors import TransientError
    from tests.fixtures.moto_server import free_port

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    store = S3ObjectStore(client, "lake")
    for action in (
        lambda: store.get_bytes("inbox/a.json"),
        lambda: store.exists("inbox/a.json"),
        lambda: store.put_file("inbox/a.json", tmp_path / "missing"),
        lambda: store.delete("inbox/a.json"),
    ):
        with pytest.raises((TransientError, FileNotFoundError)):
            action()
    with pytest.raises(TransientError), store.fetch("inbox/a.json"):
        pass

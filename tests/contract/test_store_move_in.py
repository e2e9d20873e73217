"""``ObjectStore.put_file(move=True)``, against every adapter: the object holds the file's
bytes and the local file is gone; the local store renames it in (no copy of a big fragment)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from salesflow.adapters.aws.s3 import S3ObjectStore
from salesflow.adapters.local.store import LocalObjectStore
from salesflow.adapters.memory.store import MemoryStore
from salesflow.ports import ObjectStore


def _s3(_: Path) -> ObjectStore:
    client = boto3.client("s3")
    client.create_bucket(Bucket="data")
    return S3ObjectStore(client, "data")


STORES: dict[str, Callable[[Path], ObjectStore]] = {
    "memory": lambda _: MemoryStore(),
    "local": lambda folder: LocalObjectStore(folder / "bucket"),
    "s3": _s3,
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "s3":
        request.getfixturevalue("aws_env")
    return STORES[request.param](tmp_path)


def test_put_file_moves_the_file_in(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "work" / "fragment.parquet"
    source.parent.mkdir()
    source.write_bytes(b"PAR1 data PAR1")
    store.put_file("lake/sales/year=2024/month=01/part-1.parquet", source, move=True)
    assert not source.exists()
    assert store.get_bytes("lake/sales/year=2024/month=01/part-1.parquet") == b"PAR1 data PAR1"


def test_put_file_without_move_keeps_the_file(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "kept.csv"
    source.write_bytes(b"a,b\n")
    store.put_file("inbox/kept.csv", source)
    assert source.read_bytes() == b"a,b\n" and store.get_bytes("inbox/kept.csv") == b"a,b\n"


def test_local_store_renames_instead_of_copying(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "bucket")
    source = tmp_path / "work.parquet"
    source.write_bytes(b"x" * 1024)
    inode = os.stat(source).st_ino
    store.put_file("lake/sales/part.parquet", source, move=True)
    assert os.stat(store.path("lake/sales/part.parquet")).st_ino == inode


def test_memory_store_versions_tell_uploads_apart() -> None:
    store = MemoryStore()
    store.put_bytes("inbox/a.csv", b"1")
    first = store.list("inbox/")[0].version
    store.put_bytes("inbox/a.csv", b"1")
    assert store.list("inbox/")[0].version not in ("", first)

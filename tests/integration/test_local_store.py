"""LocalObjectStore on a real folder: keys cannot escape, writes are atomic, moves idempotent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from salesflow.adapters.local import files
from salesflow.adapters.local.store import LocalObjectStore
from salesflow.errors import FileLevelError, InvalidKeyError
from salesflow.ports import ObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "bucket")


def test_is_an_object_store(store: LocalObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.root.is_dir()


def test_round_trip(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_bytes("inbox/orders_json/a.json", b"[1]")
    src = tmp_path / "local.csv"
    src.write_bytes(b"id\n1\n")
    store.put_file("inbox/products/p.csv", src)
    assert store.get_bytes("inbox/orders_json/a.json") == b"[1]"
    assert store.exists("inbox/products/p.csv") and not store.exists("inbox/products/q.csv")
    with store.fetch("inbox/products/p.csv") as path:
        assert path == store.root / "inbox/products/p.csv"
        assert path.read_bytes() == b"id\n1\n"


def test_missing_objects(store: LocalObjectStore) -> None:
    with pytest.raises(FileNotFoundError, match="inbox/x"):
        store.get_bytes("inbox/x")
    with pytest.raises(FileNotFoundError), store.fetch("inbox/x"):
        pass  # pragma: no cover - never entered
    store.delete("inbox/x")  # deleting a missing key is fine
    assert not store.exists("inbox/x")


@pytest.mark.parametrize(
    "key",
    ["../x", "/etc/passwd", "a/../../b", "inbox/\x00x", "", "inbox/./x", "a\\..\\b", "C:/x"],
)
def test_traversal_is_refused(store: LocalObjectStore, key: str) -> None:
    for op in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.move(key, "inbox/ok"),
        lambda: store.move("inbox/ok", key),
    ):
        with pytest.raises(InvalidKeyError):
            op()
    assert list(store.root.parent.iterdir()) == [store.root]


def test_symlink_leading_outside_is_refused(store: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s3cret")
    (store.root / "inbox").mkdir()
    (store.root / "inbox" / "link").symlink_to(outside, target_is_directory=True)
    (store.root / "inbox" / "file-link").symlink_to(outside / "secret.txt")
    with pytest.raises(InvalidKeyError, match="outside the bucket"):
        store.get_bytes("inbox/link/secret.txt")
    with pytest.raises(FileLevelError, match="symbolic link"):
        store.get_bytes("inbox/file-link")
    with pytest.raises(InvalidKeyError):
        store.put_bytes("inbox/link/new.txt", b"x")
    assert not (outside / "new.txt").exists()
    # Listing never enters a linked folder; a link to a file is listed (so it can be failed)
    # but its content is never read.
    assert [i.key for i in store.list("inbox/")] == ["inbox/file-link"]
    with pytest.raises(FileLevelError, match="symbolic link"), store.fetch("inbox/file-link"):
        pass


def test_moving_a_link_moves_the_link_and_never_its_target(store: LocalObjectStore) -> None:
    store.put_bytes("processed/a.csv", b"archived")
    (store.root / "inbox").mkdir()
    (store.root / "inbox" / "a.csv").symlink_to(store.root / "processed" / "a.csv")
    store.move("inbox/a.csv", "failed/a.csv")
    assert (store.root / "failed" / "a.csv").is_symlink()
    assert store.get_bytes("processed/a.csv") == b"archived"


def test_a_move_never_replaces_an_existing_object(store: LocalObjectStore) -> None:
    store.put_bytes("processed/a.csv", b"first")
    store.put_bytes("inbox/a.csv", b"second")
    with pytest.raises(FileExistsError):
        store.move("inbox/a.csv", "processed/a.csv")
    assert store.get_bytes("processed/a.csv") == b"first"
    assert store.get_bytes("inbox/a.csv") == b"second"


def test_version_tokens_change_with_every_write(store: LocalObjectStore) -> None:
    store.put_bytes("inbox/a.csv", b"one")
    first = store.stat("inbox/a.csv")
    store.put_bytes("inbox/a.csv", b"one")
    second = store.stat("inbox/a.csv")
    assert first is not None and second is not None and first.version != second.version
    assert store.stat("inbox/none.csv") is None
    assert [i.version for i in store.list("inbox/")] == [second.version]


def test_symlink_inside_the_bucket_is_fine(store: LocalObjectStore) -> None:
    store.put_bytes("data/real.txt", b"ok")
    (store.root / "alias").symlink_to(store.root / "data", target_is_directory=True)
    assert store.get_bytes("alias/real.txt") == b"ok"


def test_key_naming_the_bucket_itself_is_refused(store: LocalObjectStore) -> None:
    (store.root / "self").symlink_to(store.root, target_is_directory=True)
    with pytest.raises(InvalidKeyError, match="bucket itself"):
        store.put_bytes("self", b"x")


def test_put_is_atomic(store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_bytes("reports/r.json", b"old")

    def crash(path: Path) -> None:
        raise OSError("disk died while syncing")

    monkeypatch.setattr(files, "fsync_file", crash)
    with pytest.raises(OSError, match="disk died"):
        store.put_bytes("reports/r.json", b"new, half written")
    # The old object is intact and no temporary file is left behind.
    assert store.get_bytes("reports/r.json") == b"old"
    assert sorted(p.name for p in (store.root / "reports").iterdir()) == ["r.json"]


def test_list_is_sorted_and_skips_hidden_and_temp_files(store: LocalObjectStore) -> None:
    for key in ["inbox/b/2.csv", "inbox/a/1.csv", "inbox/b/1.csv", "processed/x.csv"]:
        store.put_bytes(key, b"12345")
    (store.root / "inbox" / "a" / ".hidden").write_text("x")
    files.temp_path_for(store.root / "inbox" / "a" / "3.csv").write_text("partial")
    (store.root / "inbox" / ".git").mkdir()
    (store.root / "inbox" / ".git" / "config").write_text("x")
    listed = store.list("inbox/")
    assert [o.key for o in listed] == ["inbox/a/1.csv", "inbox/b/1.csv", "inbox/b/2.csv"]
    assert all(o.size == 5 and o.modified.tzinfo is not None for o in listed)
    assert [o.key for o in store.list("inbox/b")] == ["inbox/b/1.csv", "inbox/b/2.csv"]
    assert [o.key for o in store.list("")][-1] == "processed/x.csv"
    assert store.list("nothing/here/") == []
    with pytest.raises(InvalidKeyError):
        store.list("../")


def test_move_is_idempotent(store: LocalObjectStore) -> None:
    store.put_bytes("inbox/a/f.csv", b"data")
    dst = "processed/year=2024/month=05/a/f.csv"
    store.move("inbox/a/f.csv", dst)
    assert not store.exists("inbox/a/f.csv") and store.get_bytes(dst) == b"data"
    store.move("inbox/a/f.csv", dst)  # a redo after a crash: nothing to do
    assert store.get_bytes(dst) == b"data"
    with pytest.raises(FileNotFoundError, match="no such object"):
        store.move("inbox/a/missing.csv", "processed/missing.csv")


def test_readers_in_another_process_never_see_a_partial_object(store: LocalObjectStore) -> None:
    import subprocess
    import sys

    big_a, big_b = b"a" * 4_000_000, b"b" * 4_000_000
    store.put_bytes("x/big", big_a)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\n"
            "p=sys.argv[1]; bad=0; end=time.time()+1.5\n"
            "while time.time()<end:\n"
            "    d=open(p,'rb').read()\n"
            "    bad += not (len(d)==4_000_000 and len(set(d))==1)\n"
            "print(bad)\n",
            str(store.root / "x" / "big"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for i in range(40):
        store.put_bytes("x/big", big_b if i % 2 else big_a)
    out, _ = reader.communicate(timeout=30)
    assert out.strip() == "0"
    assert os.listdir(store.root / "x") == ["big"]

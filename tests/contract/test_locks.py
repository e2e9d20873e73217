"""The ``Locks`` contract, against every adapter: exclusive between threads, re-entrant within
one, a timeout raises ``TransientError``; and for ``LocalLocks``, exclusive between processes
and released when its holder is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from salesflow.adapters.aws.locks import DynamoLocks
from salesflow.adapters.local.locks import LocalLocks, lock_file_name
from salesflow.adapters.memory.locks import MemoryLocks
from salesflow.errors import TransientError
from salesflow.ports import Locks

LOCKS: dict[str, Callable[[Path], Locks]] = {
    "memory": lambda _: MemoryLocks(),
    "local": lambda folder: LocalLocks(folder / "locks"),
}


def dynamo_locks(request: pytest.FixtureRequest, *, lease: float = 60.0) -> DynamoLocks:
    """``DynamoLocks`` on the meta table, in moto's server (over HTTP on loopback)."""
    import boto3

    from salesflow.adapters.aws.retry import Backoff
    from tests.integration.aws.tables import create_tables

    request.getfixturevalue("aws_env")
    client = boto3.client("dynamodb")
    names = create_tables(client)
    return DynamoLocks(client, names.meta, lease=lease, backoff=Backoff(sleep=lambda _s: None))


@pytest.fixture(params=[*sorted(LOCKS), pytest.param("dynamodb", marks=pytest.mark.aws)])
def locks(request: pytest.FixtureRequest, tmp_path: Path) -> Locks:
    if request.param == "dynamodb":
        return dynamo_locks(request)
    return LOCKS[request.param](tmp_path)


def test_is_a_locks_port(locks: Locks) -> None:
    assert isinstance(locks, Locks)


def test_a_held_lock_excludes_other_threads_until_released(locks: Locks) -> None:
    held, release, done = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def holder() -> None:
        with locks.hold("lake:sales"):
            order.append("first in")
            held.set()
            release.wait()
            order.append("first out")

    def waiter() -> None:
        with locks.hold("lake:sales", timeout=30):
            order.append("second in")
        done.set()

    first = threading.Thread(target=holder)
    first.start()
    held.wait()
    with pytest.raises(TransientError, match="lake:sales"):
        with locks.hold("lake:sales", timeout=0):
            pass
    with locks.hold("lake:orders", timeout=0):  # another name is free
        pass
    second = threading.Thread(target=waiter)
    second.start()
    release.set()
    first.join()
    assert done.wait(30)
    second.join()
    assert order == ["first in", "first out", "second in"]


def test_a_lock_is_reentrant_within_a_thread(locks: Locks) -> None:
    with locks.hold("lake:sales"), locks.hold("lake:sales", timeout=0):
        pass
    with locks.hold("lake:sales", timeout=0):  # and fully released afterwards
        pass


def test_a_lock_is_released_when_the_block_raises(locks: Locks) -> None:
    with pytest.raises(ValueError), locks.hold("lake:sales"):
        raise ValueError("boom")
    with locks.hold("lake:sales", timeout=0):
        pass


@pytest.mark.subprocess
def test_local_lock_excludes_another_process_and_dies_with_it(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from salesflow.adapters.local.locks import LocalLocks\n"
        "with LocalLocks(Path(sys.argv[1])).hold('lake:sales'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    locks = LocalLocks(folder)
    with pytest.raises(TransientError, match="held by another process"):
        with locks.hold("lake:sales", timeout=0.2):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    holder.stdin.close()  # type: ignore[union-attr]
    with locks.hold("lake:sales", timeout=5):
        pass
    assert (folder / lock_file_name("lake:sales")).exists()


def test_lock_file_names_are_safe_and_distinct() -> None:
    names = {lock_file_name(n) for n in ("lake:a/b", "lake:a_b", "../x", "lake:" + "z" * 300)}
    assert len(names) == 4
    assert all("/" not in n and len(n) < 120 for n in names)


@pytest.mark.aws
def test_dynamodb_lock_of_a_dead_holder_is_free_once_its_lease_ends(
    request: pytest.FixtureRequest,
) -> None:
    dead = dynamo_locks(request, lease=1.0)
    dead._acquire("lake:sales", "a-process-that-died", timeout=0)  # taken, never renewed
    alive = DynamoLocks(dead.client, dead.table, lease=1.0, backoff=dead.backoff)
    with pytest.raises(TransientError, match="lake:sales"):
        with alive.hold("lake:sales", timeout=0):
            pass
    started = time.monotonic()
    with alive.hold("lake:sales", timeout=30):
        assert time.monotonic() - started < 30


@pytest.mark.aws
def test_dynamodb_lock_is_renewed_while_held(request: pytest.FixtureRequest) -> None:
    holder = dynamo_locks(request, lease=0.6)
    other = DynamoLocks(holder.client, holder.table, lease=0.6, backoff=holder.backoff)
    with holder.hold("lake:sales"):
        time.sleep(1.5)  # the lease itself is what is tested: 2.5 leases without a gap
        with pytest.raises(TransientError, match="lake:sales"):
            with other.hold("lake:sales", timeout=0):
                pass
    with other.hold("lake:sales", timeout=0):  # released at once, not when the lease ends
        pass

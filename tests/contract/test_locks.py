"""The ``Locks`` contract, against every adapter: exclusive between threads, re-entrant within
one, a timeout raises ``TransientError``; and for ``LocalLocks``, exclusive between processes
and released when its holder is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from salesflow.adapters.local.locks import LocalLocks, lock_file_name
from salesflow.adapters.memory.locks import MemoryLocks
from salesflow.errors import TransientError
from salesflow.ports import Locks

LOCKS: dict[str, Callable[[Path], Locks]] = {
    "memory": lambda _: MemoryLocks(),
    "local": lambda folder: LocalLocks(folder / "locks"),
}


@pytest.fixture(params=sorted(LOCKS))
def locks(request: pytest.FixtureRequest, tmp_path: Path) -> Locks:
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

"""SQLite writers queue for their turn: across processes, across threads, with a bounded wait."""

import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from adapter import store
from adapter.errors import StoreUnavailable
from adapter.writer_queue import WriterQueue, pauses


@pytest.fixture
def queue(tmp_path):
    return WriterQueue(str(tmp_path / "adapter.db"), timeout_seconds=5)


def other_process_can_lock(path):
    """Try the lock file from another process without waiting."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", probe, path], timeout=30).returncode == 0


def test_a_turn_excludes_other_processes_until_it_ends(queue):
    with queue.turn() as granted:
        assert granted
        assert not other_process_can_lock(queue.path)
    assert other_process_can_lock(queue.path)


def test_threads_of_one_process_take_turns(queue):
    inside, overlaps = [], []

    def write():
        for _ in range(50):
            with queue.turn():
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.0005)
                inside.pop()

    writers = [threading.Thread(target=write) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert overlaps == []


@contextlib.contextmanager
def held_by_another_thread(enter):
    """Run `with enter():` in another thread, holding it until the block ends."""
    holding, done = threading.Event(), threading.Event()

    def hold():
        with enter():
            holding.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        yield
    finally:
        done.set()
        holder.join()


def test_a_turn_that_does_not_come_in_time_is_refused(queue):
    queue.timeout_seconds = 0.2
    with held_by_another_thread(queue.turn), queue.turn() as granted:
        assert granted is False
    with queue.turn() as granted:
        assert granted


def test_a_forked_process_takes_turns_with_its_own_lock(queue):
    """A child forked while its parent holds a turn waits for it, then gets its own turn."""
    with queue.turn():
        pid = os.fork()
        if pid == 0:
            with queue.turn() as granted:
                os._exit(0 if granted and not other_process_can_lock(queue.path) else 1)
        time.sleep(0.2)
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the child did not wait for the parent's turn"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_store_transactions_queue_and_a_late_turn_is_a_503(app):
    if store.is_postgres():
        pytest.skip("PostgreSQL has row locks; SQLite writers alone take turns")
    writer_queue = store.database.obj.writer_queue
    writer_queue.timeout_seconds = 0.2

    @contextlib.contextmanager
    def writing():
        with store.database.connection_context(), store.transaction():
            yield

    with held_by_another_thread(writing):
        assert not other_process_can_lock(writer_queue.path)
        with pytest.raises(StoreUnavailable), writing():
            pass
    with writing():
        pass


UNDER_GEVENT = r"""
from gevent import monkey

monkey.patch_all()

import json, subprocess, sys, time

import gevent

from adapter.writer_queue import WriterQueue, pauses

path, hold_seconds = sys.argv[1], float(sys.argv[2])
queue = WriterQueue(path, timeout_seconds=float(sys.argv[3]))
open(queue.path, "a").close()
holder = subprocess.Popen(
    [sys.executable, "-c",
     "import fcntl, os, sys, time\n"
     "fd = os.open(sys.argv[1], os.O_RDWR)\n"
     "fcntl.flock(fd, fcntl.LOCK_EX)\n"
     "print('held', flush=True)\n"
     "time.sleep(float(sys.argv[2]))\n",
     queue.path, str(hold_seconds)],
    stdout=subprocess.PIPE, text=True,
)
assert holder.stdout.readline().strip() == "held"
ticks, result = [], {}

def tick():
    while "granted" not in result:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)

def write():
    started = time.monotonic()
    with queue.turn() as granted:
        result["granted"], result["waited"] = granted, time.monotonic() - started

gevent.joinall([gevent.spawn(tick), gevent.spawn(write)], timeout=30)
holder.wait(30)
print(json.dumps({**result, "ticks": len(ticks)}))
"""


@pytest.mark.parametrize(
    ("hold_seconds", "timeout_seconds", "granted"),
    [(1.0, 5.0, True), (3.0, 0.5, False)],
    ids=["turn comes once the other process commits", "turn refused after the busy timeout"],
)
def test_under_gevent_other_greenlets_run_while_another_process_holds_the_turn(
    tmp_path, hold_seconds, timeout_seconds, granted
):
    pytest.importorskip("gevent")
    done = subprocess.run(
        [sys.executable, "-c", UNDER_GEVENT, str(tmp_path / "adapter.db"), str(hold_seconds),
         str(timeout_seconds)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["granted"] is granted, result
    waited = min(hold_seconds, timeout_seconds)
    assert waited - 0.2 < result["waited"] < waited + 1.0, result
    # A greenlet sleeping 10 ms at a time kept running the whole wait: a blocking flock allows one tick.
    assert result["ticks"] >= waited / 0.01 / 4, result


def test_under_gevent_the_file_lock_is_tried_every_half_millisecond_then_every_ten_after_a_long_wait():
    """Turns last a millisecond or two: tries far apart leave the lock free while this process
    sleeps (a convoy); a wait of more than 50 ms is for something long, so tries slow down."""
    schedule = list(itertools.islice(pauses(), 400))
    waited = list(itertools.accumulate(schedule))
    short = [pause for pause, total in zip(schedule, waited, strict=True) if total - pause < 0.05]
    assert short[0] == 0.0001 and max(short) == 0.0005
    assert 0.05 <= sum(short) < 0.051
    assert schedule[len(short):len(short) + 6] == [0.001, 0.002, 0.004, 0.008, 0.01, 0.01]
    assert set(schedule[len(short) + 4:]) == {0.01}

"""SQLite writers take turns here instead of in SQLite's busy handler.

SQLite lets one connection write at a time. A writer that finds the lock taken sleeps in
SQLite's busy handler for 1 to 100 ms between tries, so under load writers miss the moments
the lock is free and some wait for seconds. Here the threads of one process queue on a lock,
and the processes sharing a database file (gunicorn workers, outbox workers) on an `flock` of
a file beside it: the kernel wakes the next writer as soon as the previous one commits.

The wait stays bounded: a thread waits for its process's turn at most `timeout_seconds`, and a
process holding the file lock is inside one transaction, which SQLite's own busy timeout
bounds when something outside this queue holds the database.

Under gevent (a monkey-patched process, such as a gunicorn gevent worker) a blocking `flock`
would stop every greenlet of the worker while another process writes, so there the file lock
is tried without blocking, between short cooperative sleeps, for at most `timeout_seconds`.
"""

import contextlib
import fcntl
import os
import sys
import threading
import time
import weakref

_queues = weakref.WeakSet()

# Pauses between tries of the file lock under gevent. A turn usually lasts a millisecond or
# two, so while a wait is that short the tries stay 0.1-0.5 ms apart: a longer pause leaves the
# lock free while this process sleeps, and the other process's writers, which do not sleep for
# it, take turn after turn (a convoy: with pauses growing to 10 ms, the p99 of the webhook mix
# was 45 ms instead of 17). A wait that goes on is for something long (a backup, a migration),
# and the tries slow down to one every 10 ms, so it costs little CPU.
FIRST_RETRY_SECONDS = 0.0001
SHORT_RETRY_SECONDS = 0.0005
SHORT_WAIT_SECONDS = 0.05
LONGEST_RETRY_SECONDS = 0.01


def pauses():
    """Yield the pauses between tries of the file lock, in order (see above)."""
    waited, pause = 0.0, FIRST_RETRY_SECONDS
    while True:
        yield pause
        waited += pause
        longest = SHORT_RETRY_SECONDS if waited < SHORT_WAIT_SECONDS else LONGEST_RETRY_SECONDS
        pause = min(pause * 2, longest)


def _gevent_sleep():
    """Return gevent's sleep if gevent has patched this process's threads, else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return None
    import gevent

    return gevent.sleep


class WriterQueue:
    """One write transaction at a time per database file, across threads and processes."""

    def __init__(self, database_path, timeout_seconds):
        self.path = database_path + ".writelock"
        self.timeout_seconds = timeout_seconds
        self._start_afresh()
        _queues.add(self)

    def _start_afresh(self):
        # Also run in a forked child, which inherits its parent's lock (perhaps held by a thread
        # that does not exist in the child) and open file, whose flock the parent may hold.
        self._threads = threading.Lock()
        self._fd = None

    def _open(self):
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            weakref.finalize(self, os.close, self._fd)
        return self._fd

    def _lock_file(self, deadline):
        """Take the file lock; return False if it did not come by `deadline` (gevent only)."""
        fd = self._open()
        sleep = _gevent_sleep()
        if sleep is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        for pause in pauses():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
            sleep(pause)

    @contextlib.contextmanager
    def turn(self):
        """Wait for this writer's turn; yield False if the process's turn did not come in time."""
        deadline = time.monotonic() + self.timeout_seconds
        threads = self._threads
        if not threads.acquire(timeout=self.timeout_seconds):
            yield False
            return
        try:
            if not self._lock_file(deadline):
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            threads.release()


def _after_fork_in_child():
    for queue in list(_queues):
        queue._start_afresh()


os.register_at_fork(after_in_child=_after_fork_in_child)

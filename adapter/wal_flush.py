"""SQLite commits made durable by one flush of the write-ahead log shared by every writer waiting.

SPEC 1: a 2xx is sent only once the change is on stable storage. `synchronous = full` would
flush the WAL inside every COMMIT, while the writer still holds the database's write lock, so
each writer pays a whole flush and the next one waits for it. Here SQLite runs with
`synchronous = normal` (a COMMIT writes its frames to the WAL file with write(), without
flushing them) and a transaction returns only after an `fsync` of the WAL file, and of its
directory, that *started after its COMMIT*: the frames of every transaction committed before
that flush, from any thread or process, are on disk when it ends. The writer lock is free while
the flush runs, so the writers that commit meanwhile share the next flush (group commit).

Frames that a checkpoint has already copied into the database file are durable without this
flush: with `synchronous = normal` SQLite flushes the WAL before a checkpoint and the database
file after a complete one, and removes the WAL file only after that. So a WAL file that does
not exist beside an existing database was checkpointed and removed. The paths are those SQLite
uses: the database file's real path (SQLite follows symbolic links), with `-wal` appended.

A flush that fails leaves committed, visible changes of unknown durability, and the kernel may
have given up on the pages it could not write (a later flush would then succeed without them).
As PostgreSQL does, the store stops acknowledging: the failure is written to a marker file beside
the database, and every later flush, in every process, fails while the marker is there. The
operator checks the disk and the data, then removes the marker.

Under gevent the flush runs in a thread of its own, so the worker's other requests go on.
"""

import os
import sys
import threading
from datetime import UTC, datetime


class FlushFailed(OSError):
    """The write-ahead log could not be flushed: nothing more is acknowledged until it is looked at."""


def _fsync_path(path):
    """Flush a file or directory by path; return False if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


class WalFlush:
    """Wait until the transactions this process committed are on disk, one flush for many."""

    def __init__(self, database_path):
        self.database = os.path.realpath(database_path)
        self.wal = self.database + "-wal"
        self.directory = os.path.dirname(self.database)
        self.marker = self.database + ".flush-failed"
        self._here = (None, None)  # (pid, _Flushes) of the process that made it

    def after_commit(self):
        """Return once a flush that started after this call's commit has ended."""
        pid, flushes = self._here
        if pid != os.getpid():
            # Made on first use in each process: a forked worker neither shares its parent's
            # lock nor keeps one made before gevent patched it (that would block every greenlet).
            flushes = _Flushes(self)
            self._here = (os.getpid(), flushes)
        flushes.wait_for_one_after_commit()

    def flush(self):
        """Flush the WAL file and its directory; raise FlushFailed if that fails or has failed."""
        if os.path.exists(self.marker):
            raise FlushFailed(f"an earlier flush of {self.wal} failed (see {self.marker}); check the "
                              "disk and the data, then remove the marker")
        try:
            if not _fsync_path(self.wal) and not os.path.exists(self.database):
                raise FileNotFoundError(f"{self.database} is gone")
            _fsync_path(self.directory)
        except OSError as exc:
            self._mark_failed(exc)
            raise FlushFailed(f"flushing {self.wal} failed: {exc}") from exc

    def _mark_failed(self, exc):
        try:
            with open(self.marker, "a", encoding="utf-8") as file:
                file.write(f"{datetime.now(UTC).isoformat()} pid {os.getpid()}: {exc}\n")
        except OSError:
            pass  # the disk may refuse this too; this process's own flush still failed


class _Flushes:
    """One process's flushes: who has committed, what the last finished flush covers."""

    def __init__(self, wal):
        self.wal = wal
        self.state = threading.Condition()
        self.committed = 0  # commits that asked to be made durable, numbered in order
        self.flushed = 0  # how many of them a finished flush covers
        self.flushing = False
        self.pool = _flush_thread()

    def wait_for_one_after_commit(self):
        with self.state:
            self.committed += 1
            ticket = self.committed
            while self.flushed < ticket:
                if self.flushing:
                    self.state.wait()
                    continue
                self.flushing = True
                covered, flushed = self.committed, False
                self.state.release()
                try:
                    if self.pool is None:
                        self.wal.flush()
                    else:
                        self.pool.apply(self.wal.flush)
                    flushed = True
                finally:
                    self.state.acquire()
                    self.flushing = False
                    if flushed:
                        self.flushed = max(self.flushed, covered)
                    self.state.notify_all()


def _flush_thread():
    """Return a one-thread gevent pool if gevent has patched this process, else None.

    Not the hub's shared pool: its threads also resolve host names, and a slow lookup must not
    hold up acknowledgements.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return None
    from gevent.threadpool import ThreadPool

    return ThreadPool(1)

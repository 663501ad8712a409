"""SQLite commits made durable by one flush of the write-ahead log shared by every writer waiting.

SPEC 1: a 2xx is sent only once the change is on stable storage. `synchronous = full` would
flush the WAL inside every COMMIT, while the writer still holds the database's write lock, so
each writer pays a whole flush and the next one waits for it. Here SQLite runs with
`synchronous = normal` (a COMMIT writes its frames to the WAL without flushing them) and a
transaction returns only after an `fsync` of the WAL file that *started after its COMMIT*:
the frames of every transaction committed before that flush, from any thread or process, are
on disk when it ends. The writer lock is free while the flush runs, so the writers that
commit meanwhile share the next flush (group commit).

Frames that a checkpoint has already copied into the database file are durable without this
flush: with `synchronous = normal` SQLite flushes the WAL before a checkpoint and the
database file after it. A WAL file that no longer exists was checkpointed and removed.

Under gevent the flush runs in gevent's thread pool, so the worker's other requests go on.
"""

import os
import sys
import threading


def _gevent_threadpool():
    """Return gevent's thread pool if gevent has patched this process's threads, else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return None
    import gevent

    return gevent.get_hub().threadpool


class WalFlush:
    """Wait until the transactions this process committed are on disk, one flush for many."""

    def __init__(self, database_path):
        self.wal_path = database_path + "-wal"
        self.directory = os.path.dirname(os.path.abspath(database_path))
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
        """Flush the WAL file (and, for a WAL file new to this process, its directory)."""
        try:
            fd = os.open(self.wal_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # checkpointed into the database file, which the checkpoint flushed
        try:
            stat = os.fstat(fd)
            pool = _gevent_threadpool()
            if pool is None:
                os.fsync(fd)
            else:
                pool.apply(os.fsync, (fd,))
        finally:
            os.close(fd)
        return stat.st_dev, stat.st_ino

    def flush_directory(self):
        fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Flushes:
    """One process's flushes: who has committed, what the last finished flush covers."""

    def __init__(self, wal):
        self.wal = wal
        self.state = threading.Condition()
        self.committed = 0  # commits that asked to be made durable, numbered in order
        self.flushed = 0  # how many of them a finished flush covers
        self.flushing = False
        self.wal_file = None  # (device, inode) of the WAL file flushed last

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
                    self._flush()
                    flushed = True
                finally:
                    self.state.acquire()
                    self.flushing = False
                    if flushed:
                        self.flushed = max(self.flushed, covered)
                    self.state.notify_all()

    def _flush(self):
        wal_file = self.wal.flush()
        if wal_file is not None and wal_file != self.wal_file:
            # A WAL file new to this process: its directory entry must be on disk too.
            self.wal.flush_directory()
            self.wal_file = wal_file

"""Experiment, not a fix: gunicorn settings that queue SQLite writers on a lock file.

    python bench/ingest.py --gunicorn-conf bench/flock_writer.conf.py

Used only to estimate suggestion 1 of RESULTS.md without changing the adapter: after each
worker forks, `adapter.store.transaction` is wrapped so that an outermost transaction on SQLite
first takes a process-wide `threading.Lock` and an exclusive `fcntl.flock` on
`<database>.writelock`, and releases both after COMMIT. Writers then wait in the kernel and wake
as soon as the lock is free, instead of polling in SQLite's busy handler (sleeps of 1-100 ms).
PostgreSQL and nested transactions are left alone. The no-op app gets the same hook (unused).
"""

import contextlib
import fcntl
import os
import threading


def post_fork(server, worker):
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("sqlite:///"):
        return
    from adapter import store

    original = store.transaction
    path = url[len("sqlite:///"):] + ".writelock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    in_process = threading.Lock()

    @contextlib.contextmanager
    def transaction():
        if store.database.in_transaction():
            with original():
                yield
            return
        with in_process:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with original():
                    yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    store.transaction = transaction

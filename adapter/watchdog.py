"""An overall deadline for a blocking HTTP send: a watchdog shuts the socket of one that outlives it.

The client's timeout bounds the connect and each read of the answer separately, so a service
that answers a byte at a time could hold a send for as long as it likes. Each send therefore
runs under a `Deadline`; the connection it uses names its socket to it (`WatchedPools`), and
once the deadline has passed the watchdog shuts that socket down, which ends the blocked read.
"""

import contextlib
import socket
import threading
import time

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# The deadline of the send running in this thread (a greenlet under gevent), if any.
_current = threading.local()


class Deadline:
    """One send's deadline; `expired` tells, afterwards, whether the watchdog cut it short."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._socket = None

    def watch(self, sock):
        """Shut `sock` down if the deadline passes while it is in use (at once if it has)."""
        self._socket = sock
        if self.expired:
            _shut(sock)

    def expire(self):
        self.expired = True
        if self._socket is not None:
            _shut(self._socket)


def _shut(sock):
    with contextlib.suppress(OSError):  # already closed: nothing left to end
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """Expire the deadlines of the sends in flight as they pass, from a thread of its own.

    A send registers on entry and leaves on exit, so the watchdog only ever scans the few
    sends in flight. It sleeps until the earliest of their deadlines, and is woken early only
    by a send whose deadline comes sooner (never, when every send has the same timeout).
    Once a wait ends with no send in flight its thread ends; the next send starts another.
    """

    IDLE_SECONDS = 2.0

    def __init__(self):
        self._running = set()
        self._changed = threading.Condition()
        self._thread = None
        self._wakes_at = 0.0

    def deadline(self, seconds):
        """Return a context in which the sends of this thread end within `seconds`."""
        return _Running(self, Deadline(seconds))

    def _enter(self, deadline):
        with self._changed:
            self._running.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="send-watchdog", daemon=True)
                self._thread.start()
            elif deadline.at < self._wakes_at:
                self._changed.notify()

    def _leave(self, deadline):
        with self._changed:
            self._running.discard(deadline)

    def _run(self):
        with self._changed:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._running if d.at <= now]:
                    self._running.discard(deadline)
                    deadline.expire()
                self._wakes_at = min((d.at for d in self._running), default=now + self.IDLE_SECONDS)
                if not self._changed.wait(self._wakes_at - now) and not self._running:
                    self._thread = None
                    return


class _Running:
    def __init__(self, watchdog, deadline):
        self.watchdog, self.deadline = watchdog, deadline

    def __enter__(self):
        self.watchdog._enter(self.deadline)
        _current.deadline = self.deadline
        return self.deadline

    def __exit__(self, *exc):
        _current.deadline = None
        self.watchdog._leave(self.deadline)


class _Watched:
    """A connection that names its socket to the deadline of the send using it."""

    def getresponse(self):
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.watch(self.sock)
        return super().getresponse()


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections, direct or through a proxy, obey the send's deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager

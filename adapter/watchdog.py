"""An overall deadline for a blocking HTTP send: a watchdog shuts the socket of one that outlives it.

The client's timeout bounds the connect and each read of the answer separately, so a service
that answers a byte at a time could hold a send for as long as it likes. Each send therefore
runs under a `Deadline`; the pooled connection it uses is taken over by that deadline when the
send's request starts (`WATCHED_POOLS`), and once the deadline has passed the watchdog shuts
that connection's socket down, which ends the blocked read or write. A connection back in the
pool, or in use by a later send, is no longer the deadline's to shut.
"""

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit

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
        self._connection = None

    def take(self, connection):
        """Take `connection` over for this send (a later send taking it over ends that)."""
        connection.deadline = self
        self._connection = connection
        if self.expired:
            self._shut()

    def expire(self):
        self.expired = True
        self._shut()

    def _shut(self):
        connection = self._connection
        if connection is not None and connection.deadline is self:
            _shut(connection.sock)


def _shut(sock):
    """Shut a socket down for reading and writing; a closed one, or none, is left as it is."""
    shutdown = getattr(sock, "shutdown", None) or getattr(getattr(sock, "socket", None), "shutdown", None)
    if shutdown is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to end
            shutdown(socket.SHUT_RDWR)


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
            try:
                while True:
                    now = time.monotonic()
                    for deadline in [d for d in self._running if d.at <= now]:
                        self._running.discard(deadline)
                        deadline.expire()
                    self._wakes_at = min((d.at for d in self._running), default=now + self.IDLE_SECONDS)
                    if not self._changed.wait(self._wakes_at - now) and not self._running:
                        return
            finally:
                self._thread = None  # the next send starts another, even after a fault here


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
    """A connection taken over by the deadline of each send that uses it."""

    deadline = None

    def request(self, *args, **kwargs):
        self.deadline = getattr(_current, "deadline", None)
        if self.deadline is not None:
            self.deadline.take(self)
        return super().request(*args, **kwargs)


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
        self._pools = {}

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """The connection pool of the request's origin, found once per origin and settings:
        requests works it out afresh for every send (parsing the URL, a `stat` of the CA bundle
        when one is set, building the pool's key)."""
        scheme, host = urlsplit(request.url)[:2]
        key = (scheme, host, verify, cert, tuple(sorted((proxies or {}).items())))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = super().get_connection_with_tls_context(
                request, verify, proxies, cert
            )
        return pool

    def close(self):
        self._pools.clear()
        super().close()

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager

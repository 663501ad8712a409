"""A send ends within twice the service's timeout, however slowly the service answers."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from adapter.service_client import DeliveryError, ServiceClient
from adapter.times import utcnow
from adapter.watchdog import Deadline, Watchdog

TIMEOUT = 0.3  # each read of the answer comes well within it; the whole answer never does
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"


class DrippingService:
    """Reads a request, writes `quick` at once, then `answer` a byte every `pause` seconds."""

    def __init__(self, quick, answer, pause):
        self.quick, self.answer, self.pause = quick, answer, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        connection, _ = self.listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            try:
                connection.sendall(self.quick)
                for byte in self.answer:
                    connection.sendall(bytes([byte]))
                    time.sleep(self.pause)
            except OSError:
                pass  # the client hung up

    def close(self):
        self.listener.close()


@pytest.fixture
def dripping():
    services = []

    def start(quick, answer, pause=0.02):
        services.append(DrippingService(quick, answer, pause))
        return services[-1]

    yield start
    for service in services:
        service.close()


def message():
    return SimpleNamespace(message_id="msg_drip", body='{"type": "x"}', attempts=0)


def test_a_service_dripping_its_status_line_is_cut_off_at_the_deadline(dripping):
    service = dripping(b"", HEAD, pause=0.1)  # the status line alone would take 1.7 s
    client = ServiceClient("acme", service.url, "whsec_" + "A" * 32, TIMEOUT)
    began = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        client.post(message(), utcnow())
    took = time.monotonic() - began
    assert failure.value.reason == "no whole answer within 0.6 s"
    assert 2 * TIMEOUT <= took < 2 * TIMEOUT + 0.5, took


def test_a_status_that_came_in_time_stands_when_the_text_drips_past_the_deadline(dripping):
    service = dripping(HEAD, b"slow text " * 1000)
    client = ServiceClient("acme", service.url, "whsec_" + "A" * 32, TIMEOUT)
    began = time.monotonic()
    answer = client.post(message(), utcnow())
    took = time.monotonic() - began
    assert answer.status_code == 200  # the text read so far is lost with the connection
    assert 2 * TIMEOUT <= took < 2 * TIMEOUT + 0.5, took


def test_an_answer_in_time_is_not_cut_and_the_watchdog_thread_ends_when_idle(dripping, monkeypatch):
    monkeypatch.setattr(Watchdog, "IDLE_SECONDS", 0.1)
    service = dripping(b"HTTP/1.1 204 No Content\r\n\r\n", b"")
    client = ServiceClient("acme", service.url, "whsec_" + "A" * 32, TIMEOUT)
    before = set(threading.enumerate())
    assert client.post(message(), utcnow()).status_code == 204
    [watchdog] = [t for t in set(threading.enumerate()) - before if t.name == "send-watchdog"]
    watchdog.join(2)
    assert not watchdog.is_alive()


def test_a_deadline_already_passed_shuts_the_socket_it_is_given():
    watchdog = Watchdog()
    left, right = socket.socketpair()
    with left, right, watchdog.deadline(0.05) as deadline:
        time.sleep(0.3)
        assert deadline.expired
        deadline.take(PooledConnection(left))
        assert left.recv(1) == b""  # shut down: the read ends at once


UNDER_GEVENT = """
import gevent.monkey
gevent.monkey.patch_all()
import json, socket, sys, time
from types import SimpleNamespace
import gevent
from adapter.service_client import DeliveryError, ServiceClient
from adapter.times import utcnow

listener = socket.create_server(("127.0.0.1", 0))

def drip():
    connection, _ = listener.accept()
    connection.recv(65536)
    try:
        for byte in b"HTTP/1.1 200 OK\\r\\n":
            connection.sendall(bytes([byte]))
            gevent.sleep(0.1)
    except OSError:
        pass

ticks = []
def tick():
    while True:
        ticks.append(1)
        gevent.sleep(0.01)

gevent.spawn(drip)
ticker = gevent.spawn(tick)
url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
client = ServiceClient("acme", url, "whsec_" + "A" * 32, 0.3)
began = time.monotonic()
try:
    client.post(SimpleNamespace(message_id="msg_drip", body="{}", attempts=0), utcnow())
    reason = None
except DeliveryError as exc:
    reason = exc.reason
took = time.monotonic() - began
ticker.kill()
print(json.dumps({"reason": reason, "took": took, "ticks": len(ticks)}))
"""


def test_under_gevent_the_deadline_ends_a_dripping_send_and_other_greenlets_run_meanwhile():
    pytest.importorskip("gevent")
    done = subprocess.run(
        [sys.executable, "-c", UNDER_GEVENT], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["reason"] == "no whole answer within 0.6 s", result
    assert 0.6 <= result["took"] < 1.2, result
    assert result["ticks"] >= 0.6 / 0.01 / 4, result


def test_a_sooner_deadline_wakes_a_watchdog_waiting_for_a_later_one():
    watchdog = Watchdog()
    later = watchdog.deadline(30)
    with later:  # the watchdog now sleeps until this one's deadline
        time.sleep(0.05)
        done = threading.Event()

        def soon():
            with watchdog.deadline(0.1) as deadline:
                time.sleep(0.4)
                done.expired = deadline.expired
            done.set()

        threading.Thread(target=soon).start()
        assert done.wait(5)
        assert done.expired
        assert not later.deadline.expired


class PooledConnection:
    """What the deadline sees of a pooled connection: its socket, and the deadline that took it."""

    deadline = None

    def __init__(self, sock):
        self.sock = sock


def test_a_deadline_shuts_only_a_connection_no_later_send_has_taken_over():
    watchdog = Watchdog()
    left, right = socket.socketpair()
    connection = PooledConnection(left)
    with left, right:
        with watchdog.deadline(0.1) as first:
            first.take(connection)
        # Back in the pool, then taken by the next send before the first deadline passes.
        with watchdog.deadline(30) as second:
            second.take(connection)
            time.sleep(0.3)
            first.expire()  # as the watchdog would, had the first send still been in flight
            right.sendall(b"x")
            assert left.recv(1) == b"x"  # still open
            second.expire()
            assert left.recv(1) == b""  # shut: the read ends at once


def test_a_socket_without_shutdown_of_its_own_is_shut_through_the_one_it_wraps():
    left, right = socket.socketpair()
    wrapped = SimpleNamespace(socket=left)  # as urllib3's TLS-in-TLS transport
    deadline = Watchdog().deadline(30).deadline
    with left, right:
        deadline.take(PooledConnection(wrapped))
        deadline.expire()
        assert left.recv(1) == b""
        deadline.take(PooledConnection(SimpleNamespace()))  # nothing to shut: nothing happens
        deadline.expire()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_watchdog_recovers_from_a_fault_in_its_own_thread(monkeypatch):
    """The fault ends the watchdog's thread (the warning says so); the next send starts another."""
    watchdog = Watchdog()
    faults = []
    expire = Deadline.expire

    def failing_once(deadline):
        if not faults:
            faults.append(deadline)
            raise RuntimeError("a fault while expiring")
        expire(deadline)

    monkeypatch.setattr(Deadline, "expire", failing_once)
    with watchdog.deadline(0.05):
        time.sleep(0.3)
    assert faults
    with watchdog.deadline(0.05) as deadline:
        time.sleep(0.5)
    assert deadline.expired

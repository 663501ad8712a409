"""End to end: the adapter under gunicorn and the sandbox as real processes on loopback ports.

One order goes request → accept → partial shipment → shipment → delivered, and the merchant API
shows each step. The store is a SQLite file, or a PostgreSQL database of the test's own when
TEST_DATABASE_URL is set.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import gunicorn
import psycopg2
import pytest
import requests
from conftest import POSTGRES_URL, make_secret

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
TOKEN = "e2e-token"
STEP_DELAY = 0.2
START_SECONDS = 20
WAIT_SECONDS = 10
STOP_SECONDS = 10
POLL_SECONDS = 0.02
HTTP_TIMEOUT = 5
# gunicorn 27 opens a control socket at one path in $HOME by default, shared by every instance.
NO_CONTROL_SOCKET = ["--no-control-socket"] if gunicorn.version_info >= (27,) else []


def free_port():
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Process:
    """A child in a process group of its own, its output in a log file."""

    def __init__(self, argv, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 — closed in stop()
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def log(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_until(self, predicate, what):
        """Poll `predicate` while the process lives; fail with its log after START_SECONDS."""
        deadline = time.monotonic() + START_SECONDS
        while not predicate():
            assert self.popen.poll() is None, f"exited with {self.popen.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {what} after {START_SECONDS} s:\n{self.log()}"
            time.sleep(0.05)

    def stop(self):
        """SIGTERM the whole group (gunicorn's workers too), SIGKILL it if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(STOP_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
        self._log.close()


@pytest.fixture
def e2e_database_url(tmp_path):
    """A store for the processes: a database of the test's own on PostgreSQL, dropped after."""
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path}/adapter.db"
        return
    name = f"adapter_e2e_{secrets.token_hex(4)}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def adapter_url(tmp_path, e2e_database_url):
    """Gunicorn (2 workers, in-app dispatcher) and `flask sandbox run --partial`; the adapter's URL."""
    adapter_port, sandbox_port = free_port(), free_port()
    base_url = f"http://{LOOPBACK}:{adapter_port}"
    config = tmp_path / "adapter.toml"
    config.write_text(
        "[outbox]\nin_app_dispatcher = true\npoll_seconds = 0.2\n\n"
        "[services.sandbox]\n"
        'workflow = "new"\n'
        f'url = "http://{LOOPBACK}:{sandbox_port}/adapter-hooks"\n'
        f'secret = "{make_secret()}"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "ADAPTER_CONFIG": str(config), "DATABASE_URL": e2e_database_url,
           "MERCHANT_API_TOKENS": TOKEN, "PYTHONUNBUFFERED": "1"}
    env.pop("TEST_DATABASE_URL", None)
    started = []
    try:
        adapter = Process([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"{LOOPBACK}:{adapter_port}",
                           "--graceful-timeout", "3", *NO_CONTROL_SOCKET, "app:create_app()"],
                          env, tmp_path / "gunicorn.log")
        started.append(adapter)
        adapter.wait_until(lambda: healthy(base_url), "answer on /healthz")
        sandbox = Process([sys.executable, "-m", "flask", "--app", "app", "sandbox", "run", "--partial",
                           "--step-delay", str(STEP_DELAY), "--port", str(sandbox_port),
                           "--adapter-url", base_url], env, tmp_path / "sandbox.log")
        started.append(sandbox)
        sandbox.wait_until(lambda: "receives at" in sandbox.log(), "sandbox listening")
        yield base_url
    finally:
        for process in reversed(started):
            process.stop()


def healthy(base_url):
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{base_url}/healthz", timeout=1).status_code == 200
    return False


class Merchant:
    """The merchant API of the running adapter."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"

    def post(self, path, body, expect):
        response = self.session.post(self.base_url + path, json=body, timeout=HTTP_TIMEOUT)
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path):
        response = self.session.get(self.base_url + path, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, order_id, done, what):
        """Poll the order until `done(order)`; return that first order seen; fail after WAIT_SECONDS."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            order = self.get(f"/orders/{order_id}")
            if done(order):
                return order
            assert time.monotonic() < deadline, f"no {what} after {WAIT_SECONDS} s; the order is {order}"
            time.sleep(POLL_SECONDS)


def fo_state(order):
    (fo,) = order["fulfillment_orders"]
    return fo["status"], fo["request_status"]


def remaining(order):
    (fo,) = order["fulfillment_orders"]
    return [line["remaining_quantity"] for line in fo["line_items"]]


def test_an_order_goes_from_request_to_delivery_in_two_parcels(adapter_url):
    merchant = Merchant(adapter_url)
    order = merchant.post("/orders", {
        "currency": "USD",
        "shipping_address": {"name": "Somchai", "city": "Bangkok", "country_code": "TH"},
        "line_items": [
            {"sku": "TEE-1", "title": "T-shirt", "quantity": 2, "price": "10.00",
             "fulfillment_service": "sandbox"},
            {"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "5.50",
             "fulfillment_service": "sandbox"},
        ],
    }, 201)
    order_id, fo_id = order["id"], order["fulfillment_orders"][0]["id"]
    merchant.post(f"/orders/{order_id}/transactions", {"kind": "sale", "amount": "25.50"}, 201)

    answer = merchant.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {"message": "Fragile"}, 200)
    submitted = answer["submitted_fulfillment_order"]
    assert (submitted["status"], submitted["request_status"]) == ("in_progress", "submitted")
    assert answer["unsubmitted_fulfillment_order"] is None
    order = merchant.get(f"/orders/{order_id}")
    assert order["fulfillment_status"] == "in_progress"
    assert fo_state(order) == ("in_progress", "submitted")

    order = merchant.wait_for(order_id, lambda o: fo_state(o)[1] != "submitted", "accept")
    assert fo_state(order) == ("in_progress", "accepted")
    assert (order["fulfillment_status"], order["fulfillments"]) == ("in_progress", [])

    order = merchant.wait_for(order_id, lambda o: o["fulfillments"], "first parcel")
    assert order["fulfillment_status"] == "partially_fulfilled"
    assert fo_state(order) == ("in_progress", "accepted")
    assert remaining(order) == [0, 1]
    (parcel,) = order["fulfillments"]
    assert (parcel["created_by"], parcel["tracking"]["company"]) == ("service", "Sandbox Post")
    assert [line["quantity"] for line in parcel["line_items"]] == [2]

    order = merchant.wait_for(order_id, lambda o: o["fulfillment_status"] == "fulfilled", "second parcel")
    assert fo_state(order) == ("closed", "accepted")
    assert remaining(order) == [0, 0]
    assert len(order["fulfillments"]) == 2

    order = merchant.wait_for(
        order_id, lambda o: all(f["shipment_status"] == "delivered" for f in o["fulfillments"]),
        "both parcels delivered")
    assert [[event["status"] for event in f["events"]] for f in order["fulfillments"]] == \
        [["label_printed", "in_transit", "delivered"]] * 2
    assert (order["fulfillment_status"], fo_state(order)) == ("fulfilled", ("closed", "accepted"))

    shipment = ["fulfillment.created", "fulfillment.event", "fulfillment.event", "fulfillment.event"]
    assert [event["kind"] for event in merchant.get(f"/orders/{order_id}/timeline")] == [
        "order.created", "transaction.sale", "fulfillment_request.submitted",
        "fulfillment_request.accepted", *shipment, *shipment,
    ]

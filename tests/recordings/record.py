"""Record the sandbox's webhook deliveries from real runs: one JSON Lines file per scenario.

Run it by hand from anywhere (pytest does not collect it):

    python tests/recordings/record.py              # every scenario
    python tests/recordings/record.py happy_path   # some of them

For each scenario it starts the adapter (gunicorn, two workers, in-app dispatcher, a fresh SQLite
file) and the sandbox (`flask --app app sandbox run` with the scenario's options) as real
processes on free loopback ports, plays the merchant over HTTP (create the order, pay, request
fulfillment, then withdraw or ask for a cancellation when the scenario does), waits until the
flow has settled, and writes `flask webhooks export --service sandbox` to `<scenario>.jsonl`.
`scenarios.json` keeps, per scenario, the merchant calls it made (each with the number of
deliveries already received when it was made, so a test can interleave them with the replay)
and what the merchant API showed at the end. Every wait is bounded; a run that went differently
from the script (a delivery racing a merchant call, a flow that never settles) stops with an error
and writes nothing for that scenario.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gunicorn
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOOPBACK = "127.0.0.1"
TOKEN = "recorder-token"
SERVICE = "sandbox"
SCENARIOS_FILE = HERE / "scenarios.json"
START_SECONDS = 30
SETTLE_SECONDS = 60
STOP_SECONDS = 15
HTTP_TIMEOUT = 10
POLL_SECONDS = 0.05
REQUEST_MESSAGE = "กรุณาส่งด่วน — please hurry"
ORDER = {
    "external_id": "recording-1",
    "currency": "USD",
    "email": "somchai@example.com",
    "shipping_address": {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
                         "country_code": "TH"},
    "line_items": [
        {"sku": "TEE-1", "title": "T-shirt", "quantity": 2, "price": "10.00",
         "fulfillment_service": SERVICE},
        {"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "5.50",
         "fulfillment_service": SERVICE},
    ],
}
ORDER_TOTAL = "25.50"
# gunicorn 27 opens a control socket at one path in $HOME by default, shared by every instance.
NO_CONTROL_SOCKET = ["--no-control-socket"] if gunicorn.version_info >= (27,) else []


class RecordingFailed(Exception):
    """The run did not go as the scenario says; nothing is written for it."""


def free_port():
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout, what):
    """Poll `predicate` until it returns a true value, which is returned; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RecordingFailed(f"gave up after {timeout} s waiting for {what}")
        time.sleep(POLL_SECONDS)


class Process:
    """A child in a process group of its own, its output in a log file; stopped by its group id."""

    def __init__(self, argv, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 — closed in stop()
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def log(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self, name):
        if self.popen.poll() is not None:
            raise RecordingFailed(f"{name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")

    def stop(self):
        """SIGTERM the group, SIGKILL it if it lingers."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(STOP_SECONDS)
        self._log.close()


class Run:
    """One scenario's adapter and sandbox, and the merchant's side of the conversation."""

    def __init__(self, workdir, scenario):
        self.workdir = workdir
        self.scenario = scenario
        self.db_path = workdir / "adapter.db"
        self.adapter_port, self.sandbox_port = free_port(), free_port()
        self.base_url = f"http://{LOOPBACK}:{self.adapter_port}"
        config = workdir / "adapter.toml"
        config.write_text(
            "[outbox]\npoll_seconds = 0.2\n\n"
            f"[services.{SERVICE}]\n"
            f'workflow = "{scenario["workflow"]}"\n'
            f'url = "http://{LOOPBACK}:{self.sandbox_port}/adapter-hooks"\n',
            encoding="utf-8",
        )
        self.env = {**os.environ, "ADAPTER_CONFIG": str(config), "PYTHONUNBUFFERED": "1",
                    "DATABASE_URL": f"sqlite:///{self.db_path}", "MERCHANT_API_TOKENS": TOKEN}
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        self.steps = []
        self.adapter = self.sandbox = None

    # ---- processes ----------------------------------------------------------------------------

    def start(self):
        self.adapter = Process(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"{LOOPBACK}:{self.adapter_port}",
             "--graceful-timeout", "5", *NO_CONTROL_SOCKET, "app:create_app()"],
            self.env, self.workdir / "gunicorn.log")
        wait_until(self._healthy, START_SECONDS, "the adapter to answer /healthz")
        self.sandbox = Process(
            [sys.executable, "-m", "flask", "--app", "app", "sandbox", "run",
             "--port", str(self.sandbox_port), "--adapter-url", self.base_url,
             *self.scenario["sandbox_options"]],
            self.env, self.workdir / "sandbox.log")
        wait_until(self._sandbox_listening, START_SECONDS, "the sandbox to listen")

    def _healthy(self):
        self.adapter.check_alive("gunicorn")
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        return False

    def _sandbox_listening(self):
        self.sandbox.check_alive("the sandbox")
        return "receives at" in self.sandbox.log()

    def stop(self):
        for process in (self.sandbox, self.adapter):
            if process is not None:
                process.stop()
        self.session.close()

    # ---- the store, read directly ------------------------------------------------------------

    def query(self, sql, *params):
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                                                timeout=10)) as db:
            return db.execute(sql, params).fetchall()

    def deliveries(self):
        """Return how many of the sandbox's deliveries the adapter has stored so far."""
        return self.query("SELECT COUNT(*) FROM webhook_delivery WHERE service = ?", SERVICE)[0][0]

    def outbox_unsent(self):
        """Return how many messages to the sandbox are not delivered yet."""
        return self.query("SELECT COUNT(*) FROM outbox_message WHERE target = ? AND status <> ?",
                          SERVICE, "delivered")[0][0]

    def outbox_delivered(self, message_type):
        """Tell whether every `message_type` message to the sandbox was delivered (and one exists)."""
        rows = self.query("SELECT status FROM outbox_message WHERE target = ? AND type = ?",
                          SERVICE, message_type)
        return bool(rows) and all(status == "delivered" for (status,) in rows)

    # ---- the merchant -------------------------------------------------------------------------

    def call(self, method, path, body=None, expect=200):
        """Make one merchant call and note it with the deliveries received before it."""
        before = self.deliveries()
        response = self.session.request(method, self.base_url + path, json=body, timeout=HTTP_TIMEOUT)
        after = self.deliveries()
        if response.status_code != expect:
            raise RecordingFailed(f"{method} {path} answered {response.status_code}: {response.text}")
        if after != before:
            raise RecordingFailed(f"a delivery arrived during {method} {path}: their order is unknown")
        step = {"after_deliveries": before, "method": method, "path": path}
        if body is not None:
            step["body"] = body
        step["status"] = response.status_code
        self.steps.append(step)
        return response.json()

    def order(self, order_id):
        return self.session.get(f"{self.base_url}/orders/{order_id}", timeout=HTTP_TIMEOUT).json()

    def timeline(self, order_id):
        return self.session.get(f"{self.base_url}/orders/{order_id}/timeline",
                                timeout=HTTP_TIMEOUT).json()

    def request_fulfillment(self):
        """Create and pay the order, request fulfillment of its FO; return (order id, FO id)."""
        order = self.call("POST", "/orders", ORDER, expect=201)
        self.call("POST", f"/orders/{order['id']}/transactions", {"kind": "sale", "amount": ORDER_TOTAL},
                  expect=201)
        fo_id = order["fulfillment_orders"][0]["id"]
        self.call("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request",
                  {"message": REQUEST_MESSAGE})
        return order["id"], fo_id

    def fo(self, order_id):
        return self.order(order_id)["fulfillment_orders"][0]

    def settle(self, order_id, done):
        """Wait for `done(order, deliveries)`, then for a quiet spell with nothing left to send."""
        wait_until(lambda: done(self.order(order_id), self.deliveries()), SETTLE_SECONDS,
                   "the flow to reach its end")
        quiet = 2 + 4 * self.scenario["step_delay"]
        deadline = time.monotonic() + SETTLE_SECONDS
        seen, since = self.deliveries(), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise RecordingFailed("deliveries never stopped coming")
            time.sleep(POLL_SECONDS)
            count = self.deliveries()
            if count != seen or self.outbox_unsent():
                seen, since = count, time.monotonic()

    def export(self):
        """Return the stored deliveries as `flask webhooks export --service sandbox` writes them."""
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "webhooks", "export", "--service", SERVICE],
            cwd=ROOT, env=self.env, capture_output=True, timeout=60, check=False,
        )
        if result.returncode != 0:
            raise RecordingFailed(f"export failed: {result.stderr.decode(errors='replace')}")
        return result.stdout


# ---- the merchant's part of each scenario -------------------------------------------------------


def shipped(count):
    """Return a settle test: fulfilled in `count` parcels, each one delivered."""
    def done(order, deliveries):
        return (order["fulfillment_status"] == "fulfilled" and len(order["fulfillments"]) == count
                and all(f["shipment_status"] == "delivered" for f in order["fulfillments"]))
    return done


def request_and_wait(run, done):
    order_id, _ = run.request_fulfillment()
    run.settle(order_id, done)
    return order_id


def happy_path(run):
    return request_and_wait(run, shipped(1))


def rejection(run):
    return request_and_wait(run, lambda order, deliveries: deliveries >= 1)


def late_accept(run):
    order_id, fo_id = run.request_fulfillment()
    # Withdraw once the sandbox has the request, and let it hear of the withdrawal before its
    # (late) accept: the accept then answers 409.
    wait_until(lambda: run.outbox_delivered("fulfillment_request.submitted"), SETTLE_SECONDS,
               "the sandbox to receive the request")
    run.call("POST", f"/fulfillment_orders/{fo_id}/cancel", {})
    wait_until(lambda: run.outbox_delivered("fulfillment_request.withdrawn"), SETTLE_SECONDS,
               "the sandbox to hear of the withdrawal")
    if run.deliveries():
        raise RecordingFailed("the accept came before the withdrawal reached the sandbox")
    run.settle(order_id, lambda order, deliveries: deliveries >= 1)
    return order_id


def cancellation(done):
    def play(run):
        order_id, fo_id = run.request_fulfillment()
        wait_until(lambda: run.fo(order_id)["request_status"] == "accepted", SETTLE_SECONDS,
                   "the sandbox to accept")
        run.call("POST", f"/fulfillment_orders/{fo_id}/cancellation_request",
                 {"message": "The customer changed their mind."})
        run.settle(order_id, done)
        return order_id
    return play


# name: what happens, sandbox options, workflow, seconds between the sandbox's steps, the merchant.
# Scenarios where the merchant acts between two deliveries leave the sandbox 1.5 s between steps,
# so the merchant's call and its message to the sandbox fit between them.
SCENARIOS = {
    "happy_path": ("accepted, shipped with tracking, label printed, in transit, delivered",
                   [], "new", 0.3, happy_path),
    "rejection": ("rejected: inventory out of stock",
                  ["--reject", "inventory_out_of_stock"], "new", 0.3, rejection),
    "withdrawal_late_accept": ("the merchant withdraws the request; the sandbox accepts anyway (409)",
                               ["--late-accept"], "new", 1.5, late_accept),
    "cancellation_accepted": ("accepted; the merchant asks for a cancellation, which is accepted",
                              ["--cancellations", "accept"], "new", 1.5,
                              cancellation(lambda order, deliveries: deliveries >= 2)),
    "cancellation_accepted_then_shipped": (
        "the cancellation is accepted, then the sandbox reports a shipment anyway (needs attention)",
        ["--cancellations", "accept", "--ship-after-cancel"], "new", 1.5,
        cancellation(lambda order, deliveries: deliveries >= 3)),
    "cancellation_rejected": ("accepted; the cancellation is rejected and the order ships",
                              ["--cancellations", "reject"], "new", 1.5, cancellation(shipped(1))),
    "partial_shipments": ("accepted, shipped in two parcels, each delivered",
                          ["--partial"], "new", 0.3, lambda run: request_and_wait(run, shipped(2))),
    "out_of_order": ("the delivered event arrives before the in-transit one",
                     ["--out-of-order"], "new", 0.3,
                     lambda run: request_and_wait(run, lambda order, deliveries: deliveries >= 5)),
    "duplicates": ("every webhook is delivered twice with the same webhook-id",
                   ["--duplicates"], "new", 0.3,
                   lambda run: request_and_wait(run, lambda order, deliveries: deliveries >= 10)),
    "legacy": ("legacy workflow: no accept, the sandbox ships directly",
               ["--legacy"], "legacy", 0.3, happy_path),
}


def observed(order, timeline):
    """Return what the merchant API showed at the end, in the terms the replay test checks."""
    return {
        "fulfillment_status": order["fulfillment_status"],
        "fulfillment_orders": [
            {"status": fo["status"], "request_status": fo["request_status"],
             "needs_attention": fo["needs_attention"]}
            for fo in order["fulfillment_orders"]
        ],
        "fulfillments": [
            {"external_id": f["external_id"], "shipment_status": f["shipment_status"],
             "events": [event["status"] for event in f["events"]]}
            for f in order["fulfillments"]
        ],
        "timeline": [event["kind"] for event in timeline],
    }


def record(name, workdir):
    """Play one scenario for real; return (its JSON Lines, its scenarios.json entry)."""
    description, options, workflow, step_delay, play = SCENARIOS[name]
    scenario = {"description": description, "service": SERVICE, "workflow": workflow,
                "step_delay": step_delay,
                "sandbox_options": [*options, "--step-delay", str(step_delay)]}
    run = Run(workdir, scenario)
    try:
        run.start()
        order_id = play(run)
        final = observed(run.order(order_id), run.timeline(order_id))
        run.sandbox.stop()
        run.sandbox = None
        lines = run.export()
    except BaseException:
        for process, label in ((run.adapter, "gunicorn"), (run.sandbox, "sandbox")):
            if process is not None:
                print(f"---- {label} log ----\n{process.log()[-4000:]}", file=sys.stderr)
        raise
    finally:
        run.stop()
    outcomes = [json.loads(line)["outcome"] for line in lines.splitlines() if line.strip()]
    entry = {**scenario, "recording": f"{name}.jsonl", "deliveries": len(outcomes),
             "merchant_steps": run.steps, "observed": final}
    return lines, entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"scenarios to record (default: all): {', '.join(SCENARIOS)}")
    names = parser.parse_args(argv).scenarios or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    entries = json.loads(SCENARIOS_FILE.read_text(encoding="utf-8")) if SCENARIOS_FILE.exists() else {}
    failed = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"record-{name}-") as workdir:
            try:
                lines, entry = record(name, Path(workdir))
            except RecordingFailed as exc:
                print(f"{name}: FAILED: {exc}", file=sys.stderr)
                failed.append(name)
                continue
        (HERE / entry["recording"]).write_bytes(lines)
        entries[name] = entry
        codes = ", ".join(f"{o['status']} {o['code']}" for o in
                          (json.loads(line)["outcome"] for line in lines.splitlines()))
        print(f"{name}: {entry['deliveries']} deliveries ({codes})")
    ordered = {name: entries[name] for name in SCENARIOS if name in entries}
    SCENARIOS_FILE.write_text(json.dumps(ordered, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

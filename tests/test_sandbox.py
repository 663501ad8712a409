"""The sandbox fulfillment service: its scripts, its receiver and sender, and whole flows over HTTP."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
import requests
import responses
from conftest import make_secret
from standardwebhooks import Webhook
from werkzeug.serving import make_server
from werkzeug.test import Client

from adapter.dispatcher import Dispatcher
from adapter.models import OutboxMessage
from adapter.signing import sign_headers
from adapter.times import rfc3339, utcnow
from handlers.sandbox_cli import sandbox_cli
from sandbox import clock
from sandbox.scripts import Options, Step, react
from sandbox.server import PATH, QuietRequestHandler, Receiver, SandboxServer, Sender

SECRET = make_secret()
NOW = datetime(2026, 11, 21, 10, 0, 0)
DELAY = 0.5
STEP_DELAY = 0.05
WAIT_SECONDS = 20
ADAPTER_URL = "http://adapter.example/webhooks/sandbox"


def submitted(lines=((11, 2), (12, 1))):
    """Return a `fulfillment_request.submitted` envelope for FO 7, request 3, with (id, quantity) lines."""
    return {
        "type": "fulfillment_request.submitted",
        "timestamp": "2026-11-21T10:00:00Z",
        "data": {
            "request_id": 3,
            "fulfillment_order": {
                "id": 7,
                "order_id": 1,
                "order_name": "#1001",
                "destination": {"name": "Somchai", "city": "Bangkok", "country_code": "TH"},
                "line_items": [
                    {"id": line_id, "line_item_id": line_id + 100, "sku": f"SKU-{line_id}",
                     "title": "Item", "quantity": quantity}
                    for line_id, quantity in lines
                ],
            },
            "message": None,
            "notify_customer": False,
        },
    }


def message(message_type, **data):
    """Return an envelope about FO 7 of another type."""
    return {"type": message_type, "timestamp": "2026-11-21T10:00:00Z",
            "data": {"fulfillment_order_id": 7, "message": None, **data}}


def react_to(envelope, **options):
    return react(envelope, Options(step_delay=DELAY, **options), NOW)


def kinds(steps):
    """Name each step by its type, and by its status for delivery events."""
    return [" ".join(filter(None, (step.event_type, step.data.get("status")))) for step in steps]


def send_times(steps):
    """Return when each step is due, counted from NOW."""
    elapsed, times = 0.0, []
    for step in steps:
        elapsed += step.delay
        times.append(NOW + timedelta(seconds=elapsed))
    return times


def happened(step):
    return datetime.fromisoformat(step.data["happened_at"].removesuffix("Z"))


DELIVERY = ["fulfillment.event label_printed", "fulfillment.event in_transit",
            "fulfillment.event delivered"]


# ---- scripts ----------------------------------------------------------------------------------


def test_a_request_is_accepted_shipped_with_tracking_and_delivered():
    reaction = react_to(submitted())
    assert reaction.fulfillment_order_id == 7 and not reaction.cancels_pending
    steps = reaction.steps
    assert kinds(steps) == ["fulfillment_request.accepted", "fulfillment.created", *DELIVERY]
    assert all(step.delay == DELAY for step in steps)
    assert steps[0].data["request_id"] == 3 and steps[0].data["fulfillment_order_id"] == 7
    shipment = steps[1].data
    assert shipment["line_items"] == [{"id": 11, "quantity": 2}, {"id": 12, "quantity": 1}]
    assert shipment["tracking"] == {"number": "SBX-7-3-1", "company": "Sandbox Post",
                                    "url": "https://sandbox-post.example/track/SBX-7-3-1"}
    events = steps[2:]
    assert {event.data["external_id"] for event in events} == {shipment["external_id"]}
    assert [happened(event) for event in events] == send_times(steps)[2:]


def test_reject_answers_with_the_reason_and_a_message():
    steps = react_to(submitted(), reject="inventory_out_of_stock").steps
    assert kinds(steps) == ["fulfillment_request.rejected"]
    assert steps[0].data["reason"] == "inventory_out_of_stock"
    assert steps[0].data["request_id"] == 3
    assert "inventory out of stock" in steps[0].data["message"]


def test_partial_ships_the_first_line_then_the_rest():
    steps = react_to(submitted(lines=((11, 2), (12, 1), (13, 4))), partial=True).steps
    assert kinds(steps) == ["fulfillment_request.accepted", "fulfillment.created", *DELIVERY,
                            "fulfillment.created", *DELIVERY]
    first, second = steps[1].data, steps[5].data
    assert first["line_items"] == [{"id": 11, "quantity": 2}]
    assert second["line_items"] == [{"id": 12, "quantity": 1}, {"id": 13, "quantity": 4}]
    assert first["external_id"] != second["external_id"]
    assert {step.data["external_id"] for step in steps[6:]} == {second["external_id"]}


def test_partial_with_one_line_ships_once():
    steps = react_to(submitted(lines=((11, 2),)), partial=True).steps
    assert kinds(steps) == ["fulfillment_request.accepted", "fulfillment.created", *DELIVERY]


def test_legacy_ships_without_accepting():
    steps = react_to(submitted(), legacy=True).steps
    assert kinds(steps) == ["fulfillment.created", *DELIVERY]


def test_out_of_order_sends_delivered_before_in_transit_each_dated_when_it_happened():
    steps = react_to(submitted(), out_of_order=True).steps
    assert kinds(steps) == ["fulfillment_request.accepted", "fulfillment.created",
                            "fulfillment.event label_printed", "fulfillment.event delivered",
                            "fulfillment.event in_transit"]
    label, delivered, transit = steps[2:]
    assert happened(label) < happened(transit) < happened(delivered)
    assert all(happened(step) <= due for step, due in zip(steps[2:], send_times(steps)[2:], strict=True))


@pytest.mark.parametrize(
    ("options", "cancels_pending", "expected"),
    [
        ({}, True, ["cancellation_request.accepted"]),
        ({"cancellations": "reject"}, False, ["cancellation_request.rejected"]),
        ({"ship_after_cancel": True}, True, ["cancellation_request.accepted", "fulfillment.created"]),
    ],
)
def test_cancellation_requests_are_answered(options, cancels_pending, expected):
    reaction = react_to(message("cancellation_request.submitted", request_id=5), **options)
    assert reaction.fulfillment_order_id == 7
    assert reaction.cancels_pending is cancels_pending
    assert kinds(reaction.steps) == expected


def test_ship_after_cancel_reports_all_remaining_items():
    shipment = react_to(message("cancellation_request.submitted", request_id=5),
                        ship_after_cancel=True).steps[1].data
    assert "line_items" not in shipment
    assert shipment["external_id"] == "sbx-7-c5"
    assert shipment["tracking"]["company"] == "Sandbox Post"


@pytest.mark.parametrize(
    ("envelope", "options", "cancels_pending"),
    [
        (message("fulfillment_request.withdrawn", request_id=3), {}, True),
        (message("fulfillment_request.withdrawn", request_id=3), {"late_accept": True}, False),
        (message("fulfillment_order.reverted", line_items=None), {}, True),
        (message("fulfillment_order.reverted", line_items=[{"line_item_id": 111, "quantity": 1}]), {},
         False),
        (message("merchant.message", message="Gift wrap, please"), {}, False),
    ],
)
def test_notices_are_acknowledged_without_answering(envelope, options, cancels_pending):
    reaction = react_to(envelope, **options)
    assert reaction.fulfillment_order_id == 7
    assert reaction.cancels_pending is cancels_pending
    assert reaction.steps == []


def test_unknown_types_are_acknowledged_and_ignored():
    assert react_to({"type": "fulfillment_order.renamed", "data": {}}) == (None, False, [])


@pytest.mark.parametrize(
    "envelope",
    [{"data": {}}, {"type": "merchant.message"}, {"type": "merchant.message", "data": []},
     {"type": "fulfillment_request.submitted", "data": {"request_id": 3}}],
)
def test_unexpected_messages_raise(envelope):
    with pytest.raises((KeyError, TypeError)):
        react_to(envelope)


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 11, 21, 10, 0, 0), datetime(2026, 11, 21, 10, 0, 0, 250000),
     datetime(2026, 11, 21, 10, 0, 0, 1)],
)
def test_the_sandbox_writes_times_as_the_adapter_does(moment):
    assert clock.rfc3339(moment) == rfc3339(moment)


# ---- receiver and sender ----------------------------------------------------------------------


class RecordingSender:
    """Stands in for the Sender: records what the receiver schedules and cancels."""

    def __init__(self, pending=0):
        self.scheduled, self.cancelled, self.pending = [], [], pending

    def schedule(self, fo_id, steps):
        self.scheduled.append((fo_id, kinds(steps)))

    def cancel(self, fo_id):
        self.cancelled.append(fo_id)
        return self.pending


def post(receiver, envelope, webhook_id="msg_1", secret=SECRET, path=PATH):
    """Post a signed envelope to the receiver; return the response."""
    body = json.dumps(envelope)
    headers = {**sign_headers(secret, webhook_id, body, utcnow()), "Content-Type": "application/json"}
    return Client(receiver).post(path, data=body, headers=headers)


def test_receiver_verifies_schedules_and_answers_once_per_webhook_id():
    sender = RecordingSender()
    receiver = Receiver(SECRET, Options(), sender)
    assert post(receiver, submitted()).status_code == 200
    assert post(receiver, submitted()).status_code == 200
    assert sender.scheduled == [(7, ["fulfillment_request.accepted", "fulfillment.created", *DELIVERY])]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"secret": make_secret()}, 401),
        ({"path": "/elsewhere"}, 404),
        ({"envelope": ["not", "an", "object"]}, 400),
        ({"envelope": {"type": "fulfillment_request.submitted", "data": {}}}, 400),
    ],
)
def test_receiver_refuses_what_it_cannot_handle(change, status):
    sender = RecordingSender()
    arguments = {"envelope": submitted(), **change}
    assert post(Receiver(SECRET, Options(), sender), **arguments).status_code == status
    assert sender.scheduled == []


def test_receiver_answers_401_to_malformed_signature_headers():
    response = Client(Receiver(SECRET, Options(), RecordingSender())).post(
        PATH, data="{}", headers={"webhook-id": "msg_1", "webhook-timestamp": "soon",
                                  "webhook-signature": "v1"},
    )
    assert response.status_code == 401


def test_withdrawal_cancels_unsent_steps_unless_late_accept():
    sender = RecordingSender(pending=4)
    post(Receiver(SECRET, Options(), sender), message("fulfillment_request.withdrawn", request_id=3))
    post(Receiver(SECRET, Options(late_accept=True), sender),
         message("fulfillment_request.withdrawn", request_id=3), webhook_id="msg_2")
    assert sender.cancelled == [7]


def test_fail_answers_500_to_the_first_messages_before_handling_them():
    sender = RecordingSender()
    receiver = Receiver(SECRET, Options(), sender, fail=2)
    assert [post(receiver, submitted()).status_code for _ in range(3)] == [500, 500, 200]
    assert len(sender.scheduled) == 1


def test_hang_delays_each_answer():
    receiver = Receiver(SECRET, Options(), RecordingSender(), hang=0.2)
    started = time.monotonic()
    assert post(receiver, message("merchant.message", message="hi")).status_code == 200
    assert time.monotonic() - started >= 0.2


def refuse_accepts(request):
    """Answer like an adapter that no longer allows an accept, and applies anything else."""
    if json.loads(request.body)["type"] == "fulfillment_request.accepted":
        return 409, {}, json.dumps({"code": "invalid_transition", "detail": "Not now."})
    return 200, {}, json.dumps({"status": "applied"})


def test_sender_duplicates_with_one_webhook_id_and_drops_the_rest_of_a_refused_script():
    with responses.RequestsMock() as adapter:
        adapter.add_callback(responses.POST, ADAPTER_URL, callback=refuse_accepts)
        sender = Sender(ADAPTER_URL, SECRET, duplicates=True)
        sender.schedule(7, [Step(0, "fulfillment_request.accepted", {"fulfillment_order_id": 7}),
                            Step(0.3, "fulfillment.created", {"fulfillment_order_id": 7})])
        sender.schedule(7, [Step(0.3, "fulfillment_order.message", {"fulfillment_order_id": 7})])
        sender.start()
        time.sleep(0.6)
        sender.stop()
        requests_sent = [call.request for call in adapter.calls]
    envelopes = [Webhook(SECRET).verify(request.body, dict(request.headers))
                 for request in requests_sent]
    assert [envelope["type"] for envelope in envelopes] == [
        "fulfillment_request.accepted", "fulfillment_request.accepted",
        "fulfillment_order.message", "fulfillment_order.message",
    ]
    webhook_ids = [request.headers["webhook-id"] for request in requests_sent]
    assert webhook_ids[0] == webhook_ids[1] != webhook_ids[2] == webhook_ids[3]


def test_sender_sends_a_new_script_before_the_unsent_steps_of_its_fo():
    with responses.RequestsMock() as adapter:
        adapter.add(responses.POST, ADAPTER_URL, json={"status": "applied"})
        sender = Sender(ADAPTER_URL, SECRET)
        sender.schedule(7, [Step(0.2, "fulfillment.created", {}), Step(0.2, "fulfillment.event", {})])
        sender.schedule(8, [Step(0.15, "fulfillment_request.accepted", {})])
        sender.schedule(7, [Step(0.1, "cancellation_request.rejected", {})])
        sender.start()
        time.sleep(0.8)
        sender.stop()
        sent = [json.loads(call.request.body)["type"] for call in adapter.calls]
    assert sent == ["cancellation_request.rejected", "fulfillment_request.accepted",
                    "fulfillment.created", "fulfillment.event"]


# ---- the command --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--service", "nobody"], "No service 'nobody'"),
        (["--reject", "other", "--partial"], "--reject never ships"),
        (["--ship-after-cancel", "--cancellations", "reject"], "--ship-after-cancel needs"),
        (["--reject", "bored"], "'bored' is not one of"),
    ],
)
def test_run_refuses_bad_options(app, args, complaint):
    result = app.test_cli_runner().invoke(sandbox_cli, ["run", *args])
    assert result.exit_code == 2
    assert complaint in result.output


SANDBOX_APP = """
from flask import Flask
from config import load_settings
from handlers.sandbox_cli import sandbox_cli

def create_app():
    app = Flask(__name__)
    app.extensions["adapter_settings"] = load_settings(environ={{}}, overrides={overrides!r})
    app.cli.add_command(sandbox_cli)
    return app
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_logs_what_it_receives_and_stops_cleanly_on_a_signal(tmp_path, signum):
    services = {"sandbox": {"workflow": "new", "url": "http://127.0.0.1:5001/adapter-hooks",
                            "secret": SECRET}}
    (tmp_path / "sandbox_app.py").write_text(SANDBOX_APP.format(overrides={"services": services}))
    command = [sys.executable, "-m", "flask", "--app", "sandbox_app:create_app", "sandbox", "run",
               "--port", "0"]
    sandbox = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        started = sandbox.stdout.readline()
        assert started.startswith("Sandbox 'sandbox' receives at http://127.0.0.1:")
        assert sandbox.stdout.readline().startswith("Warning: the adapter sends 'sandbox' messages to")
        url = started.split()[4]
        unsigned = requests.post(url, json={}, headers={"webhook-id": "msg_unsigned"}, timeout=5)
        assert unsigned.status_code == 401
        assert "received msg_unsigned: 401" in sandbox.stdout.readline()
        sandbox.send_signal(signum)
        output, _ = sandbox.communicate(timeout=10)
    finally:
        sandbox.kill()
        sandbox.wait()
        sandbox.stdout.close()
    assert sandbox.returncode == 0
    assert output == "Stopping...\n"


# ---- whole flows over loopback HTTP -------------------------------------------------------------


def free_port():
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def adapter_port():
    """The port the live adapter will listen on."""
    return free_port()


@pytest.fixture
def script_options():
    """Scenario options of the sandbox; a test parametrizes them."""
    return {}


@pytest.fixture
def fail_count():
    """How many messages the sandbox answers 500 first; a test parametrizes it."""
    return 0


@pytest.fixture
def sandbox(adapter_port, script_options, fail_count):
    """The sandbox on a free loopback port, sending its webhooks to the live adapter."""
    server = SandboxServer(
        SECRET, f"http://127.0.0.1:{adapter_port}/webhooks/sandbox",
        Options(step_delay=STEP_DELAY, **script_options), fail=fail_count,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def overrides(overrides, sandbox):
    """The test configuration plus a `sandbox` service that posts to the running sandbox."""
    overrides["services"]["sandbox"] = {"workflow": "new", "url": sandbox.url, "secret": SECRET,
                                        "timeout_seconds": 5}
    return overrides


@pytest.fixture
def live_adapter(app, adapter_port):
    """The adapter served over loopback HTTP from a thread."""
    http = make_server("127.0.0.1", adapter_port, app, threaded=True,
                       request_handler=QuietRequestHandler)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield app
    http.shutdown()
    thread.join()
    http.server_close()


def deliver(app, now=None):
    """Send the sandbox's due outbox messages once, as a worker would; return how many were sent."""
    with app.app_context():
        dispatcher = Dispatcher(app.extensions["adapter_settings"], targets=["sandbox"])
        try:
            return dispatcher.run_once(now)
        finally:
            for client in dispatcher.clients.values():
                client.close()


def requested_order(api):
    """Create an order with two lines at the sandbox and request its fulfillment; return (order, FO)."""
    lines = [
        {"sku": "TEE-1", "title": "T-shirt", "quantity": 2, "price": "10.00",
         "fulfillment_service": "sandbox"},
        {"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "5.50",
         "fulfillment_service": "sandbox"},
    ]
    created = api.post("/orders", {"currency": "USD", "line_items": lines,
                                   "shipping_address": {"name": "Somchai", "country_code": "TH"}})
    assert created.status_code == 201, created.body
    fo_id = created.body["fulfillment_orders"][0]["id"]
    requested = api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {"message": "Fragile"})
    assert requested.status_code == 200, requested.body
    return created.body, fo_id


def wait_for(api, order_id, done):
    """Poll the order until `done(order)` holds; fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        order = api.get(f"/orders/{order_id}").body
        if done(order):
            return order
        assert time.monotonic() < deadline, f"gave up waiting; the order is {order}"
        time.sleep(STEP_DELAY)


def delivered(order):
    return (order["fulfillment_status"] == "fulfilled"
            and order["fulfillments"][-1]["shipment_status"] == "delivered")


def test_sandbox_accepts_ships_and_delivers_a_request(live_adapter, api):
    order, fo_id = requested_order(api)
    assert deliver(live_adapter) == 1
    order = wait_for(api, order["id"], delivered)
    fo = order["fulfillment_orders"][0]
    assert (fo["status"], fo["request_status"]) == ("closed", "accepted")
    (fulfillment,) = order["fulfillments"]
    assert fulfillment["created_by"] == "service"
    assert fulfillment["tracking"]["company"] == "Sandbox Post"
    assert [event["status"] for event in fulfillment["events"]] == ["label_printed", "in_transit",
                                                                     "delivered"]
    timeline = [event["kind"] for event in api.get(f"/orders/{order['id']}/timeline").body]
    assert timeline.index("fulfillment_request.accepted") < timeline.index("fulfillment.created")


@pytest.mark.parametrize("script_options", [{"reject": "inventory_out_of_stock"}])
def test_sandbox_rejects_a_request(live_adapter, api):
    order, fo_id = requested_order(api)
    deliver(live_adapter)
    order = wait_for(api, order["id"], lambda order: order["fulfillment_status"] == "unfulfilled")
    fo = order["fulfillment_orders"][0]
    assert (fo["status"], fo["request_status"]) == ("open", "rejected")
    (rejection,) = [event for event in api.get(f"/orders/{order['id']}/timeline").body
                    if event["kind"] == "fulfillment_request.rejected"]
    assert rejection["data"]["reason"] == "inventory_out_of_stock"
    assert "inventory out of stock" in rejection["message"]


@pytest.mark.parametrize("fail_count", [1])
def test_sandbox_failing_once_is_retried_by_the_dispatcher(live_adapter, api):
    order, fo_id = requested_order(api)
    assert deliver(live_adapter) == 1
    with live_adapter.app_context():
        message = OutboxMessage.get(OutboxMessage.fulfillment_order_id == fo_id)
    assert (message.status, message.last_status_code) == ("pending", 500)
    assert api.get(f"/fulfillment_orders/{fo_id}").body["request_status"] == "submitted"
    assert deliver(live_adapter, now=utcnow() + timedelta(seconds=6)) == 1
    wait_for(api, order["id"], delivered)

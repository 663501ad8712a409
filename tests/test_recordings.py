"""Recorded sandbox deliveries (SPEC 7): replayed into a fresh store, with the merchant's calls made
at the recorded points, each scenario ends where its real run ended.

The recordings under tests/recordings/ were captured from real runs of the adapter and the
sandbox by tests/recordings/record.py; scenarios.json holds, per scenario, the merchant's calls
(each with the number of deliveries received before it) and what the merchant API showed at the
end of the real run.
"""

import json
import tomllib
from pathlib import Path

import pytest

from adapter import recordings, store
from config import DEFAULT_CONFIG_PATH

RECORDINGS = Path(__file__).parent / "recordings"
SCENARIOS = json.loads((RECORDINGS / "scenarios.json").read_text(encoding="utf-8"))
SANDBOX = tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))["services"]["sandbox"]

REQUESTED = ["order.created", "transaction.sale", "fulfillment_request.submitted"]
ACCEPTED = [*REQUESTED, "fulfillment_request.accepted"]
PARCEL = ["fulfillment.created", "fulfillment.event", "fulfillment.event", "fulfillment.event"]
DELIVERED = ["label_printed", "in_transit", "delivered"]
SHIPMENT = ["fulfillment.created", *DELIVERED]


def final(fulfillment_status, status, request_status, parcels, timeline):
    """Return the expected end of a scenario with one FO and `parcels` delivered shipments."""
    return {
        "fulfillment_status": fulfillment_status,
        "fulfillment_orders": [
            {"status": status, "request_status": request_status, "needs_attention": False}
        ],
        "fulfillments": [
            {"external_id": f"sbx-1-1-{number}", "shipment_status": "delivered", "events": DELIVERED}
            for number in range(1, parcels + 1)
        ],
        "timeline": timeline,
    }


# scenario: (what the recording holds, in file order: webhook types, delivery events by status;
#            the order at the end)
EXPECTED = {
    "happy_path": (
        ["fulfillment_request.accepted", *SHIPMENT],
        final("fulfilled", "closed", "accepted", 1, [*ACCEPTED, *PARCEL]),
    ),
    "rejection": (
        ["fulfillment_request.rejected"],
        final("unfulfilled", "open", "rejected", 0, [*REQUESTED, "fulfillment_request.rejected"]),
    ),
    "withdrawal_late_accept": (
        ["fulfillment_request.accepted"],
        final("unfulfilled", "open", "unsubmitted", 0, [*REQUESTED, "fulfillment_request.withdrawn"]),
    ),
    "cancellation_accepted": (
        ["fulfillment_request.accepted", "cancellation_request.accepted"],
        final("unfulfilled", "open", "cancellation_accepted", 0,
              [*ACCEPTED, "cancellation_request.submitted", "cancellation_request.accepted"]),
    ),
    # The parcel had left before the cancellation: recorded all the same, and flagged.
    "cancellation_accepted_then_shipped": (
        ["fulfillment_request.accepted", "cancellation_request.accepted", "fulfillment.created"],
        {
            "fulfillment_status": "fulfilled",
            "fulfillment_orders": [
                {"status": "closed", "request_status": "cancellation_accepted", "needs_attention": True}
            ],
            "fulfillments": [{"external_id": "sbx-1-c2", "shipment_status": None, "events": []}],
            "timeline": [*ACCEPTED, "cancellation_request.submitted", "cancellation_request.accepted",
                         "fulfillment.created"],
        },
    ),
    "cancellation_rejected": (
        ["fulfillment_request.accepted", "cancellation_request.rejected", *SHIPMENT],
        final("fulfilled", "closed", "cancellation_rejected", 1,
              [*ACCEPTED, "cancellation_request.submitted", "cancellation_request.rejected", *PARCEL]),
    ),
    "partial_shipments": (
        ["fulfillment_request.accepted", *SHIPMENT, *SHIPMENT],
        final("fulfilled", "closed", "accepted", 2, [*ACCEPTED, *PARCEL, *PARCEL]),
    ),
    "out_of_order": (
        ["fulfillment_request.accepted", "fulfillment.created", "label_printed", "delivered", "in_transit"],
        final("fulfilled", "closed", "accepted", 1, [*ACCEPTED, *PARCEL]),
    ),
    "duplicates": (
        [kind for kind in ["fulfillment_request.accepted", *SHIPMENT] for _ in range(2)],
        final("fulfilled", "closed", "accepted", 1, [*ACCEPTED, *PARCEL]),
    ),
    # The shipment on a submitted FO accepts it first, implicitly.
    "legacy": (
        SHIPMENT,
        final("fulfilled", "closed", "accepted", 1, [*ACCEPTED, *PARCEL]),
    ),
}


@pytest.fixture(params=list(SCENARIOS))
def scenario(request):
    """One recorded scenario's entry in scenarios.json."""
    return SCENARIOS[request.param]


@pytest.fixture
def overrides(overrides, scenario):
    """The test configuration with the recording's service and workflow (never sent to).

    Any secret would do, as replay signs afresh; this is the sandbox's, from default.toml.
    """
    overrides["services"][scenario["service"]] = {
        "workflow": scenario["workflow"], "url": SANDBOX["url"], "secret": SANDBOX["secret"],
    }
    return overrides


def recorded_lines(scenario):
    """Return the recording's lines (bytes), blank ones left out."""
    return [line for line in (RECORDINGS / scenario["recording"]).read_bytes().splitlines() if line.strip()]


def kind_of(line):
    """Name a recorded delivery by its webhook type, or by its status for a delivery event."""
    envelope = json.loads(json.loads(line)["body"])
    return envelope["data"]["status"] if envelope["type"] == "fulfillment.event" else envelope["type"]


def in_process_sender(client):
    """Send a replayed delivery to the app in process, as `flask webhooks replay` does."""
    def send(service, headers, body):
        response = client.post(f"/webhooks/{service}", data=body, headers=headers)
        return recordings.Reply(response.status_code, response.headers, response.get_data())
    return send


def final_state(api, order_id):
    """Return what the merchant API shows of the order, in the recorder's terms."""
    order = api.get(f"/orders/{order_id}").body
    timeline = api.get(f"/orders/{order_id}/timeline").body
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


def replay_with_merchant(app, api, scenario):
    """Replay the recording, making each merchant call before the delivery it came before.

    Return the order id and the (status, outcome) of each delivery.
    """
    send = in_process_sender(app.test_client())
    secrets = {scenario["service"]: SANDBOX["secret"]}
    steps = list(scenario["merchant_steps"])
    order_id, outcomes = None, []

    def merchant_until(deliveries):
        nonlocal order_id
        while steps and steps[0]["after_deliveries"] <= deliveries:
            step = steps.pop(0)
            response = api.call(step["method"], step["path"], step.get("body"))
            assert response.status_code == step["status"], (step, response.body)
            if step["path"] == "/orders":
                order_id = response.body["id"]

    for received, line in enumerate(recorded_lines(scenario)):
        merchant_until(received)
        (outcome,) = recordings.replay([line], secrets, send)
        outcomes.append((outcome.status, outcome.label))
    merchant_until(len(outcomes))
    assert not steps
    return order_id, outcomes


def test_every_recording_has_a_scenario_and_an_expectation():
    files = {path.name for path in RECORDINGS.glob("*.jsonl")}
    assert files == {scenario["recording"] for scenario in SCENARIOS.values()}
    assert set(SCENARIOS) == set(EXPECTED)


def test_recording_holds_the_deliveries_of_its_scenario(scenario):
    name = scenario["recording"].removesuffix(".jsonl")
    lines = recorded_lines(scenario)
    assert [kind_of(line) for line in lines] == EXPECTED[name][0]
    assert len(lines) == scenario["deliveries"]
    assert {json.loads(line)["service"] for line in lines} == {scenario["service"]}


def test_replay_with_the_merchant_steps_ends_where_the_real_run_ended(app, api, scenario):
    name = scenario["recording"].removesuffix(".jsonl")
    order_id, outcomes = replay_with_merchant(app, api, scenario)
    recorded = [json.loads(line)["outcome"] for line in recorded_lines(scenario)]
    # Each delivery is answered as it was: applied, replayed (a duplicate webhook-id) or 409.
    assert outcomes == [(outcome["status"], outcome["code"]) for outcome in recorded]
    state = final_state(api, order_id)
    assert state == EXPECTED[name][1]
    assert state == scenario["observed"]


def test_replay_stores_each_delivery_again_under_its_webhook_id_and_bytes(app, api, scenario):
    replay_with_merchant(app, api, scenario)
    with store.database.connection_context():
        stored = [json.loads(line) for line in recordings.export_lines(scenario["service"])]
    recorded = [json.loads(line) for line in recorded_lines(scenario)]
    fields = ("webhook_id", "body", "outcome")
    assert [[r[f] for f in fields] for r in stored] == [[r[f] for f in fields] for r in recorded]

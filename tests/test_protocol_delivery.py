"""What the adapter sends and when (SPEC 2.3, 3, 4.1): signed messages, failures and retries,
customer notifications, auto-fulfillment, and the lock on orders with an FO in progress."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from conftest import SECRETS, SERVICE_URLS, fo_of, make_secret
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from test_protocol import (
    EMOJI,
    NOTE,
    OPEN_ACTIONS,
    THAI,
    Sides,
    accepted_order,
    cancellation_rejected_order,
    cancellation_requested_order,
    goods_at,
    one_new_event,
    requests_of,
    ship,
    state,
    submitted_order,
)

NOTIFY_URL = "https://notify.example/hook"
NOTIFY_SECRET = make_secret()
TARGETS = {**{url: key for key, url in SERVICE_URLS.items()}, NOTIFY_URL: "notifications"}
TARGET_SECRETS = {**SECRETS, "notifications": NOTIFY_SECRET}
# SPEC 4.1: the data fields of each message type.
DATA_FIELDS = {
    "fulfillment_request.submitted": {"request_id", "fulfillment_order", "message", "notify_customer"},
    "fulfillment_request.withdrawn": {"request_id", "fulfillment_order_id", "message"},
    "cancellation_request.submitted": {"request_id", "fulfillment_order_id", "message"},
    "fulfillment_order.reverted": {"fulfillment_order_id", "message"},
    "merchant.message": {"fulfillment_order_id", "message"},
}
TOTAL = "45.50"


@pytest.fixture
def sides(api, service, deliver, create_order):
    """Both sides of the protocol."""
    return Sides(api, service, deliver, create_order)


@pytest.fixture
def notifications(overrides, outbound):
    """Configure a customer-notifications endpoint that answers 200 (list it before `sides`)."""
    overrides["notifications"] = {"url": NOTIFY_URL, "secret": NOTIFY_SECRET}
    outbound.add(responses.POST, NOTIFY_URL, status=200)
    return NOTIFY_URL


def verified(call):
    """Check an outbound call as its receiver would; return (target, envelope)."""
    target = TARGETS[call.request.url]
    headers = dict(call.request.headers)
    envelope = Webhook(TARGET_SECRETS[target]).verify(call.request.body, headers)
    assert headers["Idempotency-Key"] == headers["webhook-id"]
    assert headers["Content-Type"].startswith("application/json")
    assert set(envelope) == {"type", "timestamp", "data"}
    assert datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    return target, envelope


def calls_to(outbound, url):
    return [call for call in outbound.calls if call.request.url == url]


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


# ---- signed messages ----------------------------------------------------------------------


def test_every_message_type_is_signed_keyed_by_its_webhook_id_and_carries_its_data(sides, outbound):
    order, fo_id = submitted_order(sides, message=THAI)
    sides.act(fo_id, "cancel", {"message": EMOJI})
    sides.act(fo_id, "fulfillment_request", {"message": NOTE})
    sides.tell("acme", "fulfillment_request.accepted", fulfillment_order_id=fo_id)
    sides.act(fo_id, "cancellation_request", {"message": THAI})
    sides.act(fo_id, "messages", {"message": NOTE})
    sides.act(fo_id, "revert", {"message": EMOJI})

    assert sides.drain() == 6

    checked = [verified(call) for call in outbound.calls]
    assert [target for target, _ in checked] == ["acme"] * 6
    envelopes = [envelope for _, envelope in checked]
    assert [e["type"] for e in envelopes] == [
        "fulfillment_request.submitted", "fulfillment_request.withdrawn",
        "fulfillment_request.submitted", "cancellation_request.submitted", "merchant.message",
        "fulfillment_order.reverted"]
    assert [e["data"]["message"] for e in envelopes] == [THAI, EMOJI, NOTE, THAI, NOTE, EMOJI]
    for envelope in envelopes:
        assert DATA_FIELDS[envelope["type"]] <= set(envelope["data"]), envelope
    ids = [call.request.headers["webhook-id"] for call in outbound.calls]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("svc", ["acme", "oldco", "autoship"])
def test_message_goes_to_its_services_url_signed_with_that_services_secret_only(sides, outbound, svc):
    submitted_order(sides, svc)

    sides.drain()

    [call] = outbound.calls
    assert call.request.url == SERVICE_URLS[svc]
    assert verified(call)[1]["type"] == "fulfillment_request.submitted"
    other = next(key for key in SECRETS if key != svc)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRETS[other]).verify(call.request.body, dict(call.request.headers))


# ---- failures and retries -----------------------------------------------------------------


def test_request_refused_with_400_puts_the_fo_back_to_unsubmitted_and_quotes_the_answer(sides, outbound):
    answer = json.dumps({"error": f"SKU MUG-1 ไม่รู้จัก {EMOJI}"}, ensure_ascii=False)
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=400, body=answer,
                     content_type="application/json")
    order, fo_id = submitted_order(sides, message=THAI)
    events = len(sides.timeline(order["id"]))

    assert sides.deliver() == 1

    fo = sides.fo(fo_id)
    assert state(fo) == ("open", "unsubmitted")
    assert set(fo["supported_actions"]) == OPEN_ACTIONS
    assert requests_of(fo) == [("fulfillment_request", "failed", THAI, answer)]
    assert fo["merchant_requests"][0]["answered_at"] is not None
    assert sides.read_order(order["id"])["fulfillment_status"] == "unfulfilled"
    event = one_new_event(sides, order["id"], events)
    assert event["actor"] == "system" and event["fulfillment_order_id"] == fo_id
    assert answer in event["message"]
    assert sides.drain() == 0

    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    again = sides.act(fo_id, "fulfillment_request")["submitted_fulfillment_order"]
    assert [r["status"] for r in again["merchant_requests"]] == ["failed", "submitted"]


def test_a_refusal_in_plain_utf8_text_is_quoted_verbatim(sides, outbound):
    answer = f"สินค้าหมด {EMOJI}"
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=400, body=answer.encode(),
                     content_type="text/plain")
    order, fo_id = submitted_order(sides)

    sides.deliver()

    assert requests_of(sides.fo(fo_id))[0][3] == answer
    assert answer in sides.timeline(order["id"])[-1]["message"]


def test_request_answered_500_stays_pending_and_is_retried_with_the_same_webhook_id(sides, outbound):
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=500)
    order, fo_id = submitted_order(sides)
    events = len(sides.timeline(order["id"]))

    assert sides.deliver() == 1
    assert state(sides.fo(fo_id)) == ("in_progress", "submitted")
    assert sides.fo(fo_id)["merchant_requests"][0]["status"] == "submitted"
    assert sides.deliver() == 0  # not due again yet

    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    assert sides.deliver(now=utcnow() + timedelta(seconds=6)) == 1

    first, second = outbound.calls
    assert second.request.headers["webhook-id"] == first.request.headers["webhook-id"]
    assert second.request.headers["Idempotency-Key"] == first.request.headers["Idempotency-Key"]
    assert second.request.body == first.request.body
    verified(second)
    assert sides.deliver(now=utcnow() + timedelta(hours=1)) == 0
    assert state(sides.fo(fo_id)) == ("in_progress", "submitted")
    assert len(sides.timeline(order["id"])) == events


def test_cancellation_request_refused_puts_the_fo_back_to_accepted_and_quotes_the_answer(
    sides, outbound
):
    order, fo_id = accepted_order(sides)
    sides.drain()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=422,
                     body=json.dumps({"error": THAI}, ensure_ascii=False), content_type="application/json")
    sides.act(fo_id, "cancellation_request", {"message": EMOJI})
    events = len(sides.timeline(order["id"]))

    assert sides.deliver() == 1

    fo = sides.fo(fo_id)
    assert state(fo) == ("in_progress", "accepted")
    assert set(fo["supported_actions"]) == {"request_cancellation", "send_message"}
    kind, status, message, answer = requests_of(fo)[-1]
    assert (kind, status, message) == ("cancellation_request", "failed", EMOJI)
    assert THAI in answer
    event = one_new_event(sides, order["id"], events)
    assert event["actor"] == "system" and THAI in event["message"]


# ---- customer notifications ---------------------------------------------------------------


def test_service_shipment_with_notify_customer_sends_a_shipping_confirmation(notifications, sides,
                                                                             outbound):
    order, fo_id = accepted_order(sides)
    sides.drain()
    tracking = {"number": "TH999", "company": "Flash", "url": "https://track.example/TH999"}
    events = len(sides.timeline(order["id"]))

    ship(sides, "acme", fo_id, {"TEE-1": 2}, external_id="notify-box", tracking=tracking,
         notify_customer=True)

    event = one_new_event(sides, order["id"], events)
    assert event["kind"] == "fulfillment.created"
    assert event["data"].get("customer_notification") not in (None, "not_configured")
    assert calls_to(outbound, NOTIFY_URL) == []
    assert sides.drain() == 1
    [call] = calls_to(outbound, NOTIFY_URL)
    target, envelope = verified(call)
    assert (target, envelope["type"]) == ("notifications", "shipping_confirmation")
    data = envelope["data"]
    assert (data["order"]["id"], data["order"]["name"]) == (order["id"], order["name"])
    assert [(line["sku"], line["quantity"]) for line in data["line_items"]] == [("TEE-1", 2)]
    assert data["tracking"] == tracking


def test_merchant_shipment_with_notify_customer_sends_a_shipping_confirmation(notifications, sides,
                                                                              outbound):
    order = sides.order()
    tracking = {"number": "CARD-1", "company": None, "url": None}

    sides.act(fo_of(order, None)["id"], "mark_fulfilled",
              {"tracking": tracking, "notify_customer": True}, status=201)

    sides.drain()
    [call] = calls_to(outbound, NOTIFY_URL)
    _, envelope = verified(call)
    assert envelope["type"] == "shipping_confirmation"
    assert [(line["sku"], line["quantity"]) for line in envelope["data"]["line_items"]] == [("CARD", 1)]
    assert envelope["data"]["tracking"] == tracking


def test_notes_to_the_service_and_quiet_shipments_never_reach_the_customer(notifications, sides,
                                                                          outbound):
    order, fo_id = submitted_order(sides, message=NOTE, notify_customer=True)
    sides.act(fo_id, "messages", {"message": THAI})
    ship(sides, "acme", fo_id, {"MUG-1": 1}, external_id="quiet")
    sides.act(fo_of(order, None)["id"], "mark_fulfilled", status=201)

    sides.drain()

    assert calls_to(outbound, NOTIFY_URL) == []
    assert [verified(call)[1]["type"] for call in outbound.calls] == [
        "fulfillment_request.submitted", "merchant.message"]


# ---- auto-fulfillment ---------------------------------------------------------------------


def test_auto_fulfill_service_gets_the_request_when_the_order_is_paid_at_intake(sides, outbound):
    order = sides.order("autoship", transactions=[{"kind": "sale", "amount": TOTAL}])

    fo = fo_of(order, "autoship")
    assert state(fo) == ("in_progress", "submitted")
    assert order["fulfillment_status"] == "in_progress"
    assert [(e["kind"], e["actor"]) for e in sides.timeline(order["id"])] == [
        ("order.created", "merchant"), ("fulfillment_request.submitted", "system")]
    assert sides.drain() == 1
    [call] = outbound.calls
    target, envelope = verified(call)
    assert (target, envelope["type"]) == ("autoship", "fulfillment_request.submitted")
    assert envelope["data"]["fulfillment_order"]["id"] == fo["id"]


@pytest.mark.parametrize("payments", [
    [{"kind": "sale", "amount": TOTAL}],
    [{"kind": "authorization", "amount": TOTAL}, {"kind": "capture", "amount": TOTAL}],
    [{"kind": "sale", "amount": "20.00"}, {"kind": "sale", "amount": "25.50"}],
], ids=["sale", "authorization then capture", "two sales"])
def test_auto_fulfill_service_gets_the_request_once_a_later_transaction_pays_the_order(
    sides, outbound, payments
):
    order = sides.order("autoship")
    fo_id = fo_of(order, "autoship")["id"]

    for payment in payments:
        assert state(sides.fo(fo_id)) == ("open", "unsubmitted")
        response = sides.api.post(f"/orders/{order['id']}/transactions", payment)
        assert response.status_code == 201, response.body

    assert state(sides.fo(fo_id)) == ("in_progress", "submitted")
    last_two = sides.timeline(order["id"])[-2:]
    assert [(e["kind"], e["actor"]) for e in last_two] == [
        (f"transaction.{payments[-1]['kind']}", "merchant"), ("fulfillment_request.submitted", "system")]
    assert sides.drain() == 1
    assert [verified(call)[0] for call in outbound.calls] == ["autoship"]


@pytest.mark.parametrize("payments", [
    [],
    [{"kind": "authorization", "amount": TOTAL}],
    [{"kind": "sale", "amount": "45.49"}],
], ids=["nothing paid", "only authorized", "partially paid"])
def test_auto_fulfill_service_gets_no_request_for_an_unpaid_order(sides, outbound, payments):
    order = sides.order("autoship", transactions=payments)

    assert state(fo_of(order, "autoship")) == ("open", "unsubmitted")
    assert sides.drain() == 0


def test_only_auto_fulfill_services_get_requests_when_the_order_is_paid(sides):
    lines = goods_at("autoship")
    lines[1]["fulfillment_service"] = "acme"
    order = sides.create_order(line_items=lines, transactions=[{"kind": "sale", "amount": TOTAL}])

    assert state(fo_of(order, "autoship")) == ("in_progress", "submitted")
    assert state(fo_of(order, "acme")) == ("open", "unsubmitted")
    assert fo_of(order, None)["status"] == "open"


# ---- orders locked while an FO is in progress ---------------------------------------------


LOCKED_CHANGES = {
    "edit": lambda api, order_id: api.patch(f"/orders/{order_id}", {"email": "new@example.com"}),
    "refund": lambda api, order_id: api.post(f"/orders/{order_id}/transactions",
                                             {"kind": "refund", "amount": "1.00"}),
    "cancel": lambda api, order_id: api.post(f"/orders/{order_id}/cancel",
                                             {"reason": THAI, "refund": True}),
}


@pytest.mark.parametrize("change", LOCKED_CHANGES)
@pytest.mark.parametrize("flow", [
    submitted_order, accepted_order, cancellation_requested_order, cancellation_rejected_order,
    lambda sides: submitted_order(sides, "oldco"),
], ids=["submitted", "accepted", "cancellation_requested", "cancellation_rejected", "legacy submitted"])
def test_order_with_an_fo_in_progress_cannot_be_edited_refunded_or_cancelled(sides, flow, change):
    order, fo_id = flow(sides)
    paid = sides.api.post(f"/orders/{order['id']}/transactions", {"kind": "sale", "amount": TOTAL})
    assert paid.status_code == 201, paid.body
    before = sides.read_order(order["id"])
    events = len(sides.timeline(order["id"]))

    response = LOCKED_CHANGES[change](sides.api, order["id"])

    assert response.status_code == 409, response.body
    assert response.body["code"] == "order_locked"
    assert response.body["fulfillment_order_id"] == fo_id
    assert str(fo_id) in response.body["detail"]
    after = sides.read_order(order["id"])
    assert (after["email"], after["order_status"], after["amount_refunded"], after["transactions"]) == (
        before["email"], before["order_status"], before["amount_refunded"], before["transactions"])
    assert len(sides.timeline(order["id"])) == events


@pytest.mark.parametrize("change", LOCKED_CHANGES)
def test_order_is_unlocked_once_the_request_is_withdrawn(sides, change):
    order, fo_id = submitted_order(sides)
    sides.api.post(f"/orders/{order['id']}/transactions", {"kind": "sale", "amount": TOTAL})
    sides.act(fo_id, "cancel")

    response = LOCKED_CHANGES[change](sides.api, order["id"])

    assert response.status_code in (200, 201), response.body

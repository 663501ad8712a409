"""Core rules that once went wrong (SPEC 2.2, 2.3, 6, 7, 9): what reads show is what rules see,
partial voids, edits that change nothing, auto-fulfillment's moments, messages and the CLI."""

import re
import threading
from datetime import datetime, timedelta

import pytest
import requests
import responses
from conftest import SERVICE_URLS, fo_of
from test_protocol import (
    Sides,
    cancellation_accepted_order,
    cancellation_requested_order,
    goods_at,
    incomplete_order,
    rejected_order,
    ship,
    shipped_order,
    state,
    submitted_order,
    withdrawn_order,
)

from adapter import fulfillment_orders, models, schema, store, transitions
from adapter.dispatcher import Dispatcher
from adapter.errors import InvalidTransition
from adapter.models import FulfillmentOrder, MerchantRequest, OutboxMessage
from adapter.statuses import PaymentFacts, payment_state_of
from adapter.times import utcnow

TOTAL = "45.50"  # the total of conftest's order_payload
NOW = datetime(2026, 3, 10, 12, 0, 0)
# SPEC 2.3's vocabulary, written out here as the oracle.
FO_STATUSES = ("open", "scheduled", "on_hold", "in_progress", "incomplete", "closed", "cancelled")
REQUEST_STATUSES = ("unsubmitted", "submitted", "accepted", "rejected", "cancellation_requested",
                    "cancellation_accepted", "cancellation_rejected", "closed")


@pytest.fixture
def sides(api, service, deliver, create_order):
    """Both sides of the protocol."""
    return Sides(api, service, deliver, create_order)


def iso(moment):
    """Write a naive UTC datetime as RFC 3339."""
    return moment.isoformat() + "Z"


def timeline(api, order_id):
    response = api.get(f"/orders/{order_id}/timeline")
    assert response.status_code == 200, response.body
    return response.body


def read(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def sale(amount=TOTAL):
    return {"kind": "sale", "amount": amount}


def auth(amount=TOTAL):
    return {"kind": "authorization", "amount": amount}


def capture(amount):
    return {"kind": "capture", "amount": amount}


def void(amount=None):
    return {"kind": "void"} if amount is None else {"kind": "void", "amount": amount}


def add(api, order_id, body, status=201):
    response = api.post(f"/orders/{order_id}/transactions", body)
    assert response.status_code == status, response.body
    return response.body


def line_id(order, sku):
    return next(line["id"] for line in order["line_items"] if line["sku"] == sku)


# ---- 1. a scheduled FO whose fulfill_at has passed is open for every rule ------------------


def extra_line(service="acme"):
    return {"sku": "CAP", "title": "Cap", "quantity": 1, "price": "3.00", "fulfillment_service": service}


@pytest.mark.parametrize("edit", ["add a line", "raise a quantity"])
def test_edit_after_fulfill_at_passed_joins_the_scheduled_fo_that_reads_open(api, clock, create_order, edit):
    order = create_order(fulfill_at=iso(clock.now + timedelta(days=1)))
    scheduled = fo_of(order, "acme")
    assert scheduled["status"] == "scheduled"
    clock.advance(days=2)
    body = ({"add_line_items": [extra_line()]} if edit == "add a line"
            else {"line_items": [{"id": line_id(order, "TEE-1"), "quantity": 3}]})

    response = api.patch(f"/orders/{order['id']}", body)

    assert response.status_code == 200, response.body
    acme = [fo for fo in response.body["fulfillment_orders"] if fo["service"] == "acme"]
    assert [(fo["id"], fo["status"]) for fo in acme] == [(scheduled["id"], "open")]
    assert sum(line["quantity"] for line in acme[0]["line_items"]) == 4


def test_line_added_before_fulfill_at_gets_an_open_fo_of_its_own(api, clock, create_order):
    order = create_order(fulfill_at=iso(clock.now + timedelta(days=1)))

    response = api.patch(f"/orders/{order['id']}", {"add_line_items": [extra_line()]})

    assert response.status_code == 200, response.body
    acme = [fo for fo in response.body["fulfillment_orders"] if fo["service"] == "acme"]
    assert sorted(fo["status"] for fo in acme) == ["open", "scheduled"]


# ---- 2. voids: partial, by default what is uncaptured, and on cancel -----------------------


# transaction, then: payment_status, amount_authorized, amount_captured, the transaction's amount
VOID_STEPS = [
    (auth(), "authorized", "45.50", "0.00", "45.50"),
    (void("10.00"), "authorized", "35.50", "0.00", "10.00"),
    (capture("20.00"), "partially_paid", "35.50", "20.00", "20.00"),
    (void(), "partially_paid", "20.00", "20.00", "15.50"),
    (sale("25.50"), "paid", "20.00", "45.50", "25.50"),
]


def test_voids_take_their_amount_or_all_that_is_uncaptured_off_the_authorization(api, create_order):
    order = create_order()
    seen = []
    for body, *_ in VOID_STEPS:
        tx = add(api, order["id"], body)
        shown = read(api, order["id"])
        seen.append((shown["payment_status"], shown["amount_authorized"], shown["amount_captured"],
                     tx["amount"]))
    assert seen == [step[1:] for step in VOID_STEPS]
    events = timeline(api, order["id"])
    assert [(e["kind"], e["data"]["amount"]) for e in events if e["kind"] == "transaction.void"] == [
        ("transaction.void", "10.00"), ("transaction.void", "15.50")]


def test_voiding_the_whole_authorization_makes_the_order_voided_with_nothing_authorized(api, create_order):
    order = create_order(transactions=[auth()])
    add(api, order["id"], void("45.50"))
    shown = read(api, order["id"])
    assert (shown["payment_status"], shown["amount_authorized"]) == ("voided", "0.00")


def test_a_partial_void_leaves_the_rest_authorized():
    assert payment_state_of(PaymentFacts(total=4550, authorized=1000, voided=True)) == "authorized"
    assert payment_state_of(PaymentFacts(total=4550, authorized=0, voided=True)) == "voided"


@pytest.mark.parametrize(("refund", "transactions", "status", "authorized", "refunded"), [
    pytest.param(True, [("authorization", "45.50"), ("capture", "15.00"), ("void", "30.50"),
                        ("refund", "15.00")], "refunded", "15.00", "15.00", id="with-refund"),
    pytest.param(False, [("authorization", "45.50"), ("capture", "15.00"), ("void", "30.50")],
                 "partially_paid", "15.00", "0.00", id="without-refund"),
])
def test_cancel_after_a_partial_capture_voids_what_is_left_of_the_authorization(
    api, create_order, refund, transactions, status, authorized, refunded
):
    order = create_order(transactions=[auth(), capture("15.00")])

    response = api.post(f"/orders/{order['id']}/cancel", {"reason": "customer", "refund": refund})

    assert response.status_code == 200, response.body
    cancelled = response.body
    assert [(tx["kind"], tx["amount"]) for tx in cancelled["transactions"]] == transactions
    assert (cancelled["payment_status"], cancelled["amount_authorized"], cancelled["amount_captured"],
            cancelled["amount_refunded"]) == (status, authorized, "15.00", refunded)
    event = timeline(api, order["id"])[-1]
    assert event["kind"] == "order.cancelled"
    assert (event["data"]["voided"], event["data"]["refunded"]) == ("30.50", "15.00" if refund else None)
    # nothing is left to void, and a cancelled order takes no new payment
    assert set(add(api, order["id"], void(), status=422)["errors"]) == {"kind"}
    assert add(api, order["id"], capture("1.00"), status=409)["code"] == "invalid_transition"


def test_cancel_of_a_fully_captured_authorization_voids_nothing(api, create_order):
    order = create_order(transactions=[auth(), capture(TOTAL)])
    response = api.post(f"/orders/{order['id']}/cancel", {"refund": True})
    assert response.status_code == 200, response.body
    assert [tx["kind"] for tx in response.body["transactions"]] == ["authorization", "capture", "refund"]
    assert timeline(api, order["id"])[-1]["data"]["voided"] is None


INVALID_VOIDS = [
    ("more than is uncaptured", [auth(), capture("40.00")], void("5.51"), "amount"),
    ("a fully captured authorization", [auth(), capture(TOTAL)], void(), "kind"),
    ("an amount of a fully captured authorization", [auth(), capture(TOTAL)], void("1.00"), "kind"),
    ("after the whole authorization was voided", [auth(), void()], void(), "kind"),
    ("without an authorization", [sale()], void("1.00"), "kind"),
    ("of zero", [auth()], void("0.00"), "amount"),
    ("of a negative amount", [auth()], void("-1.00"), "amount"),
    ("of a malformed amount", [auth()], void("ten"), "amount"),
    ("with too many decimals", [auth()], void("1.005"), "amount"),
]


@pytest.mark.parametrize(("setup", "body", "field"), [case[1:] for case in INVALID_VOIDS],
                         ids=[case[0] for case in INVALID_VOIDS])
def test_invalid_void_is_422_naming_the_field_and_records_nothing(api, create_order, setup, body, field):
    order = create_order(transactions=setup)
    before = read(api, order["id"]), len(timeline(api, order["id"]))

    problem = add(api, order["id"], body, status=422)

    assert problem["code"] == "validation_failed"
    assert set(problem["errors"]) == {field}
    assert (read(api, order["id"]), len(timeline(api, order["id"]))) == before


def test_capture_beyond_what_a_partial_void_left_is_422_on_the_amount(api, create_order):
    order = create_order(transactions=[auth(), void("40.00")])
    problem = add(api, order["id"], capture("5.51"), status=422)
    assert set(problem["errors"]) == {"amount"}
    assert "5.50" in problem["errors"]["amount"][0]
    assert add(api, order["id"], capture("5.50"))["amount"] == "5.50"


# ---- 3. an edit that changes nothing records nothing ---------------------------------------


NO_OP_EDITS = {
    "empty body": lambda order: {},
    "same email": lambda order: {"email": order["email"]},
    "same address": lambda order: {"shipping_address": order["shipping_address"]},
    "same quantities": lambda order: {
        "line_items": [{"id": line["id"], "quantity": line["quantity"]} for line in order["line_items"]]
    },
    "no lines to add": lambda order: {"add_line_items": []},
    "all of it the same": lambda order: {
        "email": order["email"],
        "shipping_address": order["shipping_address"],
        "line_items": [{"id": line["id"], "quantity": line["quantity"]} for line in order["line_items"]],
        "add_line_items": [],
    },
}


@pytest.mark.parametrize("edit", NO_OP_EDITS)
def test_edit_that_changes_nothing_answers_the_order_and_records_nothing(api, clock, create_order, edit):
    order = create_order()
    events = timeline(api, order["id"])
    clock.advance(hours=1)

    response = api.patch(f"/orders/{order['id']}", NO_OP_EDITS[edit](order))

    assert response.status_code == 200, response.body
    assert response.body == read(api, order["id"]) == order
    assert timeline(api, order["id"]) == events


def test_edit_records_only_what_changed(api, clock, create_order):
    order = create_order()
    clock.advance(hours=1)

    response = api.patch(f"/orders/{order['id']}", {
        "email": "new@example.com", "shipping_address": order["shipping_address"],
        "line_items": [{"id": line_id(order, "TEE-1"), "quantity": 2}],
    })

    assert response.status_code == 200, response.body
    assert response.body["updated_at"] == iso(clock.now)
    event = timeline(api, order["id"])[-1]
    assert (event["kind"], event["data"]) == ("order.edited", {"email": "new@example.com"})


# ---- 4. a late shipment is explained by the state it arrived in ----------------------------


def reverted_order(sides):
    order, fo_id = cancellation_requested_order(sides)
    sides.act(fo_id, "revert")
    return order, fo_id


@pytest.mark.parametrize(("flow", "before"), [
    pytest.param(withdrawn_order, "open / unsubmitted", id="after-withdrawal"),
    pytest.param(reverted_order, "open / unsubmitted", id="after-revert"),
    pytest.param(cancellation_accepted_order, "open / cancellation_accepted",
                 id="after-accepted-cancellation"),
])
def test_late_full_shipment_names_the_state_it_arrived_in(sides, flow, before):
    order, fo_id = flow(sides)

    ship(sides, "acme", fo_id)

    fo = sides.fo(fo_id)
    assert (fo["status"], fo["needs_attention"]) == ("closed", True)
    event = sides.timeline(order["id"])[-1]
    assert event["kind"] == "fulfillment.created"
    explanation = event["data"]["needs_attention"]
    assert f"while the fulfillment order was {before};" in explanation
    assert "closed" not in explanation


# ---- 5. send_message only once the service has seen the FO ---------------------------------


def fresh_order(sides):
    order = sides.order()
    return order, fo_of(order, "acme")["id"]


def marked_fulfilled_order(sides):
    order, fo_id = fresh_order(sides)
    sides.act(fo_id, "mark_fulfilled", {}, status=201)
    return order, fo_id


def held_after_rejection(sides):
    order, fo_id = rejected_order(sides)
    sides.act(fo_id, "hold", {"reason": "other"})
    return order, fo_id


def cancelled_after_rejection(sides):
    order, fo_id = rejected_order(sides)
    assert sides.api.post(f"/orders/{order['id']}/cancel", {}).status_code == 200
    return order, fo_id


def merchant_managed_shipped(sides):
    order = sides.order()
    fo_id = fo_of(order, None)["id"]
    sides.act(fo_id, "mark_fulfilled", {}, status=201)
    return order, fo_id


SEND_MESSAGE_STATES = {
    # name: (flow, (status, request_status), message allowed)
    "never requested": (fresh_order, ("open", "unsubmitted"), False),
    "marked fulfilled without a request": (marked_fulfilled_order, ("closed", "unsubmitted"), False),
    "withdrawn": (withdrawn_order, ("open", "unsubmitted"), False),
    "merchant-managed": (merchant_managed_shipped, ("closed", "unsubmitted"), False),
    "submitted": (submitted_order, ("in_progress", "submitted"), True),
    "rejected": (rejected_order, ("open", "rejected"), True),
    "held after a rejection": (held_after_rejection, ("on_hold", "rejected"), True),
    "cancelled after a rejection": (cancelled_after_rejection, ("cancelled", "rejected"), True),
    "cancellation accepted": (cancellation_accepted_order, ("open", "cancellation_accepted"), True),
    "shipped": (shipped_order, ("closed", "accepted"), True),
    "incomplete": (incomplete_order, ("incomplete", "closed"), True),
}


@pytest.mark.parametrize("name", SEND_MESSAGE_STATES)
def test_send_message_is_offered_exactly_when_the_service_has_seen_the_fo(sides, name):
    flow, expected_state, allowed = SEND_MESSAGE_STATES[name]
    order, fo_id = flow(sides)
    sides.drain()
    fo = sides.fo(fo_id)
    assert state(fo) == expected_state
    assert ("send_message" in fo["supported_actions"]) is allowed
    events = len(sides.timeline(order["id"]))

    response = sides.api.post(f"/fulfillment_orders/{fo_id}/messages", {"message": "Any news?"})

    if allowed:
        assert response.status_code == 200, response.body
        assert len(sides.timeline(order["id"])) == events + 1
        sides.drain()
        assert [e["data"]["message"] for e in sides.sent("merchant.message")] == ["Any news?"]
    else:
        assert response.status_code == 409, response.body
        assert response.body["code"] == "invalid_transition"
        assert len(sides.timeline(order["id"])) == events
        assert sides.drain() == 0


@pytest.mark.parametrize("workflow", ["new", "legacy"])
@pytest.mark.parametrize("status", FO_STATUSES)
@pytest.mark.parametrize("request_status", REQUEST_STATUSES)
def test_send_message_row_allows_any_status_but_unsubmitted(workflow, status, request_status):
    fo = FulfillmentOrder(id=1, service="acme", workflow=workflow, status=status,
                          request_status=request_status, fulfill_at=None)
    assert transitions.is_allowed(fo, "send_message", NOW) is (request_status != "unsubmitted")


# ---- 6. an order keeps a line with quantity 1 or more --------------------------------------


def test_edit_lowering_every_line_to_zero_is_422_and_changes_nothing(api, clock, create_order):
    order = create_order()
    events = timeline(api, order["id"])
    clock.advance(hours=1)

    response = api.patch(f"/orders/{order['id']}", {
        "line_items": [{"id": line["id"], "quantity": 0} for line in order["line_items"]],
    })

    assert response.status_code == 422, response.body
    assert response.body["code"] == "validation_failed"
    assert "cancel the order" in response.body["errors"]["line_items"][0]
    assert read(api, order["id"]) == order
    assert timeline(api, order["id"]) == events


@pytest.mark.parametrize("body", [
    pytest.param(lambda order: {"line_items": [
        {"id": line["id"], "quantity": 0} for line in order["line_items"] if line["sku"] != "MUG-1"
    ]}, id="one-line-kept"),
    pytest.param(lambda order: {
        "line_items": [{"id": line["id"], "quantity": 0} for line in order["line_items"]],
        "add_line_items": [extra_line()],
    }, id="every-line-replaced-by-a-new-one"),
])
def test_edit_keeping_a_line_with_quantity_may_lower_the_others_to_zero(api, create_order, body):
    order = create_order()
    response = api.patch(f"/orders/{order['id']}", body(order))
    assert response.status_code == 200, response.body
    assert any(line["quantity"] >= 1 for line in response.body["line_items"])
    assert response.body["payment_status"] == "pending"


# ---- 7. automatic requests at each moment SPEC 2.3 names, and never after the merchant's ---


def auto_order(sides, **changes):
    """An order whose goods go to the auto-fulfill service; return (order, its FO id)."""
    order = sides.create_order(line_items=goods_at("autoship"), **changes)
    return order, fo_of(order, "autoship")["id"]


def requests_sent(sides):
    sides.drain()
    return sides.sent("fulfillment_request.submitted")


def assert_requested_automatically(sides, order_id, fo_id, after_kind):
    fo = sides.fo(fo_id)
    assert state(fo) == ("in_progress", "submitted")
    assert [request["kind"] for request in fo["merchant_requests"]] == ["fulfillment_request"]
    *_, before, last = sides.timeline(order_id)
    assert before["kind"] == after_kind
    assert (last["kind"], last["actor"], last["fulfillment_order_id"]) == (
        "fulfillment_request.submitted", "system", fo_id)
    [envelope] = requests_sent(sides)
    assert envelope["data"]["fulfillment_order"]["id"] == fo_id


def test_releasing_the_hold_of_a_paid_order_requests_it_automatically(sides):
    order, fo_id = auto_order(sides, hold={"reason": "awaiting_payment"}, transactions=[sale()])
    assert state(sides.fo(fo_id)) == ("on_hold", "unsubmitted")

    answer = sides.act(fo_id, "release_hold")

    assert state(answer) == ("in_progress", "submitted")
    assert_requested_automatically(sides, order["id"], fo_id, "fulfillment_order.hold_released")


def test_opening_a_scheduled_fo_of_a_paid_order_early_requests_it_automatically(sides, clock):
    order, fo_id = auto_order(sides, fulfill_at=iso(clock.now + timedelta(days=3)), transactions=[sale()])
    assert state(sides.fo(fo_id)) == ("scheduled", "unsubmitted")

    answer = sides.act(fo_id, "open")

    assert state(answer) == ("in_progress", "submitted")
    assert_requested_automatically(sides, order["id"], fo_id, "fulfillment_order.opened")


def test_fulfill_at_passing_on_a_paid_order_is_requested_by_the_dispatcher_loop(sides, clock):
    order, fo_id = auto_order(sides, fulfill_at=iso(clock.now + timedelta(hours=1)), transactions=[sale()])
    events = sides.timeline(order["id"])
    clock.advance(hours=2)
    # reads show it open before the loop notices
    fo = sides.fo(fo_id)
    assert state(fo) == ("open", "unsubmitted")
    assert "request_fulfillment" in fo["supported_actions"]
    assert sides.timeline(order["id"]) == events

    sides.deliver(clock.now)

    assert_requested_automatically(sides, order["id"], fo_id, "order.created")
    assert len(sides.timeline(order["id"])) == len(events) + 1
    sides.deliver(clock.now)
    assert len(sides.timeline(order["id"])) == len(events) + 1
    assert len(sides.sent("fulfillment_request.submitted")) == 1


def test_fulfill_at_passing_on_an_unpaid_order_opens_it_silently_until_payment(sides, clock):
    order, fo_id = auto_order(sides, fulfill_at=iso(clock.now + timedelta(hours=1)))
    clock.advance(hours=2)
    before = sides.read_order(order["id"])
    events = sides.timeline(order["id"])

    sides.deliver(clock.now)

    assert sides.read_order(order["id"]) == before
    assert sides.timeline(order["id"]) == events
    assert FulfillmentOrder.get_by_id(fo_id).status == "open"  # stored as reads show it
    add(sides.api, order["id"], sale())
    sides.deliver(clock.now)
    assert_requested_automatically(sides, order["id"], fo_id, "transaction.sale")


def test_fulfill_at_passing_is_requested_by_the_running_dispatcher(app, sides, clock, outbound):
    # The running loop reads the real clock: the order was placed a day ago, due an hour later.
    clock.advance(days=-1)
    order, fo_id = auto_order(sides, fulfill_at=iso(clock.now + timedelta(hours=1)), transactions=[sale()])
    clock.advance(days=1)
    assert state(sides.fo(fo_id)) == ("open", "unsubmitted")

    running = Dispatcher(app.extensions["adapter_settings"]).start()
    try:
        for _ in range(200):
            if outbound.calls:
                break
            threading.Event().wait(0.05)
    finally:
        running.stop(5)

    assert [call.request.url for call in outbound.calls] == [SERVICE_URLS["autoship"]]
    assert state(sides.fo(fo_id)) == ("in_progress", "submitted")


def test_sweeps_running_together_request_a_due_fo_once(app, sides, clock):
    order, fo_id = auto_order(sides, fulfill_at=iso(clock.now + timedelta(hours=1)), transactions=[sale()])
    clock.advance(hours=2)
    start, results, errors = threading.Barrier(4), [], []

    def sweep():
        try:
            with store.database.connection_context():
                start.wait()
                results.append(fulfillment_orders.open_due_fulfillment_orders(clock.now))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=sweep) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert errors == []
    assert sorted(results) == [0, 0, 0, 1]
    assert MerchantRequest.select().where(MerchantRequest.fulfillment_order == fo_id).count() == 1
    assert OutboxMessage.select().where(OutboxMessage.fulfillment_order_id == fo_id).count() == 1


def rejected_auto(sides):
    order, fo_id = auto_order(sides, transactions=[sale()])
    sides.tell("autoship", "fulfillment_request.rejected", fulfillment_order_id=fo_id, reason="other")
    return order, fo_id


def withdrawn_auto(sides):
    order, fo_id = auto_order(sides, transactions=[sale()])
    sides.act(fo_id, "cancel")
    return order, fo_id


def cancellation_requested_auto(sides):
    order, fo_id = auto_order(sides, transactions=[sale()])
    sides.tell("autoship", "fulfillment_request.accepted", fulfillment_order_id=fo_id)
    sides.act(fo_id, "cancellation_request")
    return order, fo_id


def reverted_auto(sides):
    order, fo_id = cancellation_requested_auto(sides)
    sides.act(fo_id, "revert")
    return order, fo_id


def cancellation_accepted_auto(sides):
    order, fo_id = cancellation_requested_auto(sides)
    sides.tell("autoship", "cancellation_request.accepted", fulfillment_order_id=fo_id)
    return order, fo_id


def reverted_in_part_auto(sides):
    """A revert of one T-shirt: it moves to a new FO, which is returned."""
    order, fo_id = cancellation_requested_auto(sides)
    tee = next(line for line in sides.fo(fo_id)["line_items"] if line["sku"] == "TEE-1")
    answer = sides.act(fo_id, "revert", {"line_items": [{"id": tee["id"], "quantity": 1}]})
    return order, answer["fulfillment_order"]["id"]


@pytest.mark.parametrize(("flow", "expected_state"), [
    pytest.param(rejected_auto, ("open", "rejected"), id="rejection"),
    pytest.param(withdrawn_auto, ("open", "unsubmitted"), id="withdrawal"),
    pytest.param(reverted_auto, ("open", "unsubmitted"), id="revert"),
    pytest.param(reverted_in_part_auto, ("open", "unsubmitted"), id="revert-of-some-lines"),
    pytest.param(cancellation_accepted_auto, ("open", "cancellation_accepted"), id="accepted-cancellation"),
])
def test_no_automatic_request_after_the_merchant_took_over(sides, flow, expected_state):
    order, fo_id = flow(sides)
    requested = len(requests_sent(sides))
    sides.act(fo_id, "hold", {"reason": "other"})

    answer = sides.act(fo_id, "release_hold")

    assert state(answer) == expected_state
    assert sides.timeline(order["id"])[-1]["kind"] == "fulfillment_order.hold_released"
    assert len(requests_sent(sides)) == requested


@pytest.mark.parametrize(("took_over", "expected_state"), [
    pytest.param("rejection", ("open", "rejected"), id="rejection"),
    pytest.param("withdrawal", ("open", "unsubmitted"), id="withdrawal"),
    pytest.param("partial request", ("open", "unsubmitted"), id="partial-request"),
])
def test_no_automatic_request_on_payment_after_the_merchant_took_over(sides, took_over, expected_state):
    order, fo_id = auto_order(sides)
    waiting = fo_id
    if took_over == "rejection":
        sides.act(fo_id, "fulfillment_request")
        sides.tell("autoship", "fulfillment_request.rejected", fulfillment_order_id=fo_id, reason="other")
    elif took_over == "withdrawal":
        sides.act(fo_id, "fulfillment_request")
        sides.act(fo_id, "cancel")
    else:
        tee = next(line for line in sides.fo(fo_id)["line_items"] if line["sku"] == "TEE-1")
        answer = sides.act(fo_id, "fulfillment_request", {"line_items": [{"id": tee["id"], "quantity": 1}]})
        waiting = answer["unsubmitted_fulfillment_order"]["id"]
    requested = len(requests_sent(sides))

    add(sides.api, order["id"], sale())

    assert state(sides.fo(waiting)) == expected_state
    assert sides.timeline(order["id"])[-1]["kind"] == "transaction.sale"
    assert len(requests_sent(sides)) == requested


def test_releasing_the_hold_of_an_unpaid_order_requests_nothing(sides):
    order, fo_id = auto_order(sides, hold={"reason": "awaiting_payment"})
    assert state(sides.act(fo_id, "release_hold")) == ("open", "unsubmitted")
    assert requests_sent(sides) == []


def fulfillment_order_indexes():
    table = FulfillmentOrder._meta.table_name
    return {tuple(index.columns) for index in store.database.get_indexes(table)}


def test_an_older_store_gets_the_sweep_index_on_start(app):
    with store.database.connection_context():
        assert ("status", "fulfill_at") in fulfillment_order_indexes()
        [name] = [index.name for index in store.database.get_indexes(FulfillmentOrder._meta.table_name)
                  if tuple(index.columns) == ("status", "fulfill_at")]
        store.database.execute_sql(f'DROP INDEX "{name}"')
        models.SchemaVersion.update(version=schema.SCHEMA_VERSION - 1).execute()
    schema.create_tables()
    with store.database.connection_context():
        assert ("status", "fulfill_at") in fulfillment_order_indexes()
        assert schema.stored_schema_version() == schema.SCHEMA_VERSION


# ---- 8. refusals read as sentences ---------------------------------------------------------


@pytest.mark.parametrize(("action", "status", "request_status", "detail"), [
    ("request_cancellation", "in_progress", "submitted",
     "Cannot request a cancellation for a fulfillment order that is in_progress / submitted."),
    ("request_fulfillment", "in_progress", "accepted",
     "Cannot request fulfillment of a fulfillment order that is in_progress / accepted."),
    ("cancel_fulfillment_request", "open", "unsubmitted",
     "Cannot withdraw the fulfillment request of a fulfillment order that is open / unsubmitted."),
    ("revert_to_unfulfilled", "in_progress", "accepted",
     "Cannot revert a fulfillment order that is in_progress / accepted to unfulfilled."),
    ("hold", "in_progress", "accepted",
     "Cannot hold a fulfillment order that is in_progress / accepted."),
    ("release_hold", "open", "unsubmitted",
     "Cannot release the hold on a fulfillment order that is open / unsubmitted."),
    ("open", "open", "unsubmitted", "Cannot open a fulfillment order that is open / unsubmitted."),
    ("send_message", "open", "unsubmitted",
     "Cannot send a message about a fulfillment order that is open / unsubmitted."),
    ("accept", "in_progress", "accepted",
     "Cannot accept the request of a fulfillment order that is in_progress / accepted."),
    ("reject_cancellation", "in_progress", "accepted",
     "Cannot reject a cancellation for a fulfillment order that is in_progress / accepted."),
    ("close", "open", "rejected", "Cannot close a fulfillment order that is open / rejected."),
])
def test_refusal_of_a_fulfillment_order_action_reads_as_a_sentence(action, status, request_status, detail):
    fo = FulfillmentOrder(id=1, service="acme", workflow="new", status=status,
                          request_status=request_status, fulfill_at=None)
    with pytest.raises(InvalidTransition) as refused:
        transitions.check(fo, action, NOW, remaining=1)
    assert refused.value.detail == detail


STATUS_WORDS = re.compile("|".join(sorted(set(FO_STATUSES) | set(REQUEST_STATUSES), key=len, reverse=True)))


@pytest.mark.parametrize("action", list(transitions.TRANSITIONS))
def test_no_refusal_names_an_action_by_its_identifier(action):
    for service, workflow in (("acme", "new"), ("oldco", "legacy"), (None, None)):
        for status in FO_STATUSES:
            for request_status in REQUEST_STATUSES:
                fo = FulfillmentOrder(id=1, service=service, workflow=workflow, status=status,
                                      request_status=request_status, fulfill_at=None)
                try:
                    transitions.check(fo, action, NOW, remaining=1)
                except InvalidTransition as refused:
                    detail = refused.detail
                    assert detail[0].isupper() and detail.endswith("."), detail
                    assert "_" not in STATUS_WORDS.sub("", detail), detail


def test_refusal_of_a_return_action_reads_as_a_sentence(api, create_order):
    order = create_order()
    fo_id = fo_of(order, None)["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/mark_fulfilled", {}).status_code == 201
    created = api.post(f"/orders/{order['id']}/returns", {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line_id(order, "CARD"), "quantity": 1}],
    })
    assert created.status_code == 201, created.body

    response = api.post(f"/returns/{created.body['id']}/complete_inspection")

    assert response.status_code == 409
    assert response.body["detail"] == "Cannot complete the inspection of a return that is requested."


# ---- 9. the CLI tells what it did not do ---------------------------------------------------


@pytest.fixture
def cli(app):
    """A CLI runner for the test app."""
    return app.test_cli_runner()


def test_replay_of_a_file_whose_lines_are_all_malformed_exits_1(cli, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"service": "acme"}\nnot json\n')

    result = cli.invoke(args=["webhooks", "replay", str(path)])

    assert result.exit_code == 1, result.output
    assert "line 1: malformed" in result.stderr and "line 2: malformed" in result.stderr
    assert "Nothing was replayed" in result.stderr


def test_replay_of_an_empty_file_exits_1(cli, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n")
    result = cli.invoke(args=["webhooks", "replay", str(path)])
    assert result.exit_code == 1, result.output
    assert "Nothing was replayed" in result.stderr


def test_export_of_an_unknown_service_is_a_usage_error(cli):
    result = cli.invoke(args=["webhooks", "export", "--service", "nosuch"])
    assert result.exit_code == 2
    assert "Invalid value for '--service'" in result.stderr
    assert "unknown service 'nosuch'" in result.stderr
    assert result.stdout == ""


def test_export_of_a_service_no_longer_configured_writes_its_stored_deliveries(cli):
    with store.database.connection_context():
        models.WebhookDelivery.create(service="retired", webhook_id="msg_1", headers={}, body=b"{}",
                                      received_at=utcnow(), outcome_status=200)
    result = cli.invoke(args=["webhooks", "export", "--service", "retired"])
    assert result.exit_code == 0, result.output
    assert '"webhook_id": "msg_1"' in result.stdout


def columns_of(lines):
    """The offsets at which each line's columns start (two spaces or more separate columns)."""
    return [[0] + [match.end() for match in re.finditer(r" {2,}", line)] for line in lines]


def section(output, title):
    """The lines of a section of `outbox status`: its header and rows."""
    lines = output.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def test_outbox_status_shows_the_last_error_of_pending_messages_in_aligned_columns(
    cli, sides, outbound
):
    outbound.replace(responses.POST, SERVICE_URLS["acme"], body=requests.exceptions.ConnectionError())
    outbound.replace(responses.POST, SERVICE_URLS["oldco"], status=503, body="x" * 200)
    submitted_order(sides, "acme")
    submitted_order(sides, "oldco")
    sides.deliver()

    result = cli.invoke(args=["outbox", "status"])

    assert result.exit_code == 0, result.output
    pending = section(result.output, "Pending:")
    header, acme_row, oldco_row = pending
    assert header.split("  ")[-1] == "last answer or error"
    assert re.search(r"  -  +connection failed \(ConnectionError\)$", acme_row), acme_row
    assert "  503  " in oldco_row
    assert oldco_row.endswith("x" * 59 + "…")
    assert len(set(map(tuple, columns_of(pending)))) == 1
    counts = result.output.split("\n\n")[0].splitlines()
    assert counts[0].split() == ["target", "status", "count"]
    assert len(set(map(tuple, columns_of(counts)))) == 1

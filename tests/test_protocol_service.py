"""The fulfillment protocol from the service's side (SPEC 2.3, 4.2): answers, shipments, closing."""

import json

import pytest
from conftest import fo_of
from test_protocol import (
    EMOJI,
    INCOMPLETE_ACTIONS,
    NOTE,
    SEEN_OPEN_ACTIONS,
    THAI,
    Sides,
    accepted_order,
    cancellation_rejected_order,
    cancellation_requested_order,
    line_of,
    new_events,
    one_new_event,
    quantities,
    quantities_sent,
    requests_of,
    ship,
    shipped_order,
    snapshot,
    state,
    submitted_order,
    withdrawn_order,
)


@pytest.fixture
def sides(api, service, deliver, create_order):
    """Both sides of the protocol."""
    return Sides(api, service, deliver, create_order)


def assert_refused_with_state(body, status, request_status):
    assert body["code"] == "invalid_transition", body
    assert state(body["fulfillment_order"]) == (status, request_status)


# ---- accept and reject --------------------------------------------------------------------


@pytest.mark.parametrize("svc", ["acme", "oldco"])
def test_accept_moves_the_request_to_accepted_and_puts_the_answer_on_the_timeline(sides, svc):
    order, fo_id = submitted_order(sides, svc, message=THAI)
    request_id = sides.fo(fo_id)["merchant_requests"][0]["id"]
    events = len(sides.timeline(order["id"]))

    body = sides.tell(svc, "fulfillment_request.accepted", fulfillment_order_id=fo_id,
                      request_id=request_id, message=EMOJI)

    assert body["status"] == "applied"
    assert (body["fulfillment_order"]["id"], *state(body["fulfillment_order"])) == (
        fo_id, "in_progress", "accepted")
    fo = sides.fo(fo_id)
    assert requests_of(fo) == [("fulfillment_request", "accepted", THAI, EMOJI)]
    assert fo["merchant_requests"][0]["answered_at"] is not None
    expected = {"request_cancellation", "send_message"} if svc == "acme" else {"send_message"}
    assert set(fo["supported_actions"]) == expected
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"], event["fulfillment_order_id"]) == (
        "fulfillment_request.accepted", "service", EMOJI, fo_id)


def test_accept_with_an_estimated_ship_date_is_applied(sides):
    order, fo_id = submitted_order(sides)

    body = sides.tell("acme", "fulfillment_request.accepted", fulfillment_order_id=fo_id,
                      estimated_shipped_at="2030-01-02T03:04:05Z")

    assert state(body["fulfillment_order"]) == ("in_progress", "accepted")
    assert "2030-01-02T03:04:05" in str(sides.timeline(order["id"])[-1]["data"])


@pytest.mark.parametrize("svc", ["acme", "oldco"])
def test_reject_reopens_the_fo_with_reason_and_message_on_the_timeline(sides, svc):
    order, fo_id = submitted_order(sides, svc, message=EMOJI)
    events = len(sides.timeline(order["id"]))

    body = sides.tell(svc, "fulfillment_request.rejected", fulfillment_order_id=fo_id,
                      reason="incorrect_address", message=THAI)

    assert state(body["fulfillment_order"]) == ("open", "rejected")
    fo = sides.fo(fo_id)
    assert set(fo["supported_actions"]) == SEEN_OPEN_ACTIONS
    assert requests_of(fo) == [("fulfillment_request", "rejected", EMOJI, THAI)]
    assert sides.read_order(order["id"])["fulfillment_status"] == "unfulfilled"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == (
        "fulfillment_request.rejected", "service", THAI)
    assert "incorrect_address" in str(event["data"])


def test_a_rejected_fo_can_be_requested_again_and_keeps_the_rejection(sides):
    order, fo_id = submitted_order(sides)
    sides.tell("acme", "fulfillment_request.rejected", fulfillment_order_id=fo_id, reason="other",
               message=THAI)

    fo = sides.act(fo_id, "fulfillment_request", {"message": NOTE})["submitted_fulfillment_order"]

    assert state(fo) == ("in_progress", "submitted")
    assert requests_of(fo) == [("fulfillment_request", "rejected", None, THAI),
                               ("fulfillment_request", "submitted", NOTE, None)]


@pytest.mark.parametrize("event_type, data", [
    ("fulfillment_request.accepted", {}),
    ("fulfillment_request.rejected", {"reason": "other"}),
])
def test_answer_naming_an_older_request_is_stale_409(sides, event_type, data):
    order, fo_id = withdrawn_order(sides)
    old_id = sides.fo(fo_id)["merchant_requests"][0]["id"]
    sides.act(fo_id, "fulfillment_request")
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.tell("acme", event_type, status=409, fulfillment_order_id=fo_id, request_id=old_id,
                      **data)

    assert_refused_with_state(body, "in_progress", "submitted")
    assert sides.fo(fo_id)["merchant_requests"] == fo["merchant_requests"]
    assert len(sides.timeline(order["id"])) == events


@pytest.mark.parametrize("event_type, data", [
    ("fulfillment_request.accepted", {}),
    ("fulfillment_request.rejected", {"reason": "other"}),
    ("cancellation_request.accepted", {}),
    ("cancellation_request.rejected", {}),
    ("fulfillment_order.closed", {}),
])
def test_answer_to_an_fo_never_requested_is_409_with_the_current_state(sides, event_type, data):
    order = sides.order()
    fo_id = fo_of(order, "acme")["id"]
    events = len(sides.timeline(order["id"]))

    body = sides.tell("acme", event_type, status=409, fulfillment_order_id=fo_id, **data)

    assert_refused_with_state(body, "open", "unsubmitted")
    assert len(sides.timeline(order["id"])) == events


@pytest.mark.parametrize("event_type, data", [
    ("fulfillment_request.accepted", {}),
    ("fulfillment.created", {"external_id": "not-mine"}),
    ("fulfillment_order.message", {"message": THAI}),
])
def test_a_service_cannot_answer_for_another_services_fo(sides, event_type, data):
    order, fo_id = submitted_order(sides)

    body = sides.tell("oldco", event_type, status=404, fulfillment_order_id=fo_id, **data)

    assert body["code"] == "not_found"
    assert state(sides.fo(fo_id)) == ("in_progress", "submitted")


# ---- cancellation answers -----------------------------------------------------------------


def test_accepted_cancellation_reopens_the_fo_and_its_remaining_items_are_unfulfilled_again(sides):
    order, fo_id = accepted_order(sides)
    ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="early-tee")
    sides.act(fo_id, "cancellation_request", {"message": THAI})
    events = len(sides.timeline(order["id"]))

    body = sides.tell("acme", "cancellation_request.accepted", fulfillment_order_id=fo_id,
                      message=EMOJI)

    assert state(body["fulfillment_order"]) == ("open", "cancellation_accepted")
    fo = sides.fo(fo_id)
    assert quantities(fo) == {"TEE-1": 1, "MUG-1": 1}
    assert set(fo["supported_actions"]) == SEEN_OPEN_ACTIONS
    assert requests_of(fo) == [("fulfillment_request", "cancelled", None, None),
                               ("cancellation_request", "accepted", THAI, EMOJI)]
    assert sides.read_order(order["id"])["fulfillment_status"] == "partially_fulfilled"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == (
        "cancellation_request.accepted", "service", EMOJI)
    sides.drain()
    sides.act(fo_id, "fulfillment_request")
    sides.drain()
    assert quantities_sent(sides.sent("fulfillment_request.submitted")[-1]) == {"TEE-1": 1, "MUG-1": 1}


def test_accepted_cancellation_of_an_unshipped_fo_leaves_the_order_unfulfilled(sides):
    order, fo_id = cancellation_requested_order(sides)

    sides.tell("acme", "cancellation_request.accepted", fulfillment_order_id=fo_id)

    assert sides.read_order(order["id"])["fulfillment_status"] == "unfulfilled"
    assert quantities(sides.fo(fo_id)) == {"TEE-1": 2, "MUG-1": 1}


def test_rejected_cancellation_lets_the_service_carry_on_and_ship(sides):
    order, fo_id = cancellation_requested_order(sides)
    events = len(sides.timeline(order["id"]))

    body = sides.tell("acme", "cancellation_request.rejected", fulfillment_order_id=fo_id,
                      message=NOTE)

    assert state(body["fulfillment_order"]) == ("in_progress", "cancellation_rejected")
    fo = sides.fo(fo_id)
    assert set(fo["supported_actions"]) == {"request_cancellation", "send_message"}
    assert requests_of(fo)[-1] == ("cancellation_request", "rejected", None, NOTE)
    assert requests_of(fo)[0][:2] == ("fulfillment_request", "accepted")
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == (
        "cancellation_request.rejected", "service", NOTE)

    shipped = ship(sides, "acme", fo_id, external_id="after-rejection")

    assert shipped["fulfillment_order"]["status"] == "closed"
    assert shipped["fulfillment_order"]["needs_attention"] is False


def test_shipment_while_a_cancellation_is_requested_is_recorded_normally(sides):
    order, fo_id = cancellation_requested_order(sides)

    body = ship(sides, "acme", fo_id, {"MUG-1": 1}, external_id="mug")

    assert state(body["fulfillment_order"]) == ("in_progress", "cancellation_requested")
    assert body["fulfillment_order"]["needs_attention"] is False
    assert quantities(body["fulfillment_order"]) == {"TEE-1": 2, "MUG-1": 0}


# ---- shipments ----------------------------------------------------------------------------


def test_partial_shipment_keeps_the_fo_in_progress_and_the_rest_closes_it(sides):
    order, fo_id = accepted_order(sides)
    events = len(sides.timeline(order["id"]))
    tracking = {"number": "TH123", "company": "Thailand Post", "url": "https://track.example/TH123"}

    first = ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="box-1", tracking=tracking,
                 message=THAI)

    assert state(first["fulfillment_order"]) == ("in_progress", "accepted")
    assert quantities(first["fulfillment_order"]) == {"TEE-1": 1, "MUG-1": 1}
    fulfillment = first["fulfillment"]
    assert (fulfillment["external_id"], fulfillment["created_by"], fulfillment["tracking"]) == (
        "box-1", "service", tracking)
    tee_id = line_of(sides.fo(fo_id), "TEE-1")["line_item_id"]
    assert fulfillment["line_items"] == [{"line_item_id": tee_id, "quantity": 1}]
    assert sides.read_order(order["id"])["fulfillment_status"] == "partially_fulfilled"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == ("fulfillment.created", "service", THAI)

    rest = ship(sides, "acme", fo_id, external_id="box-2")

    assert rest["fulfillment_order"]["status"] == "closed"
    assert quantities(rest["fulfillment_order"]) == {"TEE-1": 0, "MUG-1": 0}
    assert set(rest["fulfillment_order"]["supported_actions"]) <= {"send_message"}
    shipped = sides.read_order(order["id"])
    assert {line["sku"]: line["fulfilled_quantity"] for line in shipped["line_items"]} == {
        "TEE-1": 2, "MUG-1": 1, "CARD": 0}
    assert [f["external_id"] for f in shipped["fulfillments"]] == ["box-1", "box-2"]
    assert shipped["fulfillment_status"] == "partially_fulfilled"  # the gift card is not shipped
    sides.act(fo_of(order, None)["id"], "mark_fulfilled", status=201)
    assert sides.read_order(order["id"])["fulfillment_status"] == "fulfilled"


def test_shipment_on_a_submitted_fo_accepts_it_implicitly_first(sides):
    order, fo_id = submitted_order(sides)
    events = len(sides.timeline(order["id"]))

    body = ship(sides, "acme", fo_id, {"MUG-1": 1}, external_id="mug-first")

    assert state(body["fulfillment_order"]) == ("in_progress", "accepted")
    assert requests_of(sides.fo(fo_id))[0][:2] == ("fulfillment_request", "accepted")
    accept, shipment = new_events(sides, order["id"], events)
    assert (accept["kind"], accept["actor"]) == ("fulfillment_request.accepted", "service")
    assert (shipment["kind"], shipment["actor"]) == ("fulfillment.created", "service")


def test_shipping_more_than_remains_is_409_over_fulfillment_and_records_nothing(sides):
    order, fo_id = accepted_order(sides)
    fo, events = snapshot(sides, order["id"], fo_id)

    response = sides.service.send("acme", "fulfillment.created", {
        "fulfillment_order_id": fo_id, "external_id": "too-many",
        "line_items": [{"id": line_of(fo, "TEE-1")["id"], "quantity": 3}]})

    assert response.status_code == 409, response.body
    assert response.body["code"] == "over_fulfillment"
    assert sides.fo(fo_id)["line_items"] == fo["line_items"]
    assert sides.read_order(order["id"])["fulfillments"] == []
    assert len(sides.timeline(order["id"])) == events


def test_the_same_shipment_reported_twice_records_one_fulfillment(sides):
    order, fo_id = accepted_order(sides)
    ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="same-box")
    events = len(sides.timeline(order["id"]))

    again = ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="same-box")

    assert again["fulfillment"]["external_id"] == "same-box"
    assert len(sides.read_order(order["id"])["fulfillments"]) == 1
    assert quantities(sides.fo(fo_id)) == {"TEE-1": 1, "MUG-1": 1}
    assert len(sides.timeline(order["id"])) == events


def test_redelivery_of_an_applied_answer_is_replayed_and_changes_nothing(sides):
    order, fo_id = submitted_order(sides)
    raw = json.dumps({"type": "fulfillment_request.accepted", "timestamp": "2030-01-01T00:00:00Z",
                      "data": {"fulfillment_order_id": fo_id, "message": THAI}}, ensure_ascii=False)
    first = sides.service.send("acme", None, None, webhook_id="msg_once", body=raw)
    assert first.status_code == 200, first.body
    fo, events = snapshot(sides, order["id"], fo_id)

    again = sides.service.send("acme", None, None, webhook_id="msg_once", body=raw)

    assert again.status_code == 200, again.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.body == first.body
    assert sides.fo(fo_id)["merchant_requests"] == fo["merchant_requests"]
    assert len(sides.timeline(order["id"])) == events


def test_shipment_after_withdrawal_is_kept_and_flags_the_fo_until_acknowledged(sides):
    order, fo_id = withdrawn_order(sides)
    events = len(sides.timeline(order["id"]))

    body = ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="late-box")

    assert body["fulfillment_order"]["needs_attention"] is True
    assert state(body["fulfillment_order"]) == ("open", "unsubmitted")
    assert quantities(body["fulfillment_order"]) == {"TEE-1": 1, "MUG-1": 1}
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"]) == ("fulfillment.created", "service")
    assert "withdr" in str(event["data"]).lower() or "unsubmitted" in str(event["data"]).lower()
    assert sides.read_order(order["id"])["needs_attention"] is True

    fo = sides.act(fo_id, "acknowledge")

    assert fo["needs_attention"] is False
    assert sides.read_order(order["id"])["needs_attention"] is False


# ---- closing and messages -----------------------------------------------------------------


@pytest.mark.parametrize("flow", [accepted_order, cancellation_rejected_order])
def test_service_giving_up_makes_the_fo_incomplete_and_a_new_request_covers_only_what_remains(
    sides, flow
):
    order, fo_id = flow(sides)
    ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="only-one")
    sides.drain()
    events = len(sides.timeline(order["id"]))

    body = sides.tell("acme", "fulfillment_order.closed", fulfillment_order_id=fo_id, message=NOTE)

    fo = body["fulfillment_order"]
    assert state(fo) == ("incomplete", "closed")
    assert set(fo["supported_actions"]) == INCOMPLETE_ACTIONS
    assert sides.read_order(order["id"])["fulfillment_status"] == "partially_fulfilled"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == (
        "fulfillment_order.closed", "service", NOTE)

    again = sides.act(fo_id, "fulfillment_request", {"message": THAI})["submitted_fulfillment_order"]

    assert (again["id"], *state(again)) == (fo_id, "in_progress", "submitted")
    assert [r["kind"] for r in again["merchant_requests"]][-1] == "fulfillment_request"
    assert again["merchant_requests"][-1]["status"] == "submitted"
    sides.drain()
    latest = sides.sent("fulfillment_request.submitted")[-1]
    assert quantities_sent(latest) == {"TEE-1": 1, "MUG-1": 1}
    assert latest["data"]["request_id"] == again["merchant_requests"][-1]["id"]


def test_closing_records_the_outcome_on_the_request(sides):
    order, fo_id = accepted_order(sides)

    sides.tell("acme", "fulfillment_order.closed", fulfillment_order_id=fo_id, message=THAI)

    assert requests_of(sides.fo(fo_id))[0][:2] == ("fulfillment_request", "closed")


def test_closing_a_request_not_yet_accepted_is_409(sides):
    order, fo_id = submitted_order(sides)

    body = sides.tell("acme", "fulfillment_order.closed", status=409, fulfillment_order_id=fo_id)

    assert_refused_with_state(body, "in_progress", "submitted")


@pytest.mark.parametrize("flow", [
    lambda sides: (lambda order: (order, fo_of(order, "acme")["id"]))(sides.order()),
    submitted_order,
    cancellation_requested_order,
    shipped_order,
], ids=["open", "submitted", "cancellation_requested", "closed"])
def test_service_message_is_put_on_the_timeline_verbatim_in_any_state(sides, flow):
    order, fo_id = flow(sides)
    before = sides.fo(fo_id)
    events = len(sides.timeline(order["id"]))

    body = sides.tell("acme", "fulfillment_order.message", fulfillment_order_id=fo_id, message=NOTE)

    assert state(body["fulfillment_order"]) == state(before)
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"], event["fulfillment_order_id"]) == (
        "fulfillment_order.message", "service", NOTE, fo_id)

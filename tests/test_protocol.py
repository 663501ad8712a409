"""The fulfillment protocol over HTTP from both sides (SPEC 2.3, 3, 4): merchant actions.

The merchant acts through the API; the service answers through signed webhooks
and reads what the adapter posted to it. The helpers at the top play whole
flows (`submitted_order`, `accepted_order`...) and are shared by the other
`test_protocol_*.py` files: service answers, delivery, and states and history.
"""

import secrets

import pytest
from conftest import fo_of, order_payload

THAI = "กรุณาส่งด่วน"
EMOJI = "📦🚚👩‍👩‍👧👍🏽"
NOTE = f"{THAI} {EMOJI}"
OPEN_ACTIONS = {"request_fulfillment", "mark_as_fulfilled", "hold"}
# An open FO whose service has seen a request (rejected, cancellation accepted) can get a note.
SEEN_OPEN_ACTIONS = OPEN_ACTIONS | {"send_message"}
INCOMPLETE_ACTIONS = {"request_fulfillment", "mark_as_fulfilled", "send_message"}
SUBMITTED_FO_FIELDS = ("id", "order_id", "order_name", "destination", "line_items")


# ---- both sides of the conversation -------------------------------------------------------


def goods_at(service):
    """Return the standard lines with both goods at `service`; the gift card stays merchant-managed."""
    return [
        {**line, "fulfillment_service": service} if line["fulfillment_service"] else line
        for line in order_payload()["line_items"]
    ]


class Sides:
    """The merchant API, the service's webhooks and the outbox dispatcher, for one test."""

    def __init__(self, api, service, deliver, create_order):
        self.api = api
        self.service = service
        self.deliver = deliver
        self.create_order = create_order

    def order(self, svc="acme", **changes):
        """Create an order whose goods go to `svc`; return it."""
        return self.create_order(line_items=goods_at(svc), **changes)

    def fo(self, fo_id):
        response = self.api.get(f"/fulfillment_orders/{fo_id}")
        assert response.status_code == 200, response.body
        return response.body

    def read_order(self, order_id):
        response = self.api.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.body
        return response.body

    def timeline(self, order_id):
        response = self.api.get(f"/orders/{order_id}/timeline")
        assert response.status_code == 200, response.body
        return response.body

    def act(self, fo_id, action, body=None, status=200):
        """POST a merchant action on an FO and return the answer's body."""
        response = self.api.post(f"/fulfillment_orders/{fo_id}/{action}", body or {})
        assert response.status_code == status, response.body
        return response.body

    def tell(self, svc, event_type, status=200, webhook_id=None, **data):
        """Send a signed webhook from service `svc` and return the answer's body."""
        response = self.service.send(svc, event_type, data, webhook_id=webhook_id)
        assert response.status_code == status, response.body
        return response.body

    def drain(self):
        """Run the dispatcher until nothing is due (one run sends one message per FO); return the count."""
        total = 0
        while sent := self.deliver():
            total += sent
        return total

    def sent(self, message_type=None):
        """Return the envelopes the adapter has POSTed out so far."""
        return self.service.sent(message_type)


@pytest.fixture
def sides(api, service, deliver, create_order):
    """Both sides of the protocol."""
    return Sides(api, service, deliver, create_order)


def state(fo):
    return fo["status"], fo["request_status"]


def quantities(fo):
    """Return {sku: remaining quantity} of an FO."""
    return {line["sku"]: line["remaining_quantity"] for line in fo["line_items"]}


def quantities_sent(envelope):
    """Return {sku: quantity} of a `fulfillment_request.submitted` message."""
    return {line["sku"]: line["quantity"] for line in envelope["data"]["fulfillment_order"]["line_items"]}


def line_of(fo, sku):
    return next(line for line in fo["line_items"] if line["sku"] == sku)


def requests_of(fo):
    """Return (kind, status, message, answer_message) of each merchant request, oldest first."""
    return [
        (request["kind"], request["status"], request["message"], request["answer_message"])
        for request in fo["merchant_requests"]
    ]


def new_events(sides, order_id, seen):
    """Return the timeline events written after the first `seen` ones."""
    return sides.timeline(order_id)[seen:]


def one_new_event(sides, order_id, seen):
    """Assert that exactly one event was written after the first `seen`; return it."""
    events = new_events(sides, order_id, seen)
    assert len(events) == 1, [(event["kind"], event["actor"]) for event in events]
    return events[0]


def snapshot(sides, order_id, fo_id):
    """Deliver what is pending; return the FO and the timeline length a refused action must keep."""
    sides.drain()
    return sides.fo(fo_id), len(sides.timeline(order_id))


def assert_nothing_changed(sides, order_id, fo_before, events_before):
    """Assert a refused action left the FO and the timeline as they were and queued nothing."""
    fo = sides.fo(fo_before["id"])
    assert state(fo) == state(fo_before)
    assert fo["line_items"] == fo_before["line_items"]
    assert fo["merchant_requests"] == fo_before["merchant_requests"]
    assert len(sides.timeline(order_id)) == events_before
    assert sides.drain() == 0


# ---- flows --------------------------------------------------------------------------------


def submitted_order(sides, svc="acme", **request):
    """Create an order and request fulfillment of its `svc` FO; return (order, FO id)."""
    order = sides.order(svc)
    fo_id = fo_of(order, svc)["id"]
    sides.act(fo_id, "fulfillment_request", request)
    return order, fo_id


def accepted_order(sides, svc="acme"):
    order, fo_id = submitted_order(sides, svc)
    sides.tell(svc, "fulfillment_request.accepted", fulfillment_order_id=fo_id)
    return order, fo_id


def rejected_order(sides, svc="acme"):
    order, fo_id = submitted_order(sides, svc)
    sides.tell(svc, "fulfillment_request.rejected", fulfillment_order_id=fo_id,
               reason="inventory_out_of_stock")
    return order, fo_id


def withdrawn_order(sides):
    order, fo_id = submitted_order(sides)
    sides.act(fo_id, "cancel")
    return order, fo_id


def cancellation_requested_order(sides):
    order, fo_id = accepted_order(sides)
    sides.act(fo_id, "cancellation_request")
    return order, fo_id


def cancellation_accepted_order(sides):
    order, fo_id = cancellation_requested_order(sides)
    sides.tell("acme", "cancellation_request.accepted", fulfillment_order_id=fo_id)
    return order, fo_id


def cancellation_rejected_order(sides):
    order, fo_id = cancellation_requested_order(sides)
    sides.tell("acme", "cancellation_request.rejected", fulfillment_order_id=fo_id)
    return order, fo_id


def ship(sides, svc, fo_id, lines=None, status=200, **extra):
    """Report a shipment from the service; `lines` maps sku to quantity (None = all remaining)."""
    data = {"fulfillment_order_id": fo_id, "external_id": f"ship-{secrets.token_hex(4)}", **extra}
    if lines is not None:
        fo = sides.fo(fo_id)
        data["line_items"] = [{"id": line_of(fo, sku)["id"], "quantity": quantity}
                              for sku, quantity in lines.items()]
    return sides.tell(svc, "fulfillment.created", status=status, **data)


def incomplete_order(sides, svc="acme"):
    """One T-shirt shipped, then the service gave up on the rest."""
    order, fo_id = accepted_order(sides, svc)
    ship(sides, svc, fo_id, {"TEE-1": 1}, external_id="first-tee")
    sides.tell(svc, "fulfillment_order.closed", fulfillment_order_id=fo_id)
    return order, fo_id


def shipped_order(sides, svc="acme"):
    order, fo_id = accepted_order(sides, svc)
    ship(sides, svc, fo_id, external_id="everything")
    return order, fo_id


# ---- request fulfillment ------------------------------------------------------------------


def test_fulfillment_request_puts_the_fo_in_progress_and_sends_its_lines_to_the_service(sides):
    order = sides.order()
    fo_id = fo_of(order, "acme")["id"]

    body = sides.act(fo_id, "fulfillment_request", {"message": NOTE, "notify_customer": True})

    fo = body["submitted_fulfillment_order"]
    assert body["unsubmitted_fulfillment_order"] is None
    assert (fo["id"], *state(fo)) == (fo_id, "in_progress", "submitted")
    assert quantities(fo) == {"TEE-1": 2, "MUG-1": 1}
    [request] = fo["merchant_requests"]
    assert (request["kind"], request["message"], request["status"], request["answered_at"]) == (
        "fulfillment_request", NOTE, "submitted", None)
    assert sides.read_order(order["id"])["fulfillment_status"] == "in_progress"
    assert sides.sent() == []

    assert sides.deliver() == 1

    [envelope] = sides.sent()
    assert envelope["type"] == "fulfillment_request.submitted"
    data = envelope["data"]
    assert (data["request_id"], data["message"], data["notify_customer"]) == (request["id"], NOTE, True)
    assert {key: data["fulfillment_order"][key] for key in SUBMITTED_FO_FIELDS} == {
        "id": fo_id,
        "order_id": order["id"],
        "order_name": order["name"],
        "destination": order["shipping_address"],
        "line_items": [
            {"id": line["id"], "line_item_id": line["line_item_id"], "sku": line["sku"],
             "title": line["title"], "quantity": line["remaining_quantity"]}
            for line in fo["line_items"]
        ],
    }


def test_partial_request_keeps_the_requested_quantities_on_the_fo_and_moves_the_rest(sides):
    order = sides.order()
    fo = fo_of(order, "acme")

    body = sides.act(fo["id"], "fulfillment_request",
                     {"line_items": [{"id": line_of(fo, "TEE-1")["id"], "quantity": 1}]})

    submitted, rest = body["submitted_fulfillment_order"], body["unsubmitted_fulfillment_order"]
    assert (submitted["id"], *state(submitted)) == (fo["id"], "in_progress", "submitted")
    assert quantities(submitted) == {"TEE-1": 1}
    assert rest["id"] != fo["id"]
    assert (rest["service"], *state(rest)) == ("acme", "open", "unsubmitted")
    assert quantities(rest) == {"TEE-1": 1, "MUG-1": 1}
    assert rest["merchant_requests"] == []
    assert set(rest["supported_actions"]) == OPEN_ACTIONS
    acme_fos = [f for f in sides.read_order(order["id"])["fulfillment_orders"] if f["service"] == "acme"]
    assert [f["id"] for f in acme_fos] == [fo["id"], rest["id"]]
    sides.drain()
    [envelope] = sides.sent("fulfillment_request.submitted")
    assert envelope["data"]["fulfillment_order"]["id"] == fo["id"]
    assert [(line["sku"], line["quantity"]) for line in envelope["data"]["fulfillment_order"]["line_items"]] \
        == [("TEE-1", 1)]


def test_the_remainder_of_a_partial_request_can_be_requested_on_its_own(sides):
    order = sides.order()
    fo = fo_of(order, "acme")
    body = sides.act(fo["id"], "fulfillment_request",
                     {"line_items": [{"id": line_of(fo, "MUG-1")["id"], "quantity": 1}]})
    rest_id = body["unsubmitted_fulfillment_order"]["id"]

    again = sides.act(rest_id, "fulfillment_request", {"message": THAI})

    assert again["submitted_fulfillment_order"]["id"] == rest_id
    assert again["unsubmitted_fulfillment_order"] is None
    assert state(sides.fo(fo["id"])) == state(sides.fo(rest_id)) == ("in_progress", "submitted")
    sides.drain()
    assert [(e["data"]["fulfillment_order"]["id"], e["data"]["message"],
             quantities_sent(e)) for e in sides.sent("fulfillment_request.submitted")] == [
        (fo["id"], None, {"MUG-1": 1}), (rest_id, THAI, {"TEE-1": 2})]


def test_partial_request_naming_everything_that_remains_splits_nothing(sides):
    order = sides.order()
    fo = fo_of(order, "acme")
    everything = [{"id": line["id"], "quantity": line["remaining_quantity"]} for line in fo["line_items"]]

    body = sides.act(fo["id"], "fulfillment_request", {"line_items": everything})

    assert body["unsubmitted_fulfillment_order"] is None
    assert quantities(body["submitted_fulfillment_order"]) == {"TEE-1": 2, "MUG-1": 1}
    assert len(sides.read_order(order["id"])["fulfillment_orders"]) == 2


BAD_REQUEST_LINES = {
    "more than remains": (lambda order: [{"id": line_of(fo_of(order, "acme"), "TEE-1")["id"],
                                          "quantity": 3}], "line_items.0.quantity"),
    "a line of another FO": (lambda order: [{"id": fo_of(order, None)["line_items"][0]["id"],
                                             "quantity": 1}], "line_items.0.id"),
    "a line twice": (lambda order: [{"id": line_of(fo_of(order, "acme"), "TEE-1")["id"],
                                     "quantity": 1}] * 2, "line_items.1.id"),
}


@pytest.mark.parametrize("case", BAD_REQUEST_LINES)
def test_request_naming_bad_lines_is_422_naming_the_field_and_changes_nothing(sides, case):
    order = sides.order()
    fo = fo_of(order, "acme")
    lines, field = BAD_REQUEST_LINES[case]
    events = len(sides.timeline(order["id"]))

    body = sides.act(fo["id"], "fulfillment_request", {"line_items": lines(order)}, status=422)

    assert body["code"] == "validation_failed"
    assert field in body["errors"], body["errors"]
    assert_nothing_changed(sides, order["id"], fo, events)
    assert len(sides.read_order(order["id"])["fulfillment_orders"]) == 2


# ---- withdraw -----------------------------------------------------------------------------


def test_withdrawing_a_submitted_request_reopens_the_fo_and_tells_the_service(sides):
    order, fo_id = submitted_order(sides, message=THAI)
    sides.drain()
    request_id = sides.fo(fo_id)["merchant_requests"][0]["id"]
    events = len(sides.timeline(order["id"]))

    fo = sides.act(fo_id, "cancel", {"message": EMOJI})

    assert state(fo) == ("open", "unsubmitted")
    assert set(fo["supported_actions"]) == OPEN_ACTIONS
    assert requests_of(fo) == [("fulfillment_request", "withdrawn", THAI, None)]
    assert sides.read_order(order["id"])["fulfillment_status"] == "unfulfilled"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"], event["fulfillment_order_id"]) == (
        "fulfillment_request.withdrawn", "merchant", EMOJI, fo_id)
    assert sides.deliver() == 1
    [withdrawn] = sides.sent("fulfillment_request.withdrawn")
    assert withdrawn["data"] == {"request_id": request_id, "fulfillment_order_id": fo_id,
                                 "message": EMOJI}


@pytest.mark.parametrize("request_id", [False, True], ids=["without request_id", "naming the request"])
def test_late_accept_after_withdrawal_is_409(sides, request_id):
    order, fo_id = withdrawn_order(sides)
    fo, events = snapshot(sides, order["id"], fo_id)
    data = {"request_id": fo["merchant_requests"][0]["id"]} if request_id else {}

    body = sides.tell("acme", "fulfillment_request.accepted", status=409, fulfillment_order_id=fo_id,
                      **data)

    assert body["code"] == "invalid_transition"
    assert state(body["fulfillment_order"]) == ("open", "unsubmitted")
    assert_nothing_changed(sides, order["id"], fo, events)


def test_a_new_request_after_withdrawal_is_a_new_request_and_the_old_one_is_stale(sides):
    order, fo_id = withdrawn_order(sides)
    old_id = sides.fo(fo_id)["merchant_requests"][0]["id"]

    fo = sides.act(fo_id, "fulfillment_request", {"message": NOTE})["submitted_fulfillment_order"]

    new_id = fo["merchant_requests"][1]["id"]
    assert new_id != old_id
    assert [r["status"] for r in fo["merchant_requests"]] == ["withdrawn", "submitted"]
    stale = sides.tell("acme", "fulfillment_request.accepted", status=409, fulfillment_order_id=fo_id,
                       request_id=old_id)
    assert state(stale["fulfillment_order"]) == ("in_progress", "submitted")
    sides.tell("acme", "fulfillment_request.accepted", fulfillment_order_id=fo_id, request_id=new_id)
    assert state(sides.fo(fo_id)) == ("in_progress", "accepted")


def test_withdrawing_an_accepted_request_is_409(sides):
    order, fo_id = accepted_order(sides)
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, "cancel", status=409)

    assert body["code"] == "invalid_transition"
    assert_nothing_changed(sides, order["id"], fo, events)


# ---- request cancellation -----------------------------------------------------------------


@pytest.mark.parametrize("flow", [accepted_order, cancellation_rejected_order])
def test_cancellation_request_asks_the_service_to_cancel_an_accepted_request(sides, flow):
    order, fo_id = flow(sides)
    sides.drain()
    events = len(sides.timeline(order["id"]))

    fo = sides.act(fo_id, "cancellation_request", {"message": NOTE})

    assert state(fo) == ("in_progress", "cancellation_requested")
    assert set(fo["supported_actions"]) == {"revert_to_unfulfilled", "send_message"}
    cancellation = fo["merchant_requests"][-1]
    assert (cancellation["kind"], cancellation["status"], cancellation["message"]) == (
        "cancellation_request", "submitted", NOTE)
    assert fo["merchant_requests"][0]["kind"] == "fulfillment_request"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == (
        "cancellation_request.submitted", "merchant", NOTE)
    assert sides.deliver() == 1
    [envelope] = sides.sent("cancellation_request.submitted")[-1:]
    assert envelope["data"] == {"request_id": cancellation["id"], "fulfillment_order_id": fo_id,
                                "message": NOTE}


def test_cancellation_request_on_a_submitted_request_is_409_withdraw_instead(sides):
    order, fo_id = submitted_order(sides)
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, "cancellation_request", {"message": THAI}, status=409)

    assert body["code"] == "invalid_transition"
    assert_nothing_changed(sides, order["id"], fo, events)


# ---- revert -------------------------------------------------------------------------------


def test_revert_takes_back_the_whole_fo_and_reminds_to_check_inventory(sides):
    order, fo_id = cancellation_requested_order(sides)
    sides.drain()
    events = len(sides.timeline(order["id"]))

    body = sides.act(fo_id, "revert", {"message": NOTE})

    fo = body["fulfillment_order"]
    assert (fo["id"], *state(fo)) == (fo_id, "open", "unsubmitted")
    assert quantities(fo) == {"TEE-1": 2, "MUG-1": 1}
    assert set(fo["supported_actions"]) == OPEN_ACTIONS
    assert body["warnings"] and any("inventory" in warning.lower() for warning in body["warnings"])
    assert [r["kind"] for r in fo["merchant_requests"]] == ["fulfillment_request", "cancellation_request"]
    assert sides.read_order(order["id"])["fulfillment_status"] == "unfulfilled"
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"], event["fulfillment_order_id"]) == (
        "fulfillment_order.reverted", "merchant", NOTE, fo_id)
    assert "inventory" in (str(event["message"]) + str(event["data"])).lower()
    assert sides.deliver() == 1
    [envelope] = sides.sent("fulfillment_order.reverted")
    assert (envelope["data"]["fulfillment_order_id"], envelope["data"]["message"]) == (fo_id, NOTE)


def test_revert_of_some_lines_moves_only_those_quantities_to_a_new_unsubmitted_fo(sides):
    order, fo_id = cancellation_requested_order(sides)
    sides.drain()
    tee = line_of(sides.fo(fo_id), "TEE-1")
    events = len(sides.timeline(order["id"]))

    body = sides.act(fo_id, "revert", {"message": THAI,
                                       "line_items": [{"id": tee["id"], "quantity": 1}]})

    moved = body["fulfillment_order"]
    assert moved["id"] != fo_id
    assert (moved["service"], *state(moved)) == ("acme", "open", "unsubmitted")
    assert quantities(moved) == {"TEE-1": 1}
    assert any("inventory" in warning.lower() for warning in body["warnings"])
    kept = sides.fo(fo_id)
    assert state(kept) == ("in_progress", "cancellation_requested")
    assert quantities(kept) == {"TEE-1": 1, "MUG-1": 1}
    assert [r["status"] for r in kept["merchant_requests"]] == ["accepted", "submitted"]
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == (
        "fulfillment_order.reverted", "merchant", THAI)
    sides.drain()
    [envelope] = sides.sent("fulfillment_order.reverted")
    assert (envelope["data"]["fulfillment_order_id"], envelope["data"]["message"]) == (fo_id, THAI)
    # the service can still settle what it kept
    sides.tell("acme", "cancellation_request.accepted", fulfillment_order_id=fo_id)
    assert state(sides.fo(fo_id)) == ("open", "cancellation_accepted")


def test_revert_naming_more_than_remains_is_422_and_changes_nothing(sides):
    order, fo_id = cancellation_requested_order(sides)
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, "revert", {"line_items": [{"id": line_of(fo, "MUG-1")["id"], "quantity": 2}]},
                     status=422)

    assert "line_items.0.quantity" in body["errors"]
    assert_nothing_changed(sides, order["id"], fo, events)
    assert len(sides.read_order(order["id"])["fulfillment_orders"]) == 2


@pytest.mark.parametrize("flow", [submitted_order, accepted_order, cancellation_rejected_order])
def test_revert_before_a_cancellation_was_requested_is_409(sides, flow):
    order, fo_id = flow(sides)
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, "revert", {"message": THAI}, status=409)

    assert body["code"] == "invalid_transition"
    assert_nothing_changed(sides, order["id"], fo, events)


# ---- messages and mark as fulfilled -------------------------------------------------------


@pytest.mark.parametrize("svc", ["acme", "oldco"])
def test_message_goes_to_the_service_and_onto_the_timeline_verbatim(sides, svc):
    order, fo_id = submitted_order(sides, svc)
    sides.drain()
    events = len(sides.timeline(order["id"]))

    fo = sides.act(fo_id, "messages", {"message": NOTE})

    assert state(fo) == ("in_progress", "submitted")
    event = one_new_event(sides, order["id"], events)
    assert (event["kind"], event["actor"], event["message"]) == ("merchant.message", "merchant", NOTE)
    assert sides.deliver() == 1
    [envelope] = sides.sent("merchant.message")
    assert envelope["data"] == {"fulfillment_order_id": fo_id, "message": NOTE}


@pytest.mark.parametrize("flow", [submitted_order, accepted_order, cancellation_requested_order,
                                  cancellation_rejected_order])
def test_mark_fulfilled_while_the_service_has_the_request_is_409_cancel_the_request_first(sides, flow):
    order, fo_id = flow(sides)
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, "mark_fulfilled", {"tracking": {"number": "1Z"}}, status=409)

    assert body["code"] == "invalid_transition"
    assert "cancel the request first" in body["detail"].lower()
    assert_nothing_changed(sides, order["id"], fo, events)
    assert sides.read_order(order["id"])["fulfillments"] == []


# ---- legacy workflow ----------------------------------------------------------------------


LEGACY_REFUSED = {
    "cancel": {"message": THAI},
    "cancellation_request": {"message": THAI},
    "revert": {"message": THAI},
}


@pytest.mark.parametrize("action", LEGACY_REFUSED)
@pytest.mark.parametrize("accepted", [False, True], ids=["submitted", "accepted"])
def test_legacy_request_cannot_be_withdrawn_cancelled_or_reverted_contact_the_service(
    sides, action, accepted
):
    order, fo_id = accepted_order(sides, "oldco") if accepted else submitted_order(sides, "oldco")
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, action, LEGACY_REFUSED[action], status=409)

    assert body["code"] == "invalid_transition"
    assert "contact" in body["detail"].lower() and "service" in body["detail"].lower()
    assert_nothing_changed(sides, order["id"], fo, events)


def test_legacy_mark_fulfilled_while_the_service_has_the_request_is_409(sides):
    order, fo_id = submitted_order(sides, "oldco")
    fo, events = snapshot(sides, order["id"], fo_id)

    body = sides.act(fo_id, "mark_fulfilled", status=409)

    assert body["code"] == "invalid_transition"
    assert_nothing_changed(sides, order["id"], fo, events)


def test_legacy_shipment_without_accept_is_an_implicit_accept(sides):
    order, fo_id = submitted_order(sides, "oldco", message=THAI)
    events = len(sides.timeline(order["id"]))

    body = ship(sides, "oldco", fo_id, tracking={"number": "LEG-1", "company": "Kerry", "url": None},
                external_id="oldco-1")

    assert body["status"] == "applied"
    assert state(body["fulfillment_order"]) == ("closed", "accepted")
    assert body["fulfillment"]["created_by"] == "service"
    assert body["fulfillment"]["tracking"]["number"] == "LEG-1"
    assert requests_of(sides.fo(fo_id)) == [("fulfillment_request", "accepted", THAI, None)]
    accept, shipment = new_events(sides, order["id"], events)
    assert (accept["kind"], accept["actor"]) == ("fulfillment_request.accepted", "service")
    assert (shipment["kind"], shipment["actor"]) == ("fulfillment.created", "service")
    shipped = sides.read_order(order["id"])
    assert {line["sku"]: line["fulfilled_quantity"] for line in shipped["line_items"]} == {
        "TEE-1": 2, "MUG-1": 1, "CARD": 0}


def test_legacy_order_can_be_cancelled_normally_before_a_request_was_sent(sides):
    order = sides.order("oldco")
    fo_id = fo_of(order, "oldco")["id"]
    assert set(sides.fo(fo_id)["supported_actions"]) == OPEN_ACTIONS

    response = sides.api.post(f"/orders/{order['id']}/cancel", {"reason": THAI})

    assert response.status_code == 200, response.body
    assert "cancelled" in response.body["order_status"]
    assert sides.fo(fo_id)["status"] == "cancelled"
    assert sides.deliver() == 0


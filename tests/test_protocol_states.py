"""States reached through the protocol (SPEC 2.3, 6): what `supported_actions` lists in each,
that every listed action succeeds and no other does, one timeline event per state change, and
`merchant_requests` that keep every request with its outcome."""

import pytest
from test_protocol import (
    EMOJI,
    INCOMPLETE_ACTIONS,
    NOTE,
    OPEN_ACTIONS,
    SEEN_OPEN_ACTIONS,
    THAI,
    Sides,
    accepted_order,
    cancellation_accepted_order,
    cancellation_rejected_order,
    cancellation_requested_order,
    incomplete_order,
    one_new_event,
    rejected_order,
    requests_of,
    ship,
    shipped_order,
    state,
    submitted_order,
    withdrawn_order,
)


@pytest.fixture
def sides(api, service, deliver, create_order):
    """Both sides of the protocol."""
    return Sides(api, service, deliver, create_order)


# state: (flow, (status, request_status) or status alone, supported actions)
STATES = {
    "new submitted": (submitted_order, ("in_progress", "submitted"),
                      {"cancel_fulfillment_request", "send_message"}),
    "new accepted": (accepted_order, ("in_progress", "accepted"), {"request_cancellation", "send_message"}),
    "new rejected": (rejected_order, ("open", "rejected"), SEEN_OPEN_ACTIONS),
    "new withdrawn": (withdrawn_order, ("open", "unsubmitted"), OPEN_ACTIONS),
    "new cancellation_requested": (cancellation_requested_order, ("in_progress", "cancellation_requested"),
                                   {"revert_to_unfulfilled", "send_message"}),
    "new cancellation_accepted": (cancellation_accepted_order, ("open", "cancellation_accepted"),
                                  SEEN_OPEN_ACTIONS),
    "new cancellation_rejected": (cancellation_rejected_order, ("in_progress", "cancellation_rejected"),
                                  {"request_cancellation", "send_message"}),
    "new incomplete": (incomplete_order, ("incomplete", "closed"), INCOMPLETE_ACTIONS),
    "new shipped": (shipped_order, "closed", {"send_message"}),
    "legacy submitted": (lambda sides: submitted_order(sides, "oldco"), ("in_progress", "submitted"),
                         {"send_message"}),
    "legacy accepted": (lambda sides: accepted_order(sides, "oldco"), ("in_progress", "accepted"),
                        {"send_message"}),
    "legacy rejected": (lambda sides: rejected_order(sides, "oldco"), ("open", "rejected"),
                        SEEN_OPEN_ACTIONS),
    "legacy incomplete": (lambda sides: incomplete_order(sides, "oldco"), ("incomplete", "closed"),
                          INCOMPLETE_ACTIONS),
    "legacy shipped": (lambda sides: shipped_order(sides, "oldco"), "closed", {"send_message"}),
}

# action: (path, body, success status)
ACTIONS = {
    "request_fulfillment": ("fulfillment_request", {"message": NOTE}, 200),
    "cancel_fulfillment_request": ("cancel", {"message": NOTE}, 200),
    "request_cancellation": ("cancellation_request", {"message": NOTE}, 200),
    "revert_to_unfulfilled": ("revert", {"message": NOTE}, 200),
    "mark_as_fulfilled": ("mark_fulfilled", {"tracking": {"number": "M-1"}}, 201),
    "hold": ("hold", {"reason": "other", "note": NOTE}, 200),
    "release_hold": ("release_hold", {}, 200),
    "open": ("open", {}, 200),
    "send_message": ("messages", {"message": NOTE}, 200),
}


@pytest.mark.parametrize("name", STATES)
def test_supported_actions_are_what_the_table_allows_in_each_state(sides, name):
    flow, expected_state, expected_actions = STATES[name]
    _, fo_id = flow(sides)

    fo = sides.fo(fo_id)

    assert (state(fo) if isinstance(expected_state, tuple) else fo["status"]) == expected_state
    assert set(fo["supported_actions"]) == expected_actions
    assert len(fo["supported_actions"]) == len(expected_actions)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("name", STATES)
def test_an_action_succeeds_exactly_when_it_is_listed(sides, name, action):
    _, fo_id = STATES[name][0](sides)
    sides.drain()
    before = sides.fo(fo_id)
    path, body, success = ACTIONS[action]

    response = sides.api.post(f"/fulfillment_orders/{fo_id}/{path}", body)

    if action in before["supported_actions"]:
        assert response.status_code == success, response.body
    else:
        assert response.status_code == 409, response.body
        assert response.body["code"] == "invalid_transition"
        assert sides.fo(fo_id)["merchant_requests"] == before["merchant_requests"]
        assert state(sides.fo(fo_id)) == state(before)
        assert sides.drain() == 0


# ---- timeline -----------------------------------------------------------------------------


def step(sides, fo_id, kind, actor, message, do):
    """Run one state change and assert it wrote exactly one event, with its actor and message."""
    order_id = sides.fo(fo_id)["order_id"]
    seen = len(sides.timeline(order_id))
    do()
    event = one_new_event(sides, order_id, seen)
    assert (event["kind"], event["actor"], event["message"], event["fulfillment_order_id"]) == (
        kind, actor, message, fo_id)


def test_every_state_change_of_a_cancelled_and_rerequested_fo_writes_one_event(sides):
    order = sides.order()
    fo_id = next(fo["id"] for fo in order["fulfillment_orders"] if fo["service"] == "acme")

    def act(action, body=None):
        return lambda: sides.act(fo_id, action, body)

    def tell(event_type, **data):
        return lambda: sides.tell("acme", event_type, fulfillment_order_id=fo_id, **data)

    step(sides, fo_id, "fulfillment_request.submitted", "merchant", THAI,
         act("fulfillment_request", {"message": THAI}))
    step(sides, fo_id, "fulfillment_request.rejected", "service", EMOJI,
         tell("fulfillment_request.rejected", reason="invalid_sku", message=EMOJI))
    step(sides, fo_id, "fulfillment_request.submitted", "merchant", NOTE,
         act("fulfillment_request", {"message": NOTE}))
    step(sides, fo_id, "fulfillment_request.withdrawn", "merchant", None, act("cancel"))
    step(sides, fo_id, "fulfillment_request.submitted", "merchant", None, act("fulfillment_request"))
    step(sides, fo_id, "fulfillment_request.accepted", "service", THAI,
         tell("fulfillment_request.accepted", message=THAI))
    step(sides, fo_id, "cancellation_request.submitted", "merchant", EMOJI,
         act("cancellation_request", {"message": EMOJI}))
    step(sides, fo_id, "cancellation_request.rejected", "service", NOTE,
         tell("cancellation_request.rejected", message=NOTE))
    step(sides, fo_id, "cancellation_request.submitted", "merchant", THAI,
         act("cancellation_request", {"message": THAI}))
    step(sides, fo_id, "cancellation_request.accepted", "service", EMOJI,
         tell("cancellation_request.accepted", message=EMOJI))
    step(sides, fo_id, "fulfillment_request.submitted", "merchant", None, act("fulfillment_request"))
    step(sides, fo_id, "fulfillment_request.accepted", "service", None, tell("fulfillment_request.accepted"))
    step(sides, fo_id, "fulfillment.created", "service", THAI,
         lambda: ship(sides, "acme", fo_id, {"TEE-1": 1}, message=THAI))
    step(sides, fo_id, "fulfillment_order.closed", "service", NOTE,
         tell("fulfillment_order.closed", message=NOTE))
    step(sides, fo_id, "fulfillment_request.submitted", "merchant", EMOJI,
         act("fulfillment_request", {"message": EMOJI}))
    step(sides, fo_id, "fulfillment_request.accepted", "service", None, tell("fulfillment_request.accepted"))
    step(sides, fo_id, "fulfillment.created", "service", None, lambda: ship(sides, "acme", fo_id))

    assert sides.fo(fo_id)["status"] == "closed"
    events = sides.timeline(order["id"])
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert events[0]["kind"] == "order.created"


def test_revert_and_merchant_shipment_each_write_one_event(sides):
    order, fo_id = cancellation_requested_order(sides)

    step(sides, fo_id, "fulfillment_order.reverted", "merchant", THAI,
         lambda: sides.act(fo_id, "revert", {"message": THAI}))
    step(sides, fo_id, "fulfillment.created", "merchant", None,
         lambda: sides.act(fo_id, "mark_fulfilled", {"line_items": None}, status=201))
    assert sides.fo(fo_id)["status"] == "closed"


def test_refused_actions_and_webhooks_write_no_event(sides):
    order, fo_id = accepted_order(sides)
    seen = len(sides.timeline(order["id"]))

    sides.act(fo_id, "cancel", status=409)
    sides.act(fo_id, "revert", status=409)
    sides.act(fo_id, "mark_fulfilled", status=409)
    sides.tell("acme", "fulfillment_request.accepted", status=409, fulfillment_order_id=fo_id)
    sides.tell("acme", "cancellation_request.accepted", status=409, fulfillment_order_id=fo_id)

    assert len(sides.timeline(order["id"])) == seen


def test_delivering_messages_writes_no_event(sides):
    order, fo_id = accepted_order(sides)
    sides.act(fo_id, "messages", {"message": THAI})
    seen = len(sides.timeline(order["id"]))

    assert sides.drain() == 2

    assert len(sides.timeline(order["id"])) == seen


# ---- merchant requests --------------------------------------------------------------------


def test_merchant_requests_keep_every_request_with_its_outcome(sides):
    order = sides.order()
    fo_id = next(fo["id"] for fo in order["fulfillment_orders"] if fo["service"] == "acme")

    sides.act(fo_id, "fulfillment_request", {"message": THAI})
    sides.tell("acme", "fulfillment_request.rejected", fulfillment_order_id=fo_id, reason="other",
               message="no stock")
    sides.act(fo_id, "fulfillment_request", {"message": EMOJI})
    sides.act(fo_id, "cancel")
    sides.act(fo_id, "fulfillment_request", {"message": NOTE})
    sides.tell("acme", "fulfillment_request.accepted", fulfillment_order_id=fo_id, message="on it")
    sides.act(fo_id, "cancellation_request", {"message": "stop 1"})
    sides.tell("acme", "cancellation_request.rejected", fulfillment_order_id=fo_id, message="packed")
    sides.act(fo_id, "cancellation_request", {"message": "stop 2"})
    sides.tell("acme", "cancellation_request.accepted", fulfillment_order_id=fo_id, message="stopped")
    sides.act(fo_id, "fulfillment_request", {"message": "last try"})

    fo = sides.fo(fo_id)
    assert requests_of(fo) == [
        ("fulfillment_request", "rejected", THAI, "no stock"),
        ("fulfillment_request", "withdrawn", EMOJI, None),
        ("fulfillment_request", "cancelled", NOTE, "on it"),
        ("cancellation_request", "rejected", "stop 1", "packed"),
        ("cancellation_request", "accepted", "stop 2", "stopped"),
        ("fulfillment_request", "submitted", "last try", None),
    ]
    ids = [request["id"] for request in fo["merchant_requests"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    answered = [request["answered_at"] is not None for request in fo["merchant_requests"]]
    assert answered == [True, False, True, True, True, False]
    assert all(request["sent_at"] for request in fo["merchant_requests"])


def test_merchant_requests_survive_a_revert_and_stay_with_the_fo_the_service_knows(sides):
    order, fo_id = cancellation_requested_order(sides)

    sides.act(fo_id, "revert", {"message": THAI})
    sides.act(fo_id, "fulfillment_request", {"message": EMOJI})

    kinds = [(kind, message) for kind, _, message, _ in requests_of(sides.fo(fo_id))]
    assert kinds == [("fulfillment_request", None), ("cancellation_request", None),
                     ("fulfillment_request", EMOJI)]

"""An order's and a return's `supported_actions` (SPEC 3.1), and that the operations agree with them."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import fo_of

# SPEC 3.1's vocabulary, in its order.
ORDER_ACTIONS = ("edit", "cancel", "archive", "unarchive", "mark_as_paid", "capture", "refund",
                 "void", "create_return", "add_comment")
LATER = (datetime.now(UTC) + timedelta(days=7)).isoformat()
EARLIER = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def ok(response, status=200):
    assert response.status_code == status, response.body
    return response.body


def card_line(order):
    return next(line for line in order["line_items"] if line["sku"] == "CARD")


def ship_card(api, order):
    ok(api.post(f"/fulfillment_orders/{fo_of(order, None)['id']}/mark_fulfilled", {}), 201)


def open_return(api, order):
    return ok(api.post(f"/orders/{order['id']}/returns", {
        "requested_by": "customer",
        "line_items": [{"line_item_id": card_line(order)["id"], "quantity": 1}],
    }), 201)


def unpaid(api, create_order):
    return create_order()


def authorized(api, create_order):
    return create_order(transactions=[{"kind": "authorization", "amount": "45.50",
                                       "expires_at": LATER}])


def authorization_expired(api, create_order):
    return create_order(transactions=[{"kind": "authorization", "amount": "45.50",
                                       "expires_at": EARLIER}])


def partly_captured(api, create_order):
    return create_order(transactions=[{"kind": "authorization", "amount": "45.50"},
                                      {"kind": "capture", "amount": "40.00"}])


def partially_paid(api, create_order):
    return create_order(transactions=[{"kind": "sale", "amount": "10.00"}])


def paid(api, create_order):
    return create_order(transactions=[{"kind": "sale", "amount": "45.50"}])


def partially_refunded(api, create_order):
    return create_order(transactions=[{"kind": "sale", "amount": "45.50"},
                                      {"kind": "refund", "amount": "5.00"}])


def refunded(api, create_order):
    return create_order(transactions=[{"kind": "sale", "amount": "45.50"},
                                      {"kind": "refund", "amount": "45.50"}])


def voided(api, create_order):
    return create_order(transactions=[{"kind": "authorization", "amount": "45.50"},
                                      {"kind": "void"}])


def cancelled(api, create_order):
    order = authorized(api, create_order)
    return ok(api.post(f"/orders/{order['id']}/cancel", {}))


def cancelled_paid_not_refunded(api, create_order):
    order = paid(api, create_order)
    return ok(api.post(f"/orders/{order['id']}/cancel", {"refund": False}))


def cancelled_and_archived(api, create_order):
    order = cancelled(api, create_order)
    return ok(api.post(f"/orders/{order['id']}/archive", {}))


def archived(api, create_order):
    order = create_order()
    return ok(api.post(f"/orders/{order['id']}/archive", {}))


def locked_by_a_request(api, create_order):
    order = paid(api, create_order)
    ok(api.post(f"/fulfillment_orders/{fo_of(order, 'acme')['id']}/fulfillment_request", {}))
    return order


def with_a_fulfilled_line(api, create_order):
    order = create_order()
    ship_card(api, order)
    return order


def fulfilled_line_returned(api, create_order):
    order = with_a_fulfilled_line(api, create_order)
    open_return(api, order)
    return order


def return_declined(api, create_order):
    order = with_a_fulfilled_line(api, create_order)
    ok(api.post(f"/returns/{open_return(api, order)['id']}/decline", {}))
    return order


STATES = {
    # state: the actions it offers, written from SPEC 2.2, 2.3 and 3.1
    "unpaid": {"edit", "cancel", "archive", "mark_as_paid", "add_comment"},
    "authorized": {"edit", "cancel", "archive", "mark_as_paid", "capture", "void", "add_comment"},
    "authorization_expired": {"edit", "cancel", "archive", "mark_as_paid", "void", "add_comment"},
    "partly_captured": {"edit", "cancel", "archive", "mark_as_paid", "capture", "refund", "void",
                        "add_comment"},
    "partially_paid": {"edit", "cancel", "archive", "mark_as_paid", "refund", "add_comment"},
    "paid": {"edit", "cancel", "archive", "refund", "add_comment"},
    "partially_refunded": {"edit", "cancel", "archive", "refund", "add_comment"},
    "refunded": {"edit", "cancel", "archive", "add_comment"},
    "voided": {"edit", "cancel", "archive", "mark_as_paid", "add_comment"},
    "cancelled": {"archive", "add_comment"},
    "cancelled_paid_not_refunded": {"archive", "refund", "add_comment"},
    "cancelled_and_archived": {"unarchive", "add_comment"},
    "archived": {"edit", "cancel", "unarchive", "mark_as_paid", "add_comment"},
    "locked_by_a_request": {"archive", "add_comment"},
    "with_a_fulfilled_line": {"edit", "cancel", "archive", "mark_as_paid", "create_return",
                              "add_comment"},
    "fulfilled_line_returned": {"edit", "cancel", "archive", "mark_as_paid", "add_comment"},
    "return_declined": {"edit", "cancel", "archive", "mark_as_paid", "create_return",
                        "add_comment"},
}
SETUPS = {name: globals()[name] for name in STATES}


@pytest.mark.parametrize("state", list(STATES))
def test_order_offers_exactly_the_actions_of_its_state(api, create_order, state):
    order = SETUPS[state](api, create_order)

    read = ok(api.get(f"/orders/{order['id']}"))

    assert read["supported_actions"] == [a for a in ORDER_ACTIONS if a in STATES[state]]
    listed = ok(api.get("/orders?order_status=open,archived,cancelled&limit=250"))["orders"]
    assert next(o for o in listed if o["id"] == order["id"])["supported_actions"] == read[
        "supported_actions"]


def test_intake_answers_the_supported_actions_reading_answers(api):
    created = ok(api.post("/orders", {"currency": "USD", "line_items": [
        {"title": "x", "quantity": 1, "price": "1.00"}], "transactions": [
        {"kind": "authorization", "amount": "1.00"}]}), 201)
    assert created["supported_actions"] == [
        "edit", "cancel", "archive", "mark_as_paid", "capture", "void", "add_comment"]
    assert created["supported_actions"] == ok(api.get(f"/orders/{created['id']}"))[
        "supported_actions"]


def test_an_order_of_nothing_to_pay_offers_no_payment(api):
    created = ok(api.post("/orders", {"currency": "USD", "line_items": [
        {"title": "free", "quantity": 1, "price": "0.00"}]}), 201)
    assert created["supported_actions"] == ["edit", "cancel", "archive", "add_comment"]


def test_locked_by_names_the_fulfillment_order_whose_request_is_in_progress(api, create_order):
    order = create_order()
    assert order["locked_by_fulfillment_order_id"] is None
    acme = fo_of(order, "acme")["id"]

    ok(api.post(f"/fulfillment_orders/{acme}/fulfillment_request", {}))
    assert ok(api.get(f"/orders/{order['id']}"))["locked_by_fulfillment_order_id"] == acme
    ok(api.post(f"/fulfillment_orders/{acme}/cancel", {}))
    assert ok(api.get(f"/orders/{order['id']}"))["locked_by_fulfillment_order_id"] is None


def attempt(api, order, action):
    """Try `action` on the order through the API; return the response."""
    path = f"/orders/{order['id']}"
    outstanding = Decimal(order["total_price"]) - Decimal(order["amount_captured"])
    attempts = {
        "edit": lambda: api.patch(path, {"email": "someone@example.com"}),
        "cancel": lambda: api.post(f"{path}/cancel", {}),
        "archive": lambda: api.post(f"{path}/archive", {}),
        "unarchive": lambda: api.post(f"{path}/unarchive", {}),
        "mark_as_paid": lambda: api.post(f"{path}/transactions", {
            "kind": "sale", "amount": f"{max(outstanding, Decimal(0)):.2f}"}),
        "capture": lambda: api.post(f"{path}/transactions", {"kind": "capture", "amount": "0.01"}),
        "refund": lambda: api.post(f"{path}/transactions", {"kind": "refund", "amount": "0.01"}),
        "void": lambda: api.post(f"{path}/transactions", {"kind": "void"}),
        "create_return": lambda: api.post(f"{path}/returns", {
            "requested_by": "merchant",
            "line_items": [{"line_item_id": card_line(order)["id"], "quantity": 1}]}),
    }
    return attempts[action]()


# Archiving an archived order (or unarchiving an open one) changes nothing and is not an error:
# it is not offered, but it is not refused either.
IDEMPOTENT = {"archive", "unarchive"}
AGREEMENT_CASES = [
    pytest.param(state, action, id=f"{state}-{action}")
    for state in STATES
    for action in ORDER_ACTIONS
    if action != "add_comment"
]


@pytest.mark.parametrize(("state", "action"), AGREEMENT_CASES)
def test_an_offered_action_succeeds_and_one_not_offered_is_refused(api, create_order, state, action):
    order = ok(api.get(f"/orders/{SETUPS[state](api, create_order)['id']}"))

    response = attempt(api, order, action)

    if action in order["supported_actions"]:
        assert response.status_code in (200, 201), response.body
    elif action not in IDEMPOTENT:
        assert response.status_code in (409, 422), response.body


@pytest.mark.parametrize(("action", "code"), [
    ("edit", "order_locked"), ("cancel", "order_locked"), ("refund", "order_locked"),
])
def test_a_request_in_progress_refuses_edits_refunds_and_cancellation_naming_it(
    api, create_order, action, code
):
    order = ok(api.get(f"/orders/{locked_by_a_request(api, create_order)['id']}"))

    refused = attempt(api, order, action)

    assert (refused.status_code, refused.body["code"]) == (409, code)
    assert refused.body["fulfillment_order_id"] == order["locked_by_fulfillment_order_id"]


RETURN_STATES = {
    # how the return got there: its status and the actions it offers (SPEC 2.5)
    "requested": ([], ["approve", "decline"]),
    "approved": (["approve"], ["complete_inspection", "close"]),
    "inspected": (["approve", "complete_inspection"], ["close"]),
    "closed": (["approve", "close"], []),
    "declined": (["decline"], []),
}


@pytest.mark.parametrize("state", list(RETURN_STATES))
def test_return_offers_the_actions_of_its_status(api, create_order, state):
    steps, offered = RETURN_STATES[state]
    order = with_a_fulfilled_line(api, create_order)
    return_ = open_return(api, order)
    for step in steps:
        return_ = ok(api.post(f"/returns/{return_['id']}/{step}", {}))

    assert return_["supported_actions"] == offered
    [listed] = ok(api.get(f"/orders/{order['id']}"))["returns"]
    assert listed["supported_actions"] == offered
    for action in ("approve", "decline", "complete_inspection", "close"):
        if action not in offered:
            refused = api.post(f"/returns/{return_['id']}/{action}", {})
            assert (refused.status_code, refused.body["code"]) == (409, "invalid_transition")

"""Transactions over HTTP: authorization, capture, sale, refund and void, every refusal, and the
payment status they add up to (SPEC 2.2)."""

from datetime import timedelta

import pytest
from conftest import fo_of

TX_FIELDS = {"id", "order_id", "kind", "amount", "expires_at", "return_id", "created_at"}


def iso(moment):
    return moment.isoformat() + "Z"


def auth(amount="45.50", expires_at=None):
    return {"kind": "authorization", "amount": amount, "expires_at": expires_at}


def capture(amount):
    return {"kind": "capture", "amount": amount}


def sale(amount="45.50"):
    return {"kind": "sale", "amount": amount}


def refund(amount):
    return {"kind": "refund", "amount": amount}


VOID = {"kind": "void"}


def get_order(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def add(api, order, body, status=201):
    response = api.post(f"/orders/{order['id']}/transactions", body)
    assert response.status_code == status, response.body
    return response.body


def floats_in(value):
    """Yield every float in a JSON document."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats_in(item)


# ---- happy paths --------------------------------------------------------------------------


def test_authorization_is_201_with_the_transaction_and_makes_the_order_authorized(
    api, clock, create_order
):
    order = create_order()
    expires = iso(clock.now + timedelta(days=7))

    tx = add(api, order, auth("45.50", expires))

    assert set(tx) >= TX_FIELDS
    assert (tx["order_id"], tx["kind"], tx["amount"], tx["expires_at"]) == (
        order["id"], "authorization", "45.50", expires)
    after = get_order(api, order["id"])
    assert after["payment_status"] == "authorized"
    assert after["payment_markers"] == []
    assert (after["amount_authorized"], after["amount_captured"]) == ("45.50", "0.00")
    assert [t["id"] for t in after["transactions"]] == [tx["id"]]


def test_captures_make_the_order_partially_paid_then_paid(api, create_order):
    order = create_order()
    add(api, order, auth())

    add(api, order, capture("20.00"))
    partly = get_order(api, order["id"])
    add(api, order, capture("25.50"))
    fully = get_order(api, order["id"])

    assert (partly["payment_status"], partly["amount_captured"]) == ("partially_paid", "20.00")
    assert (fully["payment_status"], fully["amount_captured"]) == ("paid", "45.50")
    assert [t["kind"] for t in fully["transactions"]] == ["authorization", "capture", "capture"]


def test_sale_makes_the_order_paid(api, create_order):
    order = create_order()

    tx = add(api, order, sale())

    assert (tx["kind"], tx["amount"]) == ("sale", "45.50")
    paid = get_order(api, order["id"])
    assert (paid["payment_status"], paid["amount_captured"]) == ("paid", "45.50")


def test_refunds_make_the_order_partially_refunded_then_refunded(api, create_order):
    order = create_order(transactions=[sale()])

    add(api, order, refund("10.00"))
    partly = get_order(api, order["id"])
    add(api, order, refund("35.50"))
    fully = get_order(api, order["id"])

    assert (partly["payment_status"], partly["amount_refunded"]) == ("partially_refunded", "10.00")
    assert (fully["payment_status"], fully["amount_refunded"]) == ("refunded", "45.50")


def test_void_of_an_open_authorization_makes_the_order_voided(api, create_order):
    order = create_order(transactions=[auth()])

    tx = add(api, order, VOID)

    assert tx["kind"] == "void"
    assert get_order(api, order["id"])["payment_status"] == "voided"


def test_each_transaction_writes_one_timeline_event(api, create_order):
    order = create_order()
    counts = [len(api.get(f"/orders/{order['id']}/timeline").body)]
    for body in (auth(), capture("45.50"), refund("5.00")):
        add(api, order, body)
        counts.append(len(api.get(f"/orders/{order['id']}/timeline").body))

    assert counts == [1, 2, 3, 4]


# ---- refusals ------------------------------------------------------------------------------


def _fields(*names):
    return set(names)


STATE = _fields("kind", "amount")  # a refusal that depends on earlier transactions
AMOUNT = _fields("amount")

INVALID_TRANSACTIONS = [
    ("over-capture", [auth()], capture("45.51"), AMOUNT),
    ("over-capture across captures", [auth(), capture("40.00")], capture("5.51"), AMOUNT),
    ("capture beyond a partial authorization", [auth("10.00")], capture("10.01"), AMOUNT),
    ("capture without authorization", [], capture("1.00"), STATE),
    ("capture after void", [auth(), VOID], capture("1.00"), STATE),
    ("over-refund", [sale()], refund("45.51"), AMOUNT),
    ("over-refund across refunds", [sale(), refund("40.00")], refund("5.51"), AMOUNT),
    ("refund with nothing captured", [], refund("1.00"), AMOUNT),
    ("refund of an uncaptured authorization", [auth()], refund("1.00"), AMOUNT),
    ("void of a captured payment", [auth(), capture("45.50")], VOID, STATE),
    ("void of a sale", [sale()], VOID, STATE),
    ("void without authorization", [], VOID, STATE),
    ("void twice", [auth(), VOID], VOID, STATE),
    ("authorization beyond the total", [], auth("45.51"), AMOUNT),
    ("authorizations beyond the total", [auth("40.00")], auth("5.51"), AMOUNT),
    ("sale beyond the total", [sale("45.00")], sale("0.51"), AMOUNT),
    ("negative authorization", [], auth("-1.00"), AMOUNT),
    ("negative sale", [], sale("-0.01"), AMOUNT),
    ("negative capture", [auth()], capture("-5"), AMOUNT),
    ("negative refund", [sale()], refund("-5.00"), AMOUNT),
    ("zero sale", [], sale("0"), AMOUNT),
    ("zero capture", [auth()], capture("0.00"), AMOUNT),
    ("zero refund", [sale()], refund("0.00"), AMOUNT),
    ("three decimals", [], sale("1.001"), AMOUNT),
    ("three decimals on a capture", [auth()], capture("10.125"), AMOUNT),
    ("malformed amount", [], sale("abc"), AMOUNT),
    ("empty amount", [], sale(""), AMOUNT),
    ("comma decimal", [], sale("1,00"), AMOUNT),
    ("currency symbol", [], sale("$5.00"), AMOUNT),
    ("two points", [], sale("1.2.3"), AMOUNT),
    ("hexadecimal", [], sale("0x10"), AMOUNT),
    ("NaN", [], sale("NaN"), AMOUNT),
    ("infinity", [], sale("Infinity"), AMOUNT),
    ("huge exponent", [], sale("1e400"), AMOUNT),
    ("exponent beyond the decimal range", [], sale("1e999999999"), AMOUNT),
    ("amount as a number", [], {"kind": "sale", "amount": 45.5}, AMOUNT),
    ("amount as an integer", [], {"kind": "sale", "amount": 10}, AMOUNT),
    ("amount as a boolean", [], {"kind": "sale", "amount": True}, AMOUNT),
    ("amount as a list", [], {"kind": "sale", "amount": ["1.00"]}, AMOUNT),
    ("missing amount", [], {"kind": "sale"}, AMOUNT),
    ("unknown kind", [], {"kind": "gift", "amount": "1.00"}, _fields("kind")),
    ("missing kind", [], {"amount": "1.00"}, _fields("kind")),
    ("malformed expires_at", [], auth("1.00", "next week"), _fields("expires_at")),
    ("unknown return", [sale()], {**refund("1.00"), "return_id": 999999}, _fields("return_id")),
    ("unknown field", [], {**sale("1.00"), "gateway": "stripe"}, _fields("gateway")),
]


@pytest.mark.parametrize(("setup", "body", "fields"), [case[1:] for case in INVALID_TRANSACTIONS],
                         ids=[case[0] for case in INVALID_TRANSACTIONS])
def test_invalid_transaction_is_422_naming_the_field_and_records_nothing(
    api, create_order, setup, body, fields
):
    order = create_order(transactions=setup)

    response = api.post(f"/orders/{order['id']}/transactions", body)

    assert response.status_code == 422, response.body
    assert response.body["code"] == "validation_failed"
    assert set(response.body["errors"]) & fields, response.body["errors"]
    assert get_order(api, order["id"]) == order


def test_capture_of_an_expired_authorization_is_422(api, clock, create_order):
    order = create_order(transactions=[auth(expires_at=iso(clock.now + timedelta(hours=1)))])
    clock.advance(hours=1, seconds=1)
    expired = get_order(api, order["id"])

    response = api.post(f"/orders/{order['id']}/transactions", capture("10.00"))

    assert expired["payment_status"] == "expired"
    assert response.status_code == 422, response.body
    assert set(response.body["errors"]) & STATE
    assert get_order(api, order["id"]) == expired


def test_capture_just_before_the_authorization_expires_is_accepted(api, clock, create_order):
    order = create_order(transactions=[auth(expires_at=iso(clock.now + timedelta(hours=1)))])
    clock.advance(minutes=59)

    add(api, order, capture("45.50"))

    assert get_order(api, order["id"])["payment_status"] == "paid"


def test_refund_while_an_fo_is_in_progress_is_409_naming_it(api, create_order):
    order = create_order(transactions=[sale()])
    fo_id = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200

    response = api.post(f"/orders/{order['id']}/transactions", refund("5.00"))

    assert response.status_code == 409, response.body
    assert response.body["code"] == "order_locked"
    assert str(fo_id) in response.body["detail"]
    assert get_order(api, order["id"])["amount_refunded"] == "0.00"


def test_transaction_on_an_unknown_order_is_404(api):
    response = api.post("/orders/987654/transactions", sale("1.00"))

    assert response.status_code == 404, response.body
    assert response.body["code"] == "not_found"


# ---- payment status -------------------------------------------------------------------------


# (transactions, payment_due_at offset, authorization expiry offset, hours the clock moves,
#  expected payment_status, expected payment_markers)
PAYMENT_STATUSES = [
    ("nothing", [], None, None, 0, "pending", []),
    ("terms not yet due", [], 48, None, 0, "pending", []),
    ("terms due", [], 1, None, 2, "overdue", []),
    ("authorized without end", ["auth"], None, None, 0, "authorized", []),
    ("authorized for long", ["auth"], None, 24 * 10, 0, "authorized", []),
    ("authorization expiring", ["auth"], None, 24, 0, "authorized", ["expiring"]),
    ("authorization expiring soon after waiting", ["auth"], None, 24 * 3, 26, "authorized",
     ["expiring"]),
    ("authorization expired", ["auth"], None, 1, 2, "expired", []),
    ("expired beats overdue", ["auth"], 1, 1, 2, "expired", []),
    ("authorized beats overdue", ["auth"], 1, None, 2, "authorized", []),
    ("partially paid", ["auth", "capture 20"], None, None, 0, "partially_paid", []),
    ("partially paid with an expired authorization", ["auth", "capture 20"], None, 1, 2,
     "partially_paid", []),
    ("paid by capture", ["auth", "capture all"], None, None, 0, "paid", []),
    ("paid by sale", ["sale"], None, None, 0, "paid", []),
    ("paid beats overdue", ["sale"], 1, None, 2, "paid", []),
    ("partially refunded", ["sale", "refund 5"], None, None, 0, "partially_refunded", []),
    ("refunded", ["sale", "refund all"], None, None, 0, "refunded", []),
    ("voided", ["auth", "void"], None, None, 0, "voided", []),
    ("voided beats overdue", ["auth", "void"], 1, None, 2, "voided", []),
]
STEPS = {
    "auth": lambda expires: auth(expires_at=expires),
    "capture 20": lambda _: capture("20.00"),
    "capture all": lambda _: capture("45.50"),
    "sale": lambda _: sale(),
    "refund 5": lambda _: refund("5.00"),
    "refund all": lambda _: refund("45.50"),
    "void": lambda _: VOID,
}


@pytest.mark.parametrize(
    ("steps", "due_in_hours", "expires_in_hours", "wait_hours", "status", "markers"),
    [case[1:] for case in PAYMENT_STATUSES], ids=[case[0] for case in PAYMENT_STATUSES],
)
def test_payment_status_follows_the_spec_precedence(
    api, clock, create_order, steps, due_in_hours, expires_in_hours, wait_hours, status, markers
):
    changes = {}
    if due_in_hours is not None:
        changes["payment_due_at"] = iso(clock.now + timedelta(hours=due_in_hours))
    order = create_order(**changes)
    expires = (iso(clock.now + timedelta(hours=expires_in_hours))
               if expires_in_hours is not None else None)
    for step in steps:
        add(api, order, STEPS[step](expires))
    clock.advance(hours=wait_hours)

    after = get_order(api, order["id"])

    assert (after["payment_status"], after["payment_markers"]) == (status, markers)
    query = "expiring" if markers else status
    listed = api.get(f"/orders?payment_status={query}").body["orders"]
    assert [o["id"] for o in listed] == [order["id"]]


def test_payment_status_is_the_same_when_the_transactions_come_with_the_order(api, create_order):
    order = create_order(transactions=[auth(), capture("20.00"), capture("25.50"),
                                       refund("5.00")])

    assert order["payment_status"] == "partially_refunded"
    assert (order["amount_authorized"], order["amount_captured"], order["amount_refunded"]) == (
        "45.50", "45.50", "5.00")


# ---- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "price", "given", "written"),
    [
        ("USD", "10.00", "20", "20.00"),
        ("USD", "10.00", "20.0", "20.00"),
        ("JPY", "1000", "2000", "2000"),
        ("KWD", "1.250", "2.5", "2.500"),
    ],
    ids=["USD without decimals", "USD with one decimal", "JPY has no decimals",
         "KWD has three decimals"],
)
def test_amounts_are_decimal_strings_with_the_currency_places(
    api, create_order, currency, price, given, written
):
    order = create_order(currency=currency, line_items=[
        {"title": "Tea", "quantity": 2, "price": price, "fulfillment_service": None}])

    tx = add(api, order, sale(given))

    after = get_order(api, order["id"])
    assert tx["amount"] == written
    assert (after["total_price"], after["amount_captured"]) == (written, written)
    assert after["line_items"][0]["price"] == price
    assert after["payment_status"] == "paid"
    assert list(floats_in(after)) == []


@pytest.mark.parametrize(
    ("currency", "price", "amount"),
    [("JPY", "1000", "1.5"), ("KWD", "1.250", "1.2501"), ("USD", "10.00", "0.001")],
    ids=["JPY has no decimals", "KWD has three", "USD has two"],
)
def test_too_many_decimals_for_the_currency_is_422(api, create_order, currency, price, amount):
    order = create_order(currency=currency, line_items=[
        {"title": "Tea", "quantity": 2, "price": price, "fulfillment_service": None}])

    response = api.post(f"/orders/{order['id']}/transactions", sale(amount))

    assert response.status_code == 422, response.body
    assert "amount" in response.body["errors"]


def test_order_json_holds_no_float_anywhere(api, create_order):
    order = create_order(transactions=[auth(), capture("12.34")])

    assert list(floats_in(get_order(api, order["id"]))) == []
    assert list(floats_in(api.get("/orders").body)) == []


# ---- auto-fulfill ---------------------------------------------------------------------------


AUTOSHIP_LINES = [
    {"sku": "BOX", "title": "Box", "quantity": 1, "price": "40.00", "fulfillment_service": "autoship"},
    {"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "price": "5.50",
     "fulfillment_service": "acme"},
]


def test_a_transaction_that_makes_the_order_paid_requests_fulfillment_from_auto_fulfill_services(
    api, create_order
):
    order = create_order(line_items=AUTOSHIP_LINES)
    add(api, order, sale("40.00"))
    partly = get_order(api, order["id"])

    add(api, order, sale("5.50"))

    paid = get_order(api, order["id"])
    assert (fo_of(partly, "autoship")["status"], fo_of(partly, "autoship")["request_status"]) == (
        "open", "unsubmitted")
    auto = fo_of(paid, "autoship")
    assert (auto["status"], auto["request_status"]) == ("in_progress", "submitted")
    assert [r["kind"] for r in auto["merchant_requests"]] == ["fulfillment_request"]
    assert (fo_of(paid, "acme")["status"], fo_of(paid, "acme")["request_status"]) == (
        "open", "unsubmitted")
    assert paid["fulfillment_status"] == "in_progress"
    system_events = [e for e in api.get(f"/orders/{order['id']}/timeline").body
                     if e["fulfillment_order_id"] == auto["id"]]
    assert [e["actor"] for e in system_events] == ["system"]


def test_an_order_paid_at_intake_requests_fulfillment_from_auto_fulfill_services(create_order):
    order = create_order(line_items=AUTOSHIP_LINES, transactions=[sale()])

    auto = fo_of(order, "autoship")
    assert (auto["status"], auto["request_status"]) == ("in_progress", "submitted")
    assert len(auto["merchant_requests"]) == 1


def test_an_authorization_alone_does_not_trigger_auto_fulfill(api, create_order):
    order = create_order(line_items=AUTOSHIP_LINES)

    add(api, order, auth())

    auto = fo_of(get_order(api, order["id"]), "autoship")
    assert (auto["status"], auto["merchant_requests"]) == ("open", [])

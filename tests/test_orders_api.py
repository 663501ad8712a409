"""Merchant API over HTTP: order intake, reading, listing, editing, cancelling, archiving,
the fulfillment-order actions that need no answer from a service, and the timeline."""

import base64
import copy
import json
import re
from datetime import timedelta

import pytest
from conftest import fo_of, order_payload

ORDER_FIELDS = {
    "id", "name", "external_id", "email", "currency", "shipping_address", "created_at",
    "updated_at", "order_status", "payment_status", "payment_markers", "fulfillment_status",
    "return_status", "total_price", "amount_authorized", "amount_captured", "amount_refunded",
    "payment_due_at", "line_items", "fulfillment_orders", "fulfillments", "transactions", "returns",
}
LINE_FIELDS = {"id", "sku", "title", "quantity", "price", "fulfillment_service", "fulfilled_quantity"}
FO_FIELDS = {
    "id", "order_id", "service", "workflow", "status", "request_status", "fulfill_at", "hold",
    "needs_attention", "line_items", "supported_actions", "merchant_requests",
}
FO_LINE_FIELDS = {"id", "line_item_id", "sku", "title", "quantity", "remaining_quantity"}
FULFILLMENT_FIELDS = {
    "id", "fulfillment_order_id", "external_id", "created_by", "status", "shipment_status",
    "tracking", "line_items", "events",
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
HOLD_REASONS = [
    "awaiting_payment", "high_risk_of_fraud", "incorrect_address", "inventory_out_of_stock",
    "unknown_delivery_date", "online_store_post_purchase_cross_sell", "awaiting_return_items",
    "other",
]
UNPAID = {"authorized", "pending", "overdue", "expired", "partially_paid"}
THAI = "กรุณาส่งด่วน"
EMOJI = "🚚👩‍👩‍👧👍🏽"


def iso(moment):
    """Format a naive UTC datetime the way the API writes it."""
    return moment.isoformat() + "Z"


def line(title="Thing", quantity=1, price="1.00", service=None, sku=None):
    """Return a new line item body."""
    return {"sku": sku, "title": title, "quantity": quantity, "price": price,
            "fulfillment_service": service}


def get_order(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def timeline_of(api, order_id):
    response = api.get(f"/orders/{order_id}/timeline")
    assert response.status_code == 200, response.body
    return response.body


def line_id(order, sku):
    return next(item["id"] for item in order["line_items"] if item["sku"] == sku)


def fo_line(fo, sku):
    return next(item for item in fo["line_items"] if item["sku"] == sku)


def fos_of(order, service):
    return [fo for fo in order["fulfillment_orders"] if fo["service"] == service]


def listed_ids(api, query=""):
    response = api.get(f"/orders?{query}")
    assert response.status_code == 200, response.body
    return [order["id"] for order in response.body["orders"]]


def assert_names(response, *fields):
    """Assert a 422 that names each of `fields` (a field or a prefix of a nested field)."""
    assert response.status_code == 422, response.body
    assert response.body["code"] == "validation_failed"
    errors = response.body["errors"]
    for field in fields:
        assert any(key == field or key.startswith(field + ".") for key in errors), errors


def mark(api, fo_id, body=None, status=201):
    response = api.post(f"/fulfillment_orders/{fo_id}/mark_fulfilled", body or {})
    assert response.status_code == status, response.body
    return response.body


# ---- intake -------------------------------------------------------------------------------


def test_intake_answers_201_with_the_order_its_location_and_a_default_name(api):
    response = api.post("/orders", order_payload())

    assert response.status_code == 201, response.body
    order = response.body
    assert set(order) >= ORDER_FIELDS
    assert order["name"] == f"#{1000 + order['id']}"
    assert response.headers["Location"].endswith(f"/orders/{order['id']}")
    assert order["external_id"] is None
    assert order["email"] == "customer@example.com"
    assert order["currency"] == "USD"
    assert order["shipping_address"] == order_payload()["shipping_address"]
    assert order["order_status"] == ["open"]
    assert order["payment_status"] == "pending"
    assert order["payment_markers"] == []
    assert order["fulfillment_status"] == "unfulfilled"
    assert order["return_status"] is None
    assert order["total_price"] == "45.50"
    assert (order["amount_authorized"], order["amount_captured"], order["amount_refunded"]) == (
        "0.00", "0.00", "0.00")
    assert order["fulfillments"] == order["transactions"] == order["returns"] == []
    assert RFC3339_UTC.match(order["created_at"]) and RFC3339_UTC.match(order["updated_at"])
    assert [
        (item["sku"], item["title"], item["quantity"], item["price"], item["fulfillment_service"],
         item["fulfilled_quantity"])
        for item in order["line_items"]
    ] == [
        ("TEE-1", "T-shirt", 2, "10.00", "acme", 0),
        ("MUG-1", "Mug", 1, "5.50", "acme", 0),
        ("CARD", "Gift card", 1, "20.00", None, 0),
    ]
    assert all(set(item) >= LINE_FIELDS for item in order["line_items"])


def test_a_given_name_is_kept(create_order):
    assert create_order(name="#SHOP-77")["name"] == "#SHOP-77"


def test_intake_groups_lines_into_one_open_unsubmitted_fo_per_service(create_order):
    order = create_order(line_items=[
        line("A", 1, "1.00", "acme", "A"),
        line("B", 2, "1.00", "oldco", "B"),
        line("C", 3, "1.00", None, "C"),
        line("D", 4, "1.00", "acme", "D"),
    ])

    by_service = {fo["service"]: fo for fo in order["fulfillment_orders"]}
    assert len(order["fulfillment_orders"]) == 3
    assert set(by_service) == {"acme", "oldco", None}
    assert [(item["sku"], item["quantity"], item["remaining_quantity"])
            for item in by_service["acme"]["line_items"]] == [("A", 1, 1), ("D", 4, 4)]
    assert [item["sku"] for item in by_service["oldco"]["line_items"]] == ["B"]
    assert [item["sku"] for item in by_service[None]["line_items"]] == ["C"]
    assert by_service["acme"]["workflow"] == "new"
    assert by_service["oldco"]["workflow"] == "legacy"
    for fo in order["fulfillment_orders"]:
        assert set(fo) >= FO_FIELDS
        assert all(set(item) >= FO_LINE_FIELDS for item in fo["line_items"])
        assert (fo["order_id"], fo["status"], fo["request_status"]) == (order["id"], "open",
                                                                          "unsubmitted")
        assert fo["hold"] is None and fo["fulfill_at"] is None and fo["needs_attention"] is False
        assert fo["merchant_requests"] == []
    line_ids = {item["sku"]: item["id"] for item in order["line_items"]}
    assert {item["line_item_id"] for fo in order["fulfillment_orders"] for item in fo["line_items"]
            } == set(line_ids.values())


def test_same_external_id_again_answers_200_with_the_existing_order_and_creates_nothing(api):
    first = api.post("/orders", order_payload(external_id="shop-1001"))
    again = api.post("/orders", order_payload(external_id="shop-1001", email="other@example.com",
                                              line_items=[line()]))

    assert first.status_code == 201, first.body
    assert again.status_code == 200, again.body
    assert again.body["id"] == first.body["id"]
    assert again.body == get_order(api, first.body["id"])
    assert again.body["email"] == "customer@example.com"
    assert len(again.body["line_items"]) == 3
    assert listed_ids(api) == [first.body["id"]]
    assert len(timeline_of(api, first.body["id"])) == 1


def test_a_different_external_id_creates_another_order(api):
    first = api.post("/orders", order_payload(external_id="shop-1"))
    second = api.post("/orders", order_payload(external_id="shop-2"))

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.body["id"] != second.body["id"]
    assert second.body["external_id"] == "shop-2"


def test_unknown_service_is_422_naming_the_line_and_creates_nothing(api):
    body = order_payload()
    body["line_items"][1]["fulfillment_service"] = "nosuchservice"

    response = api.post("/orders", body)

    assert_names(response, "line_items.1.fulfillment_service")
    assert set(response.body["errors"]) == {"line_items.1.fulfillment_service"}
    assert listed_ids(api) == []


def _set_line(index, **fields):
    def change(body):
        body["line_items"][index].update(fields)
    return change


def _drop_line_field(index, field):
    def change(body):
        del body["line_items"][index][field]
    return change


def _set(**fields):
    def change(body):
        body.update(fields)
    return change


def _drop(field):
    def change(body):
        del body[field]
    return change


INVALID_ORDERS = [
    ("quantity 0", _set_line(0, quantity=0), "line_items.0.quantity"),
    ("negative quantity", _set_line(1, quantity=-1), "line_items.1.quantity"),
    ("quantity as a string", _set_line(0, quantity="2"), "line_items.0.quantity"),
    ("fractional quantity", _set_line(0, quantity=1.5), "line_items.0.quantity"),
    ("boolean quantity", _set_line(0, quantity=True), "line_items.0.quantity"),
    ("missing quantity", _drop_line_field(0, "quantity"), "line_items.0.quantity"),
    ("missing title", _drop_line_field(2, "title"), "line_items.2.title"),
    ("empty title", _set_line(0, title=""), "line_items.0.title"),
    ("numeric title", _set_line(0, title=12), "line_items.0.title"),
    ("lowercase currency", _set(currency="usd"), "currency"),
    ("two-letter currency", _set(currency="US"), "currency"),
    ("numeric currency", _set(currency=840), "currency"),
    ("missing currency", _drop("currency"), "currency"),
    ("price abc", _set_line(0, price="abc"), "line_items.0.price"),
    ("negative price", _set_line(0, price="-1"), "line_items.0.price"),
    ("three decimals in USD", _set_line(0, price="1.234"), "line_items.0.price"),
    ("empty price", _set_line(0, price=""), "line_items.0.price"),
    ("NaN price", _set_line(0, price="NaN"), "line_items.0.price"),
    ("infinite price", _set_line(0, price="Infinity"), "line_items.0.price"),
    ("price as a number", _set_line(0, price=10.0), "line_items.0.price"),
    ("missing price", _drop_line_field(1, "price"), "line_items.1.price"),
    ("unknown top-level field", _set(colour="red"), "colour"),
    ("unknown line field", _set_line(0, colour="red"), "line_items.0.colour"),
    ("unknown address field", _set(shipping_address={"planet": "Mars"}),
     "shipping_address.planet"),
    ("address as a string", _set(shipping_address="1 Sukhumvit Rd"), "shipping_address"),
    ("no line items", _set(line_items=[]), "line_items"),
    ("missing line items", _drop("line_items"), "line_items"),
    ("line items as an object", _set(line_items={"sku": "A"}), "line_items"),
    ("line item as a string", _set(line_items=["TEE-1"]), "line_items.0"),
    ("invalid email", _set(email="not-an-email"), "email"),
    ("numeric email", _set(email=5), "email"),
    ("numeric external_id", _set(external_id=123), "external_id"),
    ("numeric name", _set(name=1001), "name"),
    ("unparseable fulfill_at", _set(fulfill_at="tomorrow"), "fulfill_at"),
    ("impossible payment_due_at", _set(payment_due_at="2026-13-45T00:00:00Z"), "payment_due_at"),
    ("unknown hold reason", _set(hold={"reason": "bored"}), "hold.reason"),
    ("hold without reason", _set(hold={"note": "wait"}), "hold.reason"),
    ("unknown transaction kind", _set(transactions=[{"kind": "gift", "amount": "1.00"}]),
     "transactions.0.kind"),
    ("malformed transaction amount", _set(transactions=[{"kind": "sale", "amount": "abc"}]),
     "transactions.0.amount"),
    ("sale beyond the total", _set(transactions=[{"kind": "sale", "amount": "45.51"}]),
     "transactions.0.amount"),
    ("over-capture at intake", _set(transactions=[
        {"kind": "authorization", "amount": "10.00"}, {"kind": "capture", "amount": "10.01"}]),
     "transactions.1.amount"),
]


@pytest.mark.parametrize(("change", "field"), [case[1:] for case in INVALID_ORDERS],
                         ids=[case[0] for case in INVALID_ORDERS])
def test_invalid_order_is_422_naming_the_field_and_creates_nothing(api, change, field):
    body = copy.deepcopy(order_payload())
    change(body)

    response = api.post("/orders", body)

    assert_names(response, field)
    assert listed_ids(api) == []


@pytest.mark.parametrize("body", [[], "order", 42, None, [order_payload()]],
                         ids=["empty array", "string", "number", "null", "array of orders"])
def test_a_body_that_is_not_an_object_is_422_naming_the_body(api, body):
    response = api.call("POST", "/orders", data=json.dumps(body), content_type="application/json")

    assert_names(response, "body")
    assert listed_ids(api) == []


def test_fulfill_at_in_the_future_schedules_the_fos_until_it_passes(api, clock, create_order):
    at = clock.now + timedelta(days=3)
    order = create_order(fulfill_at=iso(at))

    assert order["fulfillment_status"] == "scheduled"
    for fo in order["fulfillment_orders"]:
        assert (fo["status"], fo["request_status"], fo["fulfill_at"]) == (
            "scheduled", "unsubmitted", iso(at))
        assert fo["supported_actions"] == ["open"]
    assert listed_ids(api, "fulfillment_status=scheduled") == [order["id"]]

    clock.advance(days=3, seconds=1)

    later = get_order(api, order["id"])
    assert [fo["status"] for fo in later["fulfillment_orders"]] == ["open", "open"]
    assert later["fulfillment_status"] == "unfulfilled"
    assert listed_ids(api, "fulfillment_status=scheduled") == []
    assert listed_ids(api, "fulfillment_status=unfulfilled") == [order["id"]]


def test_fulfill_at_in_the_past_opens_the_fos_at_once(clock, create_order):
    order = create_order(fulfill_at=iso(clock.now - timedelta(hours=1)))

    assert [fo["status"] for fo in order["fulfillment_orders"]] == ["open", "open"]
    assert order["fulfillment_status"] == "unfulfilled"


def test_hold_at_intake_puts_the_fos_on_hold_with_reason_and_note(api, create_order):
    note = f"Post-purchase upsell offer {THAI} {EMOJI}"
    order = create_order(hold={"reason": "online_store_post_purchase_cross_sell", "note": note})

    assert order["fulfillment_status"] == "on_hold"
    for fo in order["fulfillment_orders"]:
        assert fo["status"] == "on_hold"
        assert fo["hold"] == {"reason": "online_store_post_purchase_cross_sell", "note": note}
        assert fo["supported_actions"] == ["release_hold"]
    events = timeline_of(api, order["id"])
    assert len(events) == 1
    assert events[0]["message"] == note


@pytest.mark.parametrize(
    ("transactions", "payment_status", "authorized", "captured"),
    [
        ([{"kind": "sale", "amount": "45.50"}], "paid", "0.00", "45.50"),
        ([{"kind": "sale", "amount": "5.00"}], "partially_paid", "0.00", "5.00"),
        ([{"kind": "authorization", "amount": "45.50"}], "authorized", "45.50", "0.00"),
        ([{"kind": "authorization", "amount": "45.50"}, {"kind": "capture", "amount": "20.00"}],
         "partially_paid", "45.50", "20.00"),
    ],
    ids=["sale", "partial sale", "authorization", "authorization and capture"],
)
def test_transactions_at_intake_are_recorded_and_set_the_payment_status(
    create_order, transactions, payment_status, authorized, captured
):
    order = create_order(transactions=transactions)

    assert order["payment_status"] == payment_status
    assert (order["amount_authorized"], order["amount_captured"]) == (authorized, captured)
    assert [(tx["kind"], tx["amount"]) for tx in order["transactions"]] == [
        (tx["kind"], tx["amount"]) for tx in transactions
    ]


def test_get_order_answers_what_intake_answered(api, create_order):
    order = create_order()

    assert get_order(api, order["id"]) == order


# ---- listing ------------------------------------------------------------------------------


MANAGED_ONLY = [line("Gift card", 1, "45.50", None, "CARD")]
SALE = {"kind": "sale", "amount": "45.50"}


def authorization(expires_at=None, amount="45.50"):
    return {"kind": "authorization", "amount": amount, "expires_at": expires_at}


# name: (order_status, payment_status, payment_markers, fulfillment_status, return_status, services)
CATALOGUE = {
    "plain": (["open"], "pending", [], "unfulfilled", None, {"acme"}),
    "paid": (["open"], "paid", [], "unfulfilled", None, {"acme"}),
    "authorized": (["open"], "authorized", [], "unfulfilled", None, {"acme"}),
    "expiring": (["open"], "authorized", ["expiring"], "unfulfilled", None, {"acme"}),
    "expired": (["open"], "expired", [], "unfulfilled", None, {"acme"}),
    "overdue": (["open"], "overdue", [], "unfulfilled", None, {"acme"}),
    "due_later": (["open"], "pending", [], "unfulfilled", None, {"acme"}),
    "partially_paid": (["open"], "partially_paid", [], "unfulfilled", None, {"acme"}),
    "refunded": (["open"], "refunded", [], "unfulfilled", None, {"acme"}),
    "partially_refunded": (["open"], "partially_refunded", [], "unfulfilled", None, {"acme"}),
    "voided": (["open"], "voided", [], "unfulfilled", None, {"acme"}),
    "archived": (["archived"], "pending", [], "unfulfilled", None, {"acme"}),
    "cancelled": (["open", "cancelled"], "pending", [], "unfulfilled", None, {"acme"}),
    "archived_cancelled": (["archived", "cancelled"], "pending", [], "unfulfilled", None,
                           {"acme"}),
    "on_hold": (["open"], "pending", [], "on_hold", None, {"acme"}),
    "scheduled": (["open"], "pending", [], "scheduled", None, {"acme"}),
    "oldco": (["open"], "pending", [], "unfulfilled", None, {"oldco"}),
    "partially_fulfilled": (["open"], "pending", [], "partially_fulfilled", None, {"acme"}),
    "fulfilled": (["open"], "pending", [], "fulfilled", None, set()),
    "return_requested": (["open"], "pending", [], "fulfilled", "return_requested", set()),
    "return_in_progress": (["open"], "pending", [], "fulfilled", "return_in_progress", set()),
    "in_progress": (["open"], "pending", [], "in_progress", None, {"acme"}),
}


def build_catalogue(api, clock):
    """Create one order per CATALOGUE row (named after it); return {name: id}."""
    now = clock.now
    ids = {}

    def create(name, **changes):
        response = api.post("/orders", order_payload(name=name, **changes))
        assert response.status_code == 201, response.body
        ids[name] = response.body["id"]
        return response.body

    def post(path, body=None, status=200):
        response = api.post(path, body or {})
        assert response.status_code == status, (path, response.body)
        return response.body

    def returned_by(name, requested_by):
        order = create(name, line_items=MANAGED_ONLY)
        mark(api, fo_of(order, None)["id"])
        post(f"/orders/{order['id']}/returns", {
            "requested_by": requested_by,
            "line_items": [{"line_item_id": order["line_items"][0]["id"], "quantity": 1}],
        }, status=201)

    create("plain")
    create("paid", transactions=[SALE])
    create("authorized", transactions=[authorization(iso(now + timedelta(days=10)))])
    create("expiring", transactions=[authorization(iso(now + timedelta(days=1)))])
    create("expired", transactions=[authorization(iso(now + timedelta(hours=1)))])
    create("overdue", payment_due_at=iso(now + timedelta(hours=1)))
    create("due_later", payment_due_at=iso(now + timedelta(days=10)))
    create("partially_paid",
           transactions=[authorization(), {"kind": "capture", "amount": "20.00"}])
    create("refunded", transactions=[SALE, {"kind": "refund", "amount": "45.50"}])
    create("partially_refunded", transactions=[SALE, {"kind": "refund", "amount": "5.00"}])
    create("voided", transactions=[authorization(), {"kind": "void"}])
    post(f"/orders/{create('archived')['id']}/archive")
    post(f"/orders/{create('cancelled')['id']}/cancel")
    order = create("archived_cancelled")
    post(f"/orders/{order['id']}/cancel")
    post(f"/orders/{order['id']}/archive")
    create("on_hold", hold={"reason": "high_risk_of_fraud", "note": "check the card"})
    create("scheduled", fulfill_at=iso(now + timedelta(days=10)))
    create("oldco", line_items=[line("Box", 1, "45.50", "oldco", "BOX")])
    mark(api, fo_of(create("partially_fulfilled"), None)["id"])
    mark(api, fo_of(create("fulfilled", line_items=MANAGED_ONLY), None)["id"])
    returned_by("return_requested", "customer")
    returned_by("return_in_progress", "merchant")
    post(f"/fulfillment_orders/{fo_of(create('in_progress'), 'acme')['id']}/fulfillment_request")
    # "expired" and "overdue" fall due; "expiring" still expires within 2 days.
    clock.advance(hours=2)
    return ids


def wanted(row, key, value):
    """Tell whether a CATALOGUE row matches one filter value (SPEC 3, GET /orders)."""
    order_status, payment_status, markers, fulfillment_status, return_status, services = row
    if key == "order_status":
        return value in order_status
    if key == "payment_status":
        if value == "unpaid":
            return payment_status in UNPAID
        if value == "expiring":
            return "expiring" in markers
        return value == payment_status
    if key == "fulfillment_status":
        return value == fulfillment_status
    if key == "return_status":
        return value == return_status
    if key == "service":
        return value in services
    if key == "needs_attention":
        return value == "false"
    raise AssertionError(key)


def expected_names(query):
    """Names of the CATALOGUE rows `query` selects: comma = any of, several keys = all of."""
    filters = [part.split("=", 1) for part in query.split("&")]
    return {
        name for name, row in CATALOGUE.items()
        if all(any(wanted(row, key, value) for value in values.split(",")) for key, values in filters)
    }


def test_catalogue_orders_show_the_statuses_their_facts_give(api, clock):
    ids = build_catalogue(api, clock)

    seen = {}
    for name, order_id in ids.items():
        order = get_order(api, order_id)
        seen[name] = (order["order_status"], order["payment_status"], order["payment_markers"],
                      order["fulfillment_status"], order["return_status"],
                      {fo["service"] for fo in order["fulfillment_orders"]} - {None})
    assert seen == CATALOGUE


FILTER_QUERIES = [
    "order_status=open", "order_status=archived", "order_status=cancelled",
    "order_status=archived,cancelled",
    *[f"payment_status={value}" for value in (
        "voided", "refunded", "partially_refunded", "paid", "partially_paid", "expired",
        "authorized", "overdue", "pending", "unpaid", "expiring")],
    "payment_status=paid,refunded", "payment_status=expiring,voided",
    *[f"fulfillment_status={value}" for value in (
        "fulfilled", "partially_fulfilled", "on_hold", "scheduled", "in_progress", "unfulfilled")],
    "fulfillment_status=on_hold,scheduled",
    *[f"return_status={value}" for value in (
        "return_requested", "inspection_complete", "return_in_progress", "returned")],
    "return_status=return_requested,return_in_progress",
    "service=acme", "service=oldco", "service=acme,oldco", "service=autoship",
    "needs_attention=false", "needs_attention=true",
    "order_status=open&payment_status=paid,refunded",
    "order_status=cancelled&order_status=open",
    "payment_status=unpaid&fulfillment_status=unfulfilled&order_status=open",
    "service=acme&fulfillment_status=on_hold,scheduled,in_progress&payment_status=pending",
    "order_status=archived&payment_status=paid",
]


@pytest.mark.parametrize("query", FILTER_QUERIES)
def test_list_filter_selects_exactly_the_matching_orders(api, clock, query):
    ids = build_catalogue(api, clock)
    names_by_id = {order_id: name for name, order_id in ids.items()}
    # A repeated key counts once: keep the first value, as a query-string parser does.
    first = {}
    for part in query.split("&"):
        key, value = part.split("=")
        first.setdefault(key, value)
    effective = "&".join(f"{key}={value}" for key, value in first.items())

    found = listed_ids(api, f"{query}&limit=250")

    assert len(found) == len(set(found))
    assert {names_by_id[order_id] for order_id in found} == expected_names(effective)


def test_needs_attention_filter_finds_an_order_whose_fo_got_a_shipment_after_withdrawal(
    api, create_order, service
):
    quiet = create_order()
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    assert api.post(f"/fulfillment_orders/{fo_id}/cancel", {}).status_code == 200
    shipped = service.send("acme", "fulfillment.created",
                           {"fulfillment_order_id": fo_id, "external_id": "ship-1"})
    assert shipped.status_code == 200, shipped.body

    assert listed_ids(api, "needs_attention=true") == [order["id"]]
    assert listed_ids(api, "needs_attention=false") == [quiet["id"]]

    assert api.post(f"/fulfillment_orders/{fo_id}/acknowledge", {}).status_code == 200
    assert listed_ids(api, "needs_attention=true") == []


def _walk_pages(api, query, limit):
    ids, cursor, pages = [], None, 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = api.get(f"/orders?limit={limit}&{query}{suffix}")
        assert response.status_code == 200, response.body
        assert len(response.body["orders"]) <= limit
        ids.extend(order["id"] for order in response.body["orders"])
        cursor = response.body["next_cursor"]
        pages += 1
        assert pages < 50
        if cursor is None:
            return ids, pages


def test_cursor_pagination_visits_every_order_once(api, create_order):
    created = [create_order()["id"] for _ in range(7)]

    ids, pages = _walk_pages(api, "", 3)

    assert sorted(ids) == sorted(created)
    assert len(ids) == len(set(ids))
    assert pages == 3


def test_cursor_pagination_within_a_filter_visits_every_match_once(api, create_order):
    paid = []
    for index in range(10):
        order = create_order(transactions=[SALE] if index % 2 else [])
        if index % 2:
            paid.append(order["id"])

    ids, _ = _walk_pages(api, "payment_status=paid", 2)

    assert sorted(ids) == sorted(paid)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("query", [
    "payment_status=unpaid", "payment_status=pending,authorized&order_status=open&service=acme",
])
def test_cursor_pagination_across_several_states_visits_every_match_once_newest_first(
    api, create_order, query
):
    unpaid = []
    for index in range(9):
        order = create_order(transactions=[[], [SALE], [authorization()]][index % 3])
        if index % 3 != 1:
            unpaid.append(order["id"])

    ids, pages = _walk_pages(api, query, 2)

    assert ids == sorted(unpaid, reverse=True)
    assert pages == 3


def test_orders_created_while_paging_cause_no_duplicates_or_misses(api, create_order):
    created = [create_order()["id"] for _ in range(6)]
    first = api.get("/orders?limit=2")
    create_order()
    create_order()

    rest, _ = _walk_pages_from(api, first.body["next_cursor"], 2)

    ids = [order["id"] for order in first.body["orders"]] + rest
    assert len(ids) == len(set(ids))
    assert set(created) <= set(ids)


def _walk_pages_from(api, cursor, limit):
    ids, pages = [], 0
    while cursor is not None:
        response = api.get(f"/orders?limit={limit}&cursor={cursor}")
        assert response.status_code == 200, response.body
        ids.extend(order["id"] for order in response.body["orders"])
        cursor = response.body["next_cursor"]
        pages += 1
        assert pages < 50
    return ids, pages


def test_limit_250_is_accepted(api, create_order):
    order = create_order()

    response = api.get("/orders?limit=250")

    assert response.status_code == 200, response.body
    assert [o["id"] for o in response.body["orders"]] == [order["id"]]
    assert response.body["next_cursor"] is None


def _b64(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


INVALID_LISTS = [
    ("limit=0", "limit"),
    ("limit=251", "limit"),
    ("limit=-1", "limit"),
    ("limit=ten", "limit"),
    ("cursor=not-a-cursor!", "cursor"),
    (f"cursor={_b64('x:5')}", "cursor"),
    (f"cursor={_b64('o:abc')}", "cursor"),
    (f"cursor={_b64('o:-3')}", "cursor"),
    (f"cursor={_b64('o:' + '9' * 30)}", "cursor"),
    ("cursor=" + "A" * 300, "cursor"),
    ("payment_status=free", "payment_status"),
    ("order_status=closed", "order_status"),
    ("fulfillment_status=shipped", "fulfillment_status"),
    ("return_status=lost", "return_status"),
    ("needs_attention=maybe", "needs_attention"),
    ("order_status=", "order_status"),
    ("colour=red", "colour"),
]


@pytest.mark.parametrize(("query", "field"), INVALID_LISTS, ids=[q for q, _ in INVALID_LISTS])
def test_invalid_list_query_is_422_naming_the_parameter(api, create_order, query, field):
    create_order()

    assert_names(api.get(f"/orders?{query}"), field)


# ---- editing ------------------------------------------------------------------------------


def test_patch_changes_email_and_shipping_address(api, create_order):
    order = create_order()
    address = {"name": f"สมชาย {EMOJI}", "address1": "99 ถนนพระราม 4", "city": "กรุงเทพฯ",
               "zip": "10110", "country_code": "TH"}

    response = api.patch(f"/orders/{order['id']}", {"email": "new@example.com",
                                                    "shipping_address": address})

    assert response.status_code == 200, response.body
    assert response.body["email"] == "new@example.com"
    assert response.body["shipping_address"] == address
    assert get_order(api, order["id"]) == response.body
    assert len(timeline_of(api, order["id"])) == 2


def test_increasing_a_quantity_adds_it_to_the_open_unsubmitted_fo(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")

    response = api.patch(f"/orders/{order['id']}",
                         {"line_items": [{"id": line_id(order, "TEE-1"), "quantity": 3}]})

    assert response.status_code == 200, response.body
    edited = response.body
    assert len(edited["fulfillment_orders"]) == 2
    tee = fo_line(fo_of(edited, "acme"), "TEE-1")
    assert fo_of(edited, "acme")["id"] == acme["id"]
    assert (tee["quantity"], tee["remaining_quantity"]) == (3, 3)
    assert next(i for i in edited["line_items"] if i["sku"] == "TEE-1")["quantity"] == 3
    assert edited["total_price"] == "55.50"


def test_decreasing_a_quantity_takes_it_off_the_fo_and_the_total(api, create_order):
    order = create_order()

    response = api.patch(f"/orders/{order['id']}",
                         {"line_items": [{"id": line_id(order, "TEE-1"), "quantity": 1}]})

    assert response.status_code == 200, response.body
    tee = fo_line(fo_of(response.body, "acme"), "TEE-1")
    assert (tee["quantity"], tee["remaining_quantity"]) == (1, 1)
    assert response.body["total_price"] == "35.50"


def test_quantity_cannot_go_below_what_was_fulfilled(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")
    mark(api, acme["id"], {"line_items": [{"id": fo_line(acme, "TEE-1")["id"], "quantity": 2}]})
    tee = line_id(order, "TEE-1")

    too_low = api.patch(f"/orders/{order['id']}", {"line_items": [{"id": tee, "quantity": 1}]})
    equal = api.patch(f"/orders/{order['id']}", {"line_items": [{"id": tee, "quantity": 2}]})

    assert_names(too_low, "line_items.0.quantity")
    assert equal.status_code == 200, equal.body
    assert get_order(api, order["id"])["total_price"] == "45.50"


def test_increase_after_the_fo_closed_opens_a_new_fo_of_the_service(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")
    mark(api, acme["id"])

    response = api.patch(f"/orders/{order['id']}",
                         {"line_items": [{"id": line_id(order, "TEE-1"), "quantity": 3}]})

    assert response.status_code == 200, response.body
    by_id = {fo["id"]: fo for fo in fos_of(response.body, "acme")}
    assert by_id.pop(acme["id"])["status"] == "closed"
    [new] = by_id.values()
    assert (new["status"], new["request_status"]) == ("open", "unsubmitted")
    assert [(i["sku"], i["quantity"], i["remaining_quantity"]) for i in new["line_items"]] == [
        ("TEE-1", 1, 1)]
    assert response.body["fulfillment_status"] == "partially_fulfilled"


def test_added_lines_join_an_open_fo_of_their_service_or_a_new_one(api, create_order):
    order = create_order()
    acme, managed = fo_of(order, "acme"), fo_of(order, None)

    response = api.patch(f"/orders/{order['id']}", {"add_line_items": [
        line("Cap", 2, "7.25", "acme", "CAP"),
        line("Box", 1, "3.00", "oldco", "BOX"),
        line("Sticker", 4, "0.50", None, "STK"),
    ]})

    assert response.status_code == 200, response.body
    edited = response.body
    assert edited["total_price"] == "65.00"
    assert [(i["sku"], i["quantity"], i["price"], i["fulfillment_service"], i["fulfilled_quantity"])
            for i in edited["line_items"][3:]] == [
        ("CAP", 2, "7.25", "acme", 0), ("BOX", 1, "3.00", "oldco", 0), ("STK", 4, "0.50", None, 0)]
    assert len(edited["fulfillment_orders"]) == 3
    assert fo_of(edited, "acme")["id"] == acme["id"]
    assert [i["sku"] for i in fo_of(edited, "acme")["line_items"]] == ["TEE-1", "MUG-1", "CAP"]
    assert fo_of(edited, None)["id"] == managed["id"]
    assert [i["sku"] for i in fo_of(edited, None)["line_items"]] == ["CARD", "STK"]
    oldco = fo_of(edited, "oldco")
    assert (oldco["status"], oldco["request_status"], oldco["workflow"]) == (
        "open", "unsubmitted", "legacy")
    assert [(i["sku"], i["quantity"]) for i in oldco["line_items"]] == [("BOX", 1)]


def test_added_line_skips_a_held_fo_of_its_service(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")
    assert api.post(f"/fulfillment_orders/{acme['id']}/hold", {"reason": "other"}).status_code == 200

    response = api.patch(f"/orders/{order['id']}",
                         {"add_line_items": [line("Cap", 1, "1.00", "acme", "CAP")]})

    assert response.status_code == 200, response.body
    held = next(fo for fo in fos_of(response.body, "acme") if fo["id"] == acme["id"])
    assert [i["sku"] for i in held["line_items"]] == ["TEE-1", "MUG-1"]
    [new] = [fo for fo in fos_of(response.body, "acme") if fo["id"] != acme["id"]]
    assert (new["status"], [i["sku"] for i in new["line_items"]]) == ("open", ["CAP"])


INVALID_EDITS = [
    ("unknown line id", {"line_items": [{"id": 999999, "quantity": 1}]}, "line_items.0.id"),
    ("negative quantity", {"line_items": [{"id": 1, "quantity": -1}]}, "line_items.0.quantity"),
    ("quantity as a string", {"line_items": [{"id": 1, "quantity": "3"}]},
     "line_items.0.quantity"),
    ("unknown service on an added line",
     {"add_line_items": [line("X", 1, "1.00", "nosuchservice")]},
     "add_line_items.0.fulfillment_service"),
    ("bad price on an added line", {"add_line_items": [line("X", 1, "1.001")]},
     "add_line_items.0.price"),
    ("added line without title", {"add_line_items": [{"quantity": 1, "price": "1.00"}]},
     "add_line_items.0.title"),
    ("invalid email", {"email": "nope"}, "email"),
    ("unknown field", {"currency": "EUR"}, "currency"),
    ("unknown address field", {"shipping_address": {"planet": "Mars"}},
     "shipping_address.planet"),
]


@pytest.mark.parametrize(("body", "field"), [case[1:] for case in INVALID_EDITS],
                         ids=[case[0] for case in INVALID_EDITS])
def test_invalid_edit_is_422_naming_the_field_and_changes_nothing(api, create_order, body, field):
    order = create_order()

    response = api.patch(f"/orders/{order['id']}", body)

    assert_names(response, field)
    assert get_order(api, order["id"]) == order


def test_a_cancelled_order_cannot_be_edited(api, create_order):
    order = create_order()
    api.post(f"/orders/{order['id']}/cancel", {})

    response = api.patch(f"/orders/{order['id']}", {"email": "new@example.com"})

    assert response.status_code == 409, response.body
    assert response.body["code"] == "invalid_transition"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("PATCH", "", {"email": "new@example.com"}), ("POST", "/cancel", {})],
    ids=["edit", "cancel"],
)
def test_an_order_with_an_fo_in_progress_cannot_be_edited_or_cancelled(
    api, create_order, method, suffix, body
):
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    before = get_order(api, order["id"])

    response = api.call(method, f"/orders/{order['id']}{suffix}", body)

    assert response.status_code == 409, response.body
    assert response.body["code"] == "order_locked"
    assert str(fo_id) in response.body["detail"]
    assert get_order(api, order["id"]) == before


# ---- cancelling and archiving -------------------------------------------------------------


def test_cancel_voids_an_open_authorization_and_cancels_fos_with_remaining_items(
    api, create_order
):
    order = create_order(transactions=[authorization()])
    mark(api, fo_of(order, None)["id"])
    before = len(timeline_of(api, order["id"]))

    response = api.post(f"/orders/{order['id']}/cancel", {"reason": "customer"})

    assert response.status_code == 200, response.body
    cancelled = response.body
    assert cancelled["order_status"] == ["open", "cancelled"]
    assert cancelled["payment_status"] == "voided"
    assert [(tx["kind"]) for tx in cancelled["transactions"]] == ["authorization", "void"]
    assert fo_of(cancelled, "acme")["status"] == "cancelled"
    assert fo_of(cancelled, "acme")["supported_actions"] == []
    assert fo_of(cancelled, None)["status"] == "closed"
    assert get_order(api, order["id"]) == cancelled
    assert len(timeline_of(api, order["id"])) == before + 1


def test_cancel_with_refund_refunds_what_was_captured(api, create_order):
    order = create_order(transactions=[SALE])

    response = api.post(f"/orders/{order['id']}/cancel", {"reason": "fraud", "refund": True})

    assert response.status_code == 200, response.body
    assert response.body["payment_status"] == "refunded"
    assert response.body["amount_refunded"] == "45.50"
    assert [(tx["kind"], tx["amount"]) for tx in response.body["transactions"]] == [
        ("sale", "45.50"), ("refund", "45.50")]


def test_cancel_without_refund_keeps_the_payment(api, create_order):
    order = create_order(transactions=[SALE])

    response = api.post(f"/orders/{order['id']}/cancel", {"refund": False})

    assert response.status_code == 200, response.body
    assert response.body["payment_status"] == "paid"
    assert [tx["kind"] for tx in response.body["transactions"]] == ["sale"]
    assert {fo["status"] for fo in response.body["fulfillment_orders"]} == {"cancelled"}


def test_cancelling_twice_is_409_and_records_nothing(api, create_order):
    order = create_order()
    assert api.post(f"/orders/{order['id']}/cancel", {}).status_code == 200
    events = len(timeline_of(api, order["id"]))

    again = api.post(f"/orders/{order['id']}/cancel", {})

    assert again.status_code == 409, again.body
    assert again.body["code"] == "invalid_transition"
    assert len(timeline_of(api, order["id"])) == events


def test_invalid_cancel_body_is_422(api, create_order):
    order = create_order()

    assert_names(api.post(f"/orders/{order['id']}/cancel", {"refund": "maybe"}), "refund")
    assert get_order(api, order["id"])["order_status"] == ["open"]


@pytest.mark.parametrize(
    ("steps", "order_status"),
    [
        (["archive"], ["archived"]),
        (["archive", "unarchive"], ["open"]),
        (["cancel", "archive"], ["archived", "cancelled"]),
        (["cancel", "archive", "unarchive"], ["open", "cancelled"]),
        (["archive", "cancel"], ["archived", "cancelled"]),
    ],
    ids=["archive", "unarchive", "cancel then archive", "cancel, archive, unarchive",
         "archive then cancel"],
)
def test_order_status_lists_archive_state_and_cancellation(api, create_order, steps,
                                                           order_status):
    order = create_order()
    for step in steps:
        response = api.post(f"/orders/{order['id']}/{step}", {})
        assert response.status_code == 200, response.body

    assert response.body["order_status"] == order_status
    assert get_order(api, order["id"])["order_status"] == order_status


def test_archiving_twice_records_one_event(api, create_order):
    order = create_order()

    first = api.post(f"/orders/{order['id']}/archive", {})
    second = api.post(f"/orders/{order['id']}/archive", {})

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.body["order_status"] == ["archived"]
    assert len(timeline_of(api, order["id"])) == 2


@pytest.fixture
def auto_archive(overrides):
    """Turn `orders.auto_archive` on for the app of this test (request it before `api`)."""
    overrides["orders"] = {"auto_archive": True}


def test_auto_archive_archives_an_order_once_paid_and_fulfilled(auto_archive, app, api,
                                                                 create_order):
    assert app.extensions["adapter_settings"].auto_archive is True
    order = create_order(transactions=[SALE])
    mark(api, fo_of(order, "acme")["id"])
    assert get_order(api, order["id"])["order_status"] == ["open"]

    last = mark(api, fo_of(order, None)["id"])

    archived = get_order(api, order["id"])
    assert last["fulfillment_order"]["status"] == "closed"
    assert archived["order_status"] == ["archived"]
    assert archived["fulfillment_status"] == "fulfilled"
    assert timeline_of(api, order["id"])[-1]["actor"] == "system"


def test_auto_archive_waits_for_the_payment_of_a_fulfilled_order(auto_archive, api, create_order):
    order = create_order()
    for fo in order["fulfillment_orders"]:
        mark(api, fo["id"])
    assert get_order(api, order["id"])["order_status"] == ["open"]

    paid = api.post(f"/orders/{order['id']}/transactions", SALE)

    assert paid.status_code == 201, paid.body
    assert get_order(api, order["id"])["order_status"] == ["archived"]


def test_without_auto_archive_a_paid_fulfilled_order_stays_open(api, create_order):
    order = create_order(transactions=[SALE])
    for fo in order["fulfillment_orders"]:
        mark(api, fo["id"])

    done = get_order(api, order["id"])
    assert (done["payment_status"], done["fulfillment_status"]) == ("paid", "fulfilled")
    assert done["order_status"] == ["open"]


# ---- fulfillment-order actions without a service ------------------------------------------


def test_mark_fulfilled_on_the_merchant_managed_fo_closes_it(api, create_order):
    order = create_order()
    managed = fo_of(order, None)

    result = mark(api, managed["id"], {"tracking": {"number": "TH123", "company": "Kerry",
                                                    "url": "https://track.example/TH123"}})

    fulfillment = result["fulfillment"]
    assert set(fulfillment) >= FULFILLMENT_FIELDS
    assert fulfillment["fulfillment_order_id"] == managed["id"]
    assert fulfillment["created_by"] == "merchant"
    assert fulfillment["tracking"] == {"number": "TH123", "company": "Kerry",
                                       "url": "https://track.example/TH123"}
    assert fulfillment["line_items"] == [{"line_item_id": line_id(order, "CARD"), "quantity": 1}]
    assert result["fulfillment_order"]["status"] == "closed"
    assert result["fulfillment_order"]["line_items"][0]["remaining_quantity"] == 0
    assert result["fulfillment_order"]["supported_actions"] == []
    after = get_order(api, order["id"])
    assert [f["id"] for f in after["fulfillments"]] == [fulfillment["id"]]
    assert next(i for i in after["line_items"] if i["sku"] == "CARD")["fulfilled_quantity"] == 1
    assert after["fulfillment_status"] == "partially_fulfilled"


def test_mark_fulfilled_with_some_lines_leaves_the_fo_open_until_nothing_remains(api,
                                                                                  create_order):
    order = create_order()
    acme = fo_of(order, "acme")
    tee = fo_line(acme, "TEE-1")

    first = mark(api, acme["id"], {"line_items": [{"id": tee["id"], "quantity": 1}],
                                   "tracking": {"number": "1Z999", "company": "UPS",
                                                "url": "https://ups.example/1Z999"}})

    fo = first["fulfillment_order"]
    assert fo["status"] == "open"
    assert [(i["sku"], i["quantity"], i["remaining_quantity"]) for i in fo["line_items"]] == [
        ("TEE-1", 2, 1), ("MUG-1", 1, 1)]
    assert first["fulfillment"]["line_items"] == [
        {"line_item_id": tee["line_item_id"], "quantity": 1}]
    assert first["fulfillment"]["tracking"]["number"] == "1Z999"
    assert get_order(api, order["id"])["fulfillment_status"] == "partially_fulfilled"

    second = mark(api, acme["id"])

    assert second["fulfillment"]["line_items"] == [
        {"line_item_id": tee["line_item_id"], "quantity": 1},
        {"line_item_id": fo_line(acme, "MUG-1")["line_item_id"], "quantity": 1},
    ]
    assert second["fulfillment_order"]["status"] == "closed"
    mark(api, fo_of(order, None)["id"])
    done = get_order(api, order["id"])
    assert done["fulfillment_status"] == "fulfilled"
    assert [i["fulfilled_quantity"] for i in done["line_items"]] == [2, 1, 1]
    assert len(done["fulfillments"]) == 3


def test_mark_fulfilled_works_on_an_open_legacy_fo(api, create_order):
    order = create_order(line_items=[line("Box", 2, "1.00", "oldco", "BOX")])

    result = mark(api, fo_of(order, "oldco")["id"])

    assert result["fulfillment_order"]["status"] == "closed"
    assert get_order(api, order["id"])["fulfillment_status"] == "fulfilled"


def test_over_fulfillment_is_409_and_records_nothing(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")

    response = api.post(f"/fulfillment_orders/{acme['id']}/mark_fulfilled",
                        {"line_items": [{"id": fo_line(acme, "TEE-1")["id"], "quantity": 3}]})

    assert response.status_code == 409, response.body
    assert response.body["code"] == "over_fulfillment"
    assert get_order(api, order["id"]) == order


def test_marking_a_closed_fo_again_is_409(api, create_order):
    order = create_order()
    managed = fo_of(order, None)
    mark(api, managed["id"])

    response = api.post(f"/fulfillment_orders/{managed['id']}/mark_fulfilled", {})

    assert response.status_code == 409, response.body
    assert len(get_order(api, order["id"])["fulfillments"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"line_items": [{"id": 999999, "quantity": 1}]}, "line_items.0.id"),
        ({"line_items": [{"id": 1, "quantity": 0}]}, "line_items.0.quantity"),
        ({"tracking": {"url": "not a url"}}, "tracking.url"),
        ({"tracking": {"url": "ftp://track.example/1"}}, "tracking.url"),
        ({"tracking": "1Z999"}, "tracking"),
        ({"notify_customer": "yes please"}, "notify_customer"),
        ({"carrier": "UPS"}, "carrier"),
    ],
    ids=["unknown FO line", "zero quantity", "malformed tracking URL", "ftp tracking URL",
         "tracking as a string", "notify_customer not a boolean", "unknown field"],
)
def test_invalid_mark_fulfilled_is_422_naming_the_field(api, create_order, body, field):
    order = create_order()

    assert_names(api.post(f"/fulfillment_orders/{fo_of(order, 'acme')['id']}/mark_fulfilled",
                          body), field)
    assert get_order(api, order["id"])["fulfillments"] == []


def test_notify_customer_without_a_notifications_endpoint_says_so_on_the_timeline(
    api, create_order
):
    order = create_order()
    before = len(timeline_of(api, order["id"]))

    mark(api, fo_of(order, None)["id"], {"notify_customer": True})

    events = timeline_of(api, order["id"])
    assert len(events) == before + 1
    said = ((events[-1]["message"] or "") + json.dumps(events[-1]["data"])).lower()
    assert "not configured" in said.replace("_", " ")


@pytest.mark.parametrize("reason", HOLD_REASONS)
def test_hold_puts_an_open_fo_on_hold_with_reason_and_note(api, create_order, reason):
    order = create_order()
    acme = fo_of(order, "acme")
    note = f"Waiting: {THAI} {EMOJI}"

    response = api.post(f"/fulfillment_orders/{acme['id']}/hold", {"reason": reason, "note": note})

    assert response.status_code == 200, response.body
    assert response.body["status"] == "on_hold"
    assert response.body["hold"] == {"reason": reason, "note": note}
    assert response.body["supported_actions"] == ["release_hold"]
    assert timeline_of(api, order["id"])[-1]["message"] == note


def test_holding_every_fo_puts_the_order_on_hold(api, create_order):
    order = create_order()
    for fo in order["fulfillment_orders"]:
        assert api.post(f"/fulfillment_orders/{fo['id']}/hold",
                        {"reason": "awaiting_payment"}).status_code == 200

    held = get_order(api, order["id"])
    assert held["fulfillment_status"] == "on_hold"
    assert [fo["hold"] for fo in held["fulfillment_orders"]] == [
        {"reason": "awaiting_payment", "note": None}] * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [({"reason": "bored"}, "reason"), ({}, "reason"), ({"reason": "other", "note": 5}, "note"),
     ({"reason": "other", "until": "tomorrow"}, "until")],
    ids=["unknown reason", "missing reason", "numeric note", "unknown field"],
)
def test_invalid_hold_is_422_and_leaves_the_fo_open(api, create_order, body, field):
    order = create_order()
    acme = fo_of(order, "acme")

    assert_names(api.post(f"/fulfillment_orders/{acme['id']}/hold", body), field)
    assert api.get(f"/fulfillment_orders/{acme['id']}").body["status"] == "open"


def test_release_hold_opens_the_fo_and_clears_the_hold(api, create_order):
    order = create_order(hold={"reason": "incorrect_address", "note": "check the street"})
    acme = fo_of(order, "acme")

    response = api.post(f"/fulfillment_orders/{acme['id']}/release_hold", {})

    assert response.status_code == 200, response.body
    assert (response.body["status"], response.body["hold"]) == ("open", None)
    assert set(response.body["supported_actions"]) == {"request_fulfillment", "mark_as_fulfilled",
                                                       "hold"}
    assert get_order(api, order["id"])["fulfillment_status"] == "unfulfilled"


def test_open_makes_a_scheduled_fo_open_now(api, clock, create_order):
    order = create_order(fulfill_at=iso(clock.now + timedelta(days=30)))
    managed = fo_of(order, None)

    response = api.post(f"/fulfillment_orders/{managed['id']}/open", {})

    assert response.status_code == 200, response.body
    assert response.body["status"] == "open"
    assert set(response.body["supported_actions"]) == {"mark_as_fulfilled", "hold"}
    assert fo_of(get_order(api, order["id"]), "acme")["status"] == "scheduled"
    assert get_order(api, order["id"])["fulfillment_status"] == "unfulfilled"


@pytest.mark.parametrize(
    ("setup", "hint"),
    [("hold", "release the hold"), ("schedule", "open"), ("request", "cancel the request")],
    ids=["on hold", "scheduled", "in progress"],
)
def test_mark_fulfilled_refused_with_a_hint_for_what_to_do_first(api, clock, create_order,
                                                                 setup, hint):
    if setup == "schedule":
        order = create_order(fulfill_at=iso(clock.now + timedelta(days=1)))
    else:
        order = create_order()
    acme = fo_of(order, "acme")
    if setup == "hold":
        api.post(f"/fulfillment_orders/{acme['id']}/hold", {"reason": "other"})
    if setup == "request":
        api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {})
    before = api.get(f"/fulfillment_orders/{acme['id']}").body

    response = api.post(f"/fulfillment_orders/{acme['id']}/mark_fulfilled", {})

    assert response.status_code == 409, response.body
    assert response.body["code"] == "invalid_transition"
    assert hint in response.body["detail"].lower()
    assert "first" in response.body["detail"].lower()
    assert api.get(f"/fulfillment_orders/{acme['id']}").body == before


@pytest.mark.parametrize(
    ("action", "body"),
    [("release_hold", {}), ("open", {})],
)
def test_release_hold_and_open_on_an_open_fo_are_409(api, create_order, action, body):
    order = create_order()
    acme = fo_of(order, "acme")

    response = api.post(f"/fulfillment_orders/{acme['id']}/{action}", body)

    assert response.status_code == 409, response.body
    assert response.body["code"] == "invalid_transition"


def test_hold_on_a_held_fo_is_409(api, create_order):
    order = create_order(hold={"reason": "other"})

    response = api.post(f"/fulfillment_orders/{fo_of(order, 'acme')['id']}/hold",
                        {"reason": "high_risk_of_fraud"})

    assert response.status_code == 409, response.body
    assert fo_of(get_order(api, order["id"]), "acme")["hold"]["reason"] == "other"


def test_a_new_fo_has_no_merchant_requests_and_lists_one_after_a_request(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")
    assert acme["merchant_requests"] == []

    response = api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request",
                        {"message": f"{THAI} {EMOJI}"})

    assert response.status_code == 200, response.body
    [sent] = response.body["submitted_fulfillment_order"]["merchant_requests"]
    assert (sent["kind"], sent["message"], sent["status"]) == (
        "fulfillment_request", f"{THAI} {EMOJI}", "submitted")
    assert RFC3339_UTC.match(sent["sent_at"]) and sent["answered_at"] is None
    assert response.body["unsubmitted_fulfillment_order"] is None


ACTIONS = {
    "request_fulfillment": ("fulfillment_request", {}),
    "cancel_fulfillment_request": ("cancel", {}),
    "request_cancellation": ("cancellation_request", {}),
    "revert_to_unfulfilled": ("revert", {}),
    "mark_as_fulfilled": ("mark_fulfilled", {}),
    "hold": ("hold", {"reason": "other"}),
    "release_hold": ("release_hold", {}),
    "open": ("open", {}),
    "send_message": ("messages", {"message": "hello"}),
}


def fo_in_state(api, clock, state):
    """Create an order and return the id of an FO in `state`."""
    payload = {}
    if state == "scheduled":
        payload["fulfill_at"] = iso(clock.now + timedelta(days=1))
    if state == "on_hold":
        payload["hold"] = {"reason": "other"}
    response = api.post("/orders", order_payload(line_items=[
        line("A", 2, "1.00", "acme", "A"), line("B", 1, "1.00", "oldco", "B"),
        line("C", 1, "1.00", None, "C")], **payload))
    assert response.status_code == 201, response.body
    order = response.body
    service = {"legacy open": "oldco", "legacy in_progress": "oldco", "managed open": None,
               "managed closed": None}.get(state, "acme")
    fo_id = fo_of(order, service)["id"]
    if state in ("in_progress", "legacy in_progress"):
        assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    if state in ("closed", "managed closed"):
        mark(api, fo_id)
    if state == "cancelled":
        assert api.post(f"/orders/{order['id']}/cancel", {}).status_code == 200
    return fo_id


SUPPORTED = {
    "open": {"request_fulfillment", "mark_as_fulfilled", "hold"},
    "legacy open": {"request_fulfillment", "mark_as_fulfilled", "hold"},
    "managed open": {"mark_as_fulfilled", "hold"},
    "on_hold": {"release_hold"},
    "scheduled": {"open"},
    "in_progress": {"cancel_fulfillment_request", "send_message"},
    "legacy in_progress": {"send_message"},
    "closed": set(),  # marked fulfilled by the merchant: the service never saw it
    "managed closed": set(),
    "cancelled": set(),
}


@pytest.mark.parametrize("state", SUPPORTED)
def test_supported_actions_list_what_the_fo_allows(api, clock, state):
    fo_id = fo_in_state(api, clock, state)

    fo = api.get(f"/fulfillment_orders/{fo_id}").body

    assert set(fo["supported_actions"]) == SUPPORTED[state]
    assert len(fo["supported_actions"]) == len(set(fo["supported_actions"]))


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("state", SUPPORTED)
def test_an_action_succeeds_exactly_when_supported_actions_lists_it(api, clock, state, action):
    fo_id = fo_in_state(api, clock, state)
    listed = action in api.get(f"/fulfillment_orders/{fo_id}").body["supported_actions"]
    path, body = ACTIONS[action]

    response = api.post(f"/fulfillment_orders/{fo_id}/{path}", body)

    if listed:
        assert response.status_code in (200, 201), response.body
    else:
        assert response.status_code == 409, response.body
        assert response.body["code"] == "invalid_transition"


def test_legacy_refusal_tells_the_merchant_to_contact_the_service(api, clock):
    fo_id = fo_in_state(api, clock, "legacy in_progress")

    response = api.post(f"/fulfillment_orders/{fo_id}/cancel", {})

    assert response.status_code == 409, response.body
    assert "contact" in response.body["detail"].lower()


# ---- text and timeline --------------------------------------------------------------------


def test_thai_and_emoji_round_trip_exactly_in_titles_addresses_names_and_notes(api):
    title = f"เสื้อยืด {EMOJI}"
    sku = "ＳＫＵ－１"
    decomposed = "Cafe\u0301 \u0e01\u0e34"
    address = {"name": f"สมชาย ใจดี {EMOJI}", "address1": f"{THAI} ถนนสุขุมวิท",
               "address2": decomposed, "city": "กรุงเทพมหานคร", "country_code": "TH"}
    note = f"{THAI} — {EMOJI}\nline two\t{decomposed}"
    body = order_payload(name=f"#ร้าน {EMOJI}", shipping_address=address,
                         hold={"reason": "other", "note": note},
                         line_items=[line(title, 1, "1.00", "acme", sku)])

    created = api.post("/orders", body)

    assert created.status_code == 201, created.body
    for order in (created.body, get_order(api, created.body["id"]),
                  api.get("/orders").body["orders"][0]):
        assert order["name"] == f"#ร้าน {EMOJI}"
        assert order["shipping_address"] == address
        assert (order["line_items"][0]["title"], order["line_items"][0]["sku"]) == (title, sku)
        fo = fo_of(order, "acme")
        assert (fo["line_items"][0]["title"], fo["hold"]["note"]) == (title, note)
    assert timeline_of(api, created.body["id"])[0]["message"] == note
    raw = api.get(f"/orders/{created.body['id']}").data
    for text in (THAI, EMOJI, title, decomposed):
        assert text.encode("utf-8") in raw


def test_thai_hold_note_is_verbatim_in_the_hold_event(api, create_order):
    order = create_order()
    note = f"  {THAI} {EMOJI}  "

    api.post(f"/fulfillment_orders/{fo_of(order, None)['id']}/hold",
             {"reason": "awaiting_payment", "note": note})

    event = timeline_of(api, order["id"])[-1]
    assert event["message"] == note
    assert event["fulfillment_order_id"] == fo_of(order, None)["id"]
    assert event["actor"] == "merchant"


def test_timeline_has_exactly_one_event_per_state_change_oldest_first(api, clock, create_order):
    order = create_order(transactions=[authorization()])
    acme = fo_of(order, "acme")
    steps = [
        ("POST", f"/fulfillment_orders/{acme['id']}/hold", {"reason": "other", "note": THAI}),
        ("POST", f"/fulfillment_orders/{acme['id']}/release_hold", {}),
        ("POST", f"/fulfillment_orders/{acme['id']}/mark_fulfilled",
         {"line_items": [{"id": fo_line(acme, "MUG-1")["id"], "quantity": 1}]}),
        ("POST", f"/orders/{order['id']}/transactions", {"kind": "capture", "amount": "45.50"}),
        ("PATCH", f"/orders/{order['id']}", {"email": "new@example.com"}),
        ("POST", f"/orders/{order['id']}/archive", {}),
        ("POST", f"/orders/{order['id']}/unarchive", {}),
    ]
    refused = [
        ("POST", f"/fulfillment_orders/{acme['id']}/release_hold", {}),
        ("POST", f"/orders/{order['id']}/transactions", {"kind": "capture", "amount": "1.00"}),
        ("POST", f"/orders/{order['id']}/unarchive", {}),
    ]
    counts = [len(timeline_of(api, order["id"]))]
    for method, path, body in steps:
        clock.advance(minutes=1)
        response = api.call(method, path, body)
        assert response.status_code in (200, 201), (path, response.body)
        counts.append(len(timeline_of(api, order["id"])))
    for method, path, body in refused:
        api.call(method, path, body)

    events = timeline_of(api, order["id"])
    assert counts == list(range(1, len(steps) + 2))
    assert len(events) == len(steps) + 1
    assert [event["at"] for event in events] == sorted(event["at"] for event in events)
    assert len({event["at"] for event in events}) == len(events)
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)
    assert {event["actor"] for event in events} == {"merchant"}
    assert events[1]["message"] == THAI
    assert [event["fulfillment_order_id"] for event in events[1:4]] == [acme["id"]] * 3
    assert all(RFC3339_UTC.match(event["at"]) for event in events)
    assert all({"id", "at", "actor", "kind", "fulfillment_order_id", "message", "data"}
               <= set(event) for event in events)


def test_timeline_of_an_unknown_order_is_404(api):
    response = api.get("/orders/424242/timeline")

    assert response.status_code == 404, response.body
    assert response.body["code"] == "not_found"


class SteppingClock:
    """A request clock that moves one second at each reading."""

    def __init__(self, start):
        self.next = start

    def __call__(self):
        moment, self.next = self.next, self.next + timedelta(seconds=1)
        return moment


def test_a_request_is_judged_at_one_moment(api, clock, monkeypatch):
    expires_at = clock.now + timedelta(days=1)
    created = api.post("/orders", order_payload(
        line_items=MANAGED_ONLY, transactions=[authorization(iso(expires_at))]))
    assert created.status_code == 201, created.body
    # The list filters and renders the page with one reading: never listed as authorized and
    # shown as expired because the authorization expired between two readings.
    monkeypatch.setattr("handlers.parsing.utcnow", SteppingClock(expires_at - timedelta(seconds=1)))
    listed = api.get("/orders?payment_status=authorized")
    assert [(order["id"], order["payment_status"]) for order in listed.body["orders"]] == [
        (created.body["id"], "authorized")]

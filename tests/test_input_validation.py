"""Input at the edges of its range: times, amounts, keys and flags are refused with a 422 naming
the field (never a 500), and a refused webhook delivery is still kept."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from conftest import SERVICE_URLS, fo_of, order_payload

from adapter import service_events, store
from adapter.models import OutboxMessage, WebhookDelivery
from adapter.recordings import parse_moment
from adapter.service_client import MAX_RETRY_AFTER_SECONDS, retry_after_seconds
from handlers.webhooks_cli import webhooks_cli

# Each is a valid RFC 3339 time whose UTC form falls outside the calendar Python can hold.
OVERFLOWING = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]
OUT_OF_RANGE = [*OVERFLOWING, "9999-06-01T00:00:00Z", "1969-12-31T23:59:59Z"]
NOT_RFC3339 = [
    "2026-01-01",  # a date without time or offset
    "2026-W01-1",  # ISO week date
    "2026-001",  # ISO ordinal date
    "2026-01-01T10:00:00",  # no offset
    "2026-01-01T10:00Z",  # no seconds
    "2026-01-01 10:00:00Z",  # space for T
    "20260101T100000Z",  # ISO basic format
    "2026-01-01T10:00:00+0700",  # offset without its colon
    "2026-01-01T10:00:00+07",  # offset without minutes
    "2026-01-01T10:00:00.Z",  # a point without digits
    "๒๐๒๖-01-01T10:00:00Z",  # Thai digits
    "2026-02-30T10:00:00Z",  # no such day
    "2026-01-01T24:00:00Z",
    "2026-01-01T10:60:00Z",
    "2026-12-31T23:59:60Z",  # leap second
    "2026-01-01T10:00:00+24:00",
    "2026-01-01T10:00:00+07:60",
    " 2026-01-01T10:00:00Z",
    "",
    "garbage",
    1767261600,
    True,
    ["2026-01-01T10:00:00Z"],
    {"at": "2026-01-01T10:00:00Z"},
]
# (given, as answered in UTC)
RFC3339_ACCEPTED = [
    ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"),
    ("2026-03-01t10:00:00z", "2026-03-01T10:00:00Z"),
    ("2026-03-01T17:00:00+07:00", "2026-03-01T10:00:00Z"),
    ("2026-03-01T05:30:00-04:30", "2026-03-01T10:00:00Z"),
    ("2026-03-01T10:00:00-00:00", "2026-03-01T10:00:00Z"),
    ("2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.500000Z"),
    ("2026-03-01T10:00:00.123456789+00:00", "2026-03-01T10:00:00.123456Z"),
    ("2026-03-01T00:30:00+01:00", "2026-02-28T23:30:00Z"),
]
NOT_JSON_BOOLEANS = ["true", "false", "yes", "on", "1", 1, 0, None, [], {}]
BLANKS = ["", " ", "\t\n", "\u3000"]


def assert_422(response, *fields):
    """The answer is a validation problem naming exactly `fields`."""
    assert response.status_code == 422, response.body
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.body["code"] == "validation_failed"
    assert sorted(response.body["errors"]) == sorted(fields), response.body


def orders_in_store(api):
    return api.get("/orders").body["orders"]


def deliveries():
    with store.database.connection_context():
        return list(WebhookDelivery.select().order_by(WebhookDelivery.id))


def envelope(event_type, data, **changes):
    body = {"type": event_type, "timestamp": "2026-03-10T12:00:00Z", "data": data, **changes}
    return json.dumps(body, ensure_ascii=False)


@pytest.fixture
def acme_fo(create_order):
    """The id of a new order's acme FO."""
    return fo_of(create_order(), "acme")["id"]


@pytest.fixture
def shipment(api, service, acme_fo):
    """An acme FO requested, accepted and shipped as `SHIP-1`; its id."""
    assert api.post(f"/fulfillment_orders/{acme_fo}/fulfillment_request", {}).status_code == 200
    accepted = service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": acme_fo})
    assert accepted.status_code == 200, accepted.body
    created = service.send("acme", "fulfillment.created",
                           {"fulfillment_order_id": acme_fo, "external_id": "SHIP-1"})
    assert created.status_code == 200, created.body
    return acme_fo


# ---- 1. times -----------------------------------------------------------------------------------


def _order_with(field, value):
    if field == "transactions.0.expires_at":
        return order_payload(transactions=[{"kind": "authorization", "amount": "1.00",
                                            "expires_at": value}])
    return order_payload(**{field: value})


ORDER_TIME_FIELDS = ["payment_due_at", "fulfill_at", "transactions.0.expires_at"]


@pytest.mark.parametrize("value", OUT_OF_RANGE + NOT_RFC3339)
@pytest.mark.parametrize("field", ORDER_TIME_FIELDS)
def test_order_time_not_rfc3339_or_out_of_range_is_422_naming_it(api, field, value):
    assert_422(api.post("/orders", _order_with(field, value)), field)
    assert orders_in_store(api) == []


@pytest.mark.parametrize(("given", "answered"), RFC3339_ACCEPTED)
def test_order_time_with_an_offset_is_kept_in_utc(api, given, answered):
    response = api.post("/orders", order_payload(payment_due_at=given))
    assert response.status_code == 201, response.body
    assert response.body["payment_due_at"] == answered
    assert api.get(f"/orders/{response.body['id']}").body["payment_due_at"] == answered


@pytest.mark.parametrize("value", OUT_OF_RANGE + NOT_RFC3339)
def test_transaction_expires_at_not_rfc3339_or_out_of_range_is_422(api, create_order, value):
    order = create_order()
    response = api.post(f"/orders/{order['id']}/transactions",
                        {"kind": "authorization", "amount": "1.00", "expires_at": value})
    assert_422(response, "expires_at")
    assert api.get(f"/orders/{order['id']}").body["transactions"] == []


WEBHOOK_TIME_FIELDS = [
    ("fulfillment_request.accepted", "estimated_shipped_at", {}),
    ("fulfillment.event", "happened_at", {"external_id": "SHIP-1", "status": "in_transit"}),
    ("fulfillment.event", "estimated_delivery_at",
     {"external_id": "SHIP-1", "status": "in_transit", "happened_at": "2026-03-10T12:00:00Z"}),
]


@pytest.mark.parametrize("value", OUT_OF_RANGE + NOT_RFC3339)
@pytest.mark.parametrize(("event_type", "field", "data"), WEBHOOK_TIME_FIELDS)
def test_webhook_time_not_rfc3339_or_out_of_range_is_422_and_kept(
    service, acme_fo, event_type, field, data, value
):
    data = {"fulfillment_order_id": acme_fo, **data, field: value}
    response = service.send("acme", event_type, data)
    assert_422(response, f"data.{field}")
    [kept] = deliveries()
    assert (kept.outcome_status, kept.outcome_code) == (422, "validation_failed")
    assert json.loads(bytes(kept.body))["data"][field] == value


@pytest.mark.parametrize(("given", "answered"), RFC3339_ACCEPTED)
def test_webhook_event_time_with_an_offset_is_kept_in_utc(api, service, shipment, given, answered):
    response = service.send("acme", "fulfillment.event",
                            {"external_id": "SHIP-1", "status": "in_transit", "happened_at": given})
    assert response.status_code == 200, response.body
    [event] = response.body["fulfillment"]["events"]
    assert event["happened_at"] == answered


@pytest.mark.parametrize("value", OUT_OF_RANGE + NOT_RFC3339 + [None])
def test_envelope_timestamp_not_rfc3339_is_422_naming_it(service, acme_fo, value):
    data = {"fulfillment_order_id": acme_fo, "message": "hello"}
    body = envelope("fulfillment_order.message", data, timestamp=value)
    assert_422(service.send("acme", None, None, body=body), "timestamp")
    [kept] = deliveries()
    assert (kept.outcome_status, kept.outcome_code) == (422, "validation_failed")


def test_envelope_without_a_timestamp_is_422_naming_it(service, acme_fo):
    body = json.dumps({"type": "fulfillment_order.message",
                       "data": {"fulfillment_order_id": acme_fo, "message": "hello"}})
    assert_422(service.send("acme", None, None, body=body), "timestamp")


@pytest.mark.parametrize("given", [given for given, _ in RFC3339_ACCEPTED])
def test_envelope_timestamp_in_rfc3339_is_accepted(service, acme_fo, given):
    data = {"fulfillment_order_id": acme_fo, "message": "hello"}
    body = envelope("fulfillment_order.message", data, timestamp=given)
    assert service.send("acme", None, None, body=body).status_code == 200


def test_delivery_whose_handling_faults_is_kept_with_its_500(service, acme_fo, monkeypatch):
    def fault(service_key, data, now):
        raise RuntimeError("a fault of ours")

    monkeypatch.setitem(service_events.HANDLERS, "fulfillment_order.message", fault)
    response = service.send("acme", "fulfillment_order.message",
                            {"fulfillment_order_id": acme_fo, "message": "hello"})
    assert response.status_code == 500
    assert "a fault of ours" not in response.get_data(as_text=True)
    [kept] = deliveries()
    assert (kept.outcome_status, kept.outcome_code) == (500, "internal_error")


@pytest.mark.parametrize(("value", "expected"), [
    ("Fri, 31 Dec 9999 23:59:59 -0100", MAX_RETRY_AFTER_SECONDS),
    ("Fri, 31 Dec 9999 23:59:59 +0100", MAX_RETRY_AFTER_SECONDS),
    ("Mon, 01 Jan 0001 00:00:00 +0100", 0.0),
    ("Mon, 01 Jan 0001 00:00:00 -0100", 0.0),
])
def test_retry_after_date_at_the_ends_of_the_calendar_is_bounded(value, expected):
    assert retry_after_seconds(value, datetime(2026, 3, 1)) == expected


def test_dispatcher_survives_a_retry_after_near_year_9999(create_order, api, outbound, deliver):
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503,
                     headers={"Retry-After": "Fri, 31 Dec 9999 23:59:59 -0100"})
    fo_id = fo_of(create_order(), "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
    deliver(now)
    with store.database.connection_context():
        [message] = OutboxMessage.select()
    assert (message.status, message.last_status_code) == ("pending", 503)
    assert message.next_attempt_at == now + timedelta(seconds=MAX_RETRY_AFTER_SECONDS)


@pytest.mark.parametrize(("text", "expected"), [
    ("9999-12-31T23:59:59-01:00", datetime.max),
    ("0001-01-01T00:00:00+01:00", datetime.min),
    ("2026-03-02T07:00:00+07:00", datetime(2026, 3, 2)),
])
def test_export_since_at_the_ends_of_the_calendar_is_a_bound(text, expected):
    assert parse_moment(text) == expected


@pytest.mark.parametrize(("since", "exported"), [
    ("9999-12-31T23:59:59-01:00", 0), ("0001-01-01T00:00:00+01:00", 1),
])
def test_export_since_beyond_utc_range_runs(app, service, acme_fo, since, exported):
    service.send("acme", "fulfillment_order.message", {"fulfillment_order_id": acme_fo,
                                                       "message": "hello"})
    if "webhooks" not in app.cli.commands:
        app.cli.add_command(webhooks_cli)
    result = app.test_cli_runner().invoke(args=["webhooks", "export", "--since", since])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.count(b"\n") == exported


# ---- 2. amounts -----------------------------------------------------------------------------------

MAX_USD = "9999999999999.99"


def line(price, quantity=1, service=None):
    return {"title": "Thing", "quantity": quantity, "price": price, "fulfillment_service": service}


@pytest.mark.parametrize(("currency", "lines", "field"), [
    ("USD", [line("99999999999999")], "line_items.0.price"),
    ("USD", [line("00000000000001.00")], "line_items.0.price"),
    ("USD", [line("10000000000000.00")], "line_items.0.price"),
    ("USD", [line(MAX_USD, 100000)], "line_items.0.quantity"),
    ("USD", [line(MAX_USD, 2)], "line_items.0.quantity"),
    ("USD", [line("1.00"), line("5000000000000.00", 2)], "line_items.1.quantity"),
    ("USD", [line("5000000000000.00"), line("5000000000000.00")], "line_items.1.quantity"),
    ("USD", [line("9999999999999.98"), line("0.01", 1), line("0.01", 1)], "line_items.2.quantity"),
    ("JPY", [line("9999999999999", 2)], "line_items.0.quantity"),
    ("JPY", [line("9999999999999.5")], "line_items.0.price"),
    ("KWD", [line("9999999999999.999"), line("0.001")], "line_items.1.quantity"),
])
def test_order_total_beyond_13_integer_digits_is_422_naming_the_field(api, currency, lines, field):
    response = api.post("/orders", order_payload(currency=currency, line_items=lines))
    assert_422(response, field)
    assert orders_in_store(api) == []


@pytest.mark.parametrize(("currency", "lines", "total"), [
    ("USD", [line(MAX_USD)], MAX_USD),
    ("USD", [line("9999999999999.98"), line("0.01")], "9999999999999.99"),
    ("USD", [line("99999999.99", 100000)], "9999999999000.00"),
    ("JPY", [line("9999999999999")], "9999999999999"),
    ("KWD", [line("9999999999999.998"), line("0.001")], "9999999999999.999"),
])
def test_order_total_at_the_top_of_the_range_is_stored_exactly(api, currency, lines, total):
    response = api.post("/orders", order_payload(currency=currency, line_items=lines))
    assert response.status_code == 201, response.body
    assert api.get(f"/orders/{response.body['id']}").body["total_price"] == total


@pytest.fixture
def big_order(api):
    """An order of two merchant-managed lines whose total is the largest USD amount."""
    lines = [line("1000000000.00", 9999), line("999999999.99")]
    response = api.post("/orders", order_payload(line_items=lines))
    assert response.status_code == 201, response.body
    assert response.body["total_price"] == MAX_USD
    return response.body


@pytest.mark.parametrize(("edit", "field"), [
    (lambda ids: {"line_items": [{"id": ids[0], "quantity": 10000}]}, "line_items.0.quantity"),
    (lambda ids: {"line_items": [{"id": ids[1], "quantity": 1},
                                 {"id": ids[0], "quantity": 1000000}]}, "line_items.1.quantity"),
    (lambda ids: {"line_items": [{"id": ids[1], "quantity": 2}]}, "line_items.0.quantity"),
    (lambda ids: {"line_items": [{"id": ids[0], "quantity": 9998}, {"id": ids[1], "quantity": 3}]},
     "line_items.1.quantity"),
    (lambda ids: {"add_line_items": [line("0.01")]}, "add_line_items.0.quantity"),
    (lambda ids: {"add_line_items": [line("0.50"), line(MAX_USD, 3)]},
     "add_line_items.1.quantity"),
    (lambda ids: {"line_items": [{"id": ids[0], "quantity": 9998}],
                  "add_line_items": [line("0.50"), line("999999999.99", 2)]},
     "add_line_items.1.quantity"),
    (lambda ids: {"add_line_items": [line("99999999999999.00")]}, "add_line_items.0.price"),
])
def test_edit_taking_a_total_beyond_range_is_422_and_changes_nothing(api, big_order, edit, field):
    ids = [item["id"] for item in big_order["line_items"]]
    response = api.patch(f"/orders/{big_order['id']}", edit(ids))
    assert_422(response, field)
    after = api.get(f"/orders/{big_order['id']}").body
    assert after["total_price"] == MAX_USD
    assert [(item["id"], item["quantity"]) for item in after["line_items"]] == [
        (ids[0], 9999), (ids[1], 1)
    ]
    assert [event["kind"] for event in api.get(f"/orders/{big_order['id']}/timeline").body] == [
        "order.created"
    ]


def test_edit_that_lowers_a_line_to_make_room_is_accepted(api, big_order):
    ids = [item["id"] for item in big_order["line_items"]]
    response = api.patch(f"/orders/{big_order['id']}", {
        "line_items": [{"id": ids[0], "quantity": 9998}],
        "add_line_items": [line("999999999.99")],
    })
    assert response.status_code == 200, response.body
    assert response.body["total_price"] == "9999999999999.98"


def test_transactions_on_the_largest_order_stay_within_range(api):
    order = api.post("/orders", order_payload(line_items=[line(MAX_USD)])).body
    path = f"/orders/{order['id']}/transactions"
    for kind, amount, status in [
        ("authorization", MAX_USD, 201),
        ("authorization", "0.01", 422),
        ("capture", "9999999999999.00", 201),
        ("capture", "1.00", 422),
        ("sale", "0.99", 201),
        ("sale", "0.01", 422),
        ("refund", MAX_USD, 201),
        ("refund", "0.01", 422),
        ("refund", "99999999999999.99", 422),
    ]:
        response = api.post(path, {"kind": kind, "amount": amount})
        assert response.status_code == status, (kind, amount, response.body)
        if status == 422:
            assert list(response.body["errors"]) == ["amount"]
    after = api.get(f"/orders/{order['id']}").body
    assert (after["amount_authorized"], after["amount_captured"], after["amount_refunded"]) == (
        MAX_USD, MAX_USD, MAX_USD
    )
    assert after["payment_status"] == "refunded"


# ---- 3. keys and names that must not be blank ---------------------------------------------------


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("field", ["external_id", "name"])
def test_blank_external_id_or_name_is_422_and_creates_nothing(api, field, blank):
    assert_422(api.post("/orders", order_payload(**{field: blank})), field)
    assert_422(api.post("/orders", order_payload(**{field: blank})), field)
    assert orders_in_store(api) == []


@pytest.mark.parametrize("name", [None, "absent"])
def test_absent_or_null_name_defaults(api, name):
    body = order_payload() if name == "absent" else order_payload(name=None)
    response = api.post("/orders", body)
    assert response.status_code == 201, response.body
    assert response.body["name"] == f"#{1000 + response.body['id']}"


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("field", ["fulfillment_service", "title"])
def test_blank_line_item_key_or_title_is_422(api, create_order, field, blank):
    lines = order_payload()["line_items"]
    lines[1][field] = blank
    assert_422(api.post("/orders", order_payload(line_items=lines)), f"line_items.1.{field}")
    order = create_order()
    added = {**lines[1]}
    assert_422(api.patch(f"/orders/{order['id']}", {"add_line_items": [added]}),
               f"add_line_items.0.{field}")


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize(("path", "body", "field"), [
    ("/fulfillment_orders/{fo}/mark_fulfilled", {"tracking": {"number": None}}, "tracking.number"),
    ("/fulfillment_orders/{fo}/messages", {"message": None}, "message"),
])
def test_blank_tracking_number_or_required_message_is_422(api, create_order, path, body, field,
                                                          blank):
    order = create_order()
    fo = fo_of(order, None)["id"]
    body = json.loads(json.dumps(body).replace("null", json.dumps(blank)))
    assert_422(api.post(path.format(fo=fo, order=order["id"]), body), field)


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize(("event_type", "data", "field"), [
    ("fulfillment.created", {"fulfillment_order_id": 1, "external_id": None}, "external_id"),
    ("fulfillment.created", {"fulfillment_order_id": 1, "external_id": "S-1",
                             "tracking": {"number": None}}, "tracking.number"),
    ("fulfillment.tracking_updated", {"external_id": None, "tracking": {"number": "1Z"}},
     "external_id"),
    ("fulfillment.tracking_updated", {"external_id": "S-1", "tracking": {"number": None}},
     "tracking.number"),
    ("fulfillment.event", {"external_id": None, "status": "delivered",
                           "happened_at": "2026-03-10T12:00:00Z"}, "external_id"),
    ("fulfillment_order.message", {"fulfillment_order_id": 1, "message": None}, "message"),
])
def test_blank_webhook_key_is_422_naming_it(service, event_type, data, field, blank):
    data = json.loads(json.dumps(data).replace("null", json.dumps(blank)))
    assert_422(service.send("acme", event_type, data), f"data.{field}")
    [kept] = deliveries()
    assert kept.outcome_status == 422


@pytest.mark.parametrize("query", ["service=", "service=%20", "service=,", "service=%09,%20"])
def test_blank_service_filter_is_422(api, create_order, query):
    create_order()
    assert_422(api.get(f"/orders?{query}"), "service")


# ---- 4. booleans -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_JSON_BOOLEANS)
@pytest.mark.parametrize(("path", "field", "fo_service"), [
    ("/orders/{order}/cancel", "refund", None),
    ("/fulfillment_orders/{fo}/fulfillment_request", "notify_customer", "acme"),
    ("/fulfillment_orders/{fo}/mark_fulfilled", "notify_customer", None),
])
def test_merchant_flag_that_is_not_a_json_boolean_is_422(api, create_order, path, field,
                                                         fo_service, value):
    order = create_order()
    fo = fo_of(order, fo_service)
    response = api.post(path.format(order=order["id"], fo=fo["id"]), {field: value})
    assert_422(response, field)
    after = api.get(f"/orders/{order['id']}").body
    assert after["order_status"] == ["open"]
    assert fo_of(after, fo_service)["status"] == fo["status"]
    assert fo_of(after, fo_service)["request_status"] == "unsubmitted"


@pytest.mark.parametrize("value", [True, False])
def test_merchant_flag_takes_json_true_and_false(api, create_order, value):
    order = create_order()
    response = api.post(f"/orders/{order['id']}/cancel", {"refund": value})
    assert response.status_code == 200, response.body


@pytest.mark.parametrize("value", NOT_JSON_BOOLEANS)
@pytest.mark.parametrize(("event_type", "data"), [
    ("fulfillment.created", {"fulfillment_order_id": 1, "external_id": "S-1"}),
    ("fulfillment.tracking_updated", {"external_id": "S-1", "tracking": {"number": "1Z"}}),
])
def test_webhook_flag_that_is_not_a_json_boolean_is_422(service, event_type, data, value):
    response = service.send("acme", event_type, {**data, "notify_customer": value})
    assert_422(response, "data.notify_customer")


@pytest.mark.parametrize("value", ["1", "0", "yes", "on", "True", "TRUE", "", "true,false", " true"])
def test_needs_attention_filter_other_than_true_or_false_is_422(api, value):
    response = api.get("/orders", query_string={"needs_attention": value})
    assert_422(response, "needs_attention")


@pytest.mark.parametrize(("value", "listed"), [("true", 0), ("false", 1)])
def test_needs_attention_filter_takes_true_and_false(api, create_order, value, listed):
    create_order()
    response = api.get("/orders", query_string={"needs_attention": value})
    assert response.status_code == 200, response.body
    assert len(response.body["orders"]) == listed

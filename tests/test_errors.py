"""Every error is RFC 9457 problem+json with a stable code (SPEC 5), and no input gets a 500."""

import importlib
import json

import pytest
from conftest import TOKEN, ServiceSide, fo_of, order_payload

from adapter.errors import AdapterError

# SPEC 5's stable codes, and the 503 of a store that is down.
SPEC_CODES = {
    "unauthorized", "not_found", "malformed_json", "validation_failed", "unsupported_media_type",
    "payload_too_large", "signature_invalid", "invalid_transition", "order_locked",
    "idempotency_conflict", "over_fulfillment", "method_not_allowed", "store_unavailable",
}
# Codes a request cannot cause here, each with the test (module, function) that causes it.
CAUSED_ELSEWHERE = {
    "store_unavailable": (
        "test_store_start", "test_a_full_sqlite_disk_answers_503_keeps_everything_and_recovers"
    ),
}
MAX_WEBHOOK_BODY = 262144


def send(api, method, path, data=None, content_type=None, headers=None, token=TOKEN):
    """Send raw bytes; `headers` replace the bearer token when they carry Authorization."""
    all_headers = {"Authorization": f"Bearer {token}"} if token else {}
    all_headers.update(headers or {})
    response = api.client.open(path, method=method, data=data, content_type=content_type,
                               headers=all_headers)
    response.body = response.get_json(silent=True)
    return response


def json_bytes(value):
    return json.dumps(value, ensure_ascii=False).encode()


@pytest.fixture
def order(create_order):
    """An order with an acme FO and a merchant-managed FO."""
    return create_order()


def cancel_twice(api, order):
    api.post(f"/orders/{order['id']}/cancel", {})
    return api.post(f"/orders/{order['id']}/cancel", {})


def decline_then_approve(api, order):
    api.post(f"/fulfillment_orders/{fo_of(order, None)['id']}/mark_fulfilled", {})
    created = api.post(f"/orders/{order['id']}/returns", {
        "requested_by": "customer",
        "line_items": [{"line_item_id": order["line_items"][2]["id"], "quantity": 1}]}).body
    api.post(f"/returns/{created['id']}/decline", {})
    return api.post(f"/returns/{created['id']}/approve", {})


def edit_while_in_progress(api, order):
    api.post(f"/fulfillment_orders/{fo_of(order, 'acme')['id']}/fulfillment_request", {})
    return api.patch(f"/orders/{order['id']}", {"email": "new@example.com"})


def over_fulfill(api, order):
    acme = fo_of(order, "acme")
    return api.post(f"/fulfillment_orders/{acme['id']}/mark_fulfilled",
                    {"line_items": [{"id": acme["line_items"][0]["id"], "quantity": 99}]})


def unsigned_webhook(api, order):
    body = json_bytes({"type": "fulfillment_order.message", "data": {
        "fulfillment_order_id": fo_of(order, "acme")["id"], "message": "hello"}})
    return send(api, "POST", "/webhooks/acme", body, "application/json", token=None)


def webhook_id_reused_with_another_body(api, order):
    service = ServiceSide(api.client, outbound=None)
    fo_id = fo_of(order, "acme")["id"]
    for message in ("first", "second"):
        response = service.send("acme", "fulfillment_order.message",
                                {"fulfillment_order_id": fo_id, "message": message},
                                webhook_id="msg_reused")
    return response


def oversized_webhook(api, order):
    body = b'{"type": "fulfillment_order.message", "data": {"message": "' + (
        b"x" * MAX_WEBHOOK_BODY) + b'"}}'
    return send(api, "POST", "/webhooks/acme", body, "application/json", token=None)


ERROR_CASES = [
    ("missing token", lambda api, o: api.get("/orders", token=None), 401, "unauthorized"),
    ("wrong token", lambda api, o: api.get("/orders", token="not-the-token"), 401,
     "unauthorized"),
    ("wrong scheme", lambda api, o: send(api, "GET", "/orders", token=None,
                                         headers={"Authorization": f"Basic {TOKEN}"}),
     401, "unauthorized"),
    ("token without scheme", lambda api, o: send(api, "GET", "/orders", token=None,
                                                 headers={"Authorization": TOKEN}),
     401, "unauthorized"),
    ("empty bearer", lambda api, o: send(api, "GET", "/orders", token=None,
                                         headers={"Authorization": "Bearer "}),
     401, "unauthorized"),
    ("token with a suffix", lambda api, o: api.get("/orders", token=TOKEN + "x"), 401,
     "unauthorized"),
    ("missing token on an FO action",
     lambda api, o: api.post(f"/fulfillment_orders/{fo_of(o, None)['id']}/hold",
                             {"reason": "other"}, token=None), 401, "unauthorized"),
    ("missing token on a return action", lambda api, o: api.post("/returns/1/approve", {},
                                                                 token=None),
     401, "unauthorized"),
    ("unknown order", lambda api, o: api.get("/orders/999999"), 404, "not_found"),
    ("unknown order on PATCH", lambda api, o: api.patch("/orders/999999", {"email": None}), 404,
     "not_found"),
    ("unknown fulfillment order", lambda api, o: api.get("/fulfillment_orders/999999"), 404,
     "not_found"),
    ("unknown fulfillment order action",
     lambda api, o: api.post("/fulfillment_orders/999999/release_hold", {}), 404, "not_found"),
    ("unknown return", lambda api, o: api.post("/returns/999999/close", {}), 404, "not_found"),
    ("unknown route", lambda api, o: api.get("/no/such/route"), 404, "not_found"),
    ("unknown route without token", lambda api, o: api.get("/no/such/route", token=None), 404,
     "not_found"),
    ("unknown webhook service", lambda api, o: send(api, "POST", "/webhooks/nosuch", b"{}",
                                                    "application/json", token=None),
     404, "not_found"),
    ("DELETE an order", lambda api, o: api.call("DELETE", f"/orders/{o['id']}"), 405,
     "method_not_allowed"),
    ("PUT the order list", lambda api, o: api.call("PUT", "/orders", {}), 405,
     "method_not_allowed"),
    ("GET a cancel action", lambda api, o: api.get(f"/orders/{o['id']}/cancel"), 405,
     "method_not_allowed"),
    ("invalid JSON", lambda api, o: send(api, "POST", "/orders", b'{"currency": "USD",',
                                         "application/json"), 400, "malformed_json"),
    ("invalid UTF-8", lambda api, o: send(api, "POST", "/orders",
                                          b'{"currency": "USD", "name": "\xff\xfe"}',
                                          "application/json"), 400, "malformed_json"),
    ("trailing garbage", lambda api, o: send(api, "POST", "/orders", b"{} {}",
                                             "application/json"), 400, "malformed_json"),
    ("NaN literal", lambda api, o: send(api, "PATCH", f"/orders/{o['id']}",
                                        b'{"line_items": [{"id": 1, "quantity": NaN}]}',
                                        "application/json"), 400, "malformed_json"),
    ("text/plain body", lambda api, o: send(api, "POST", "/orders",
                                            json_bytes(order_payload()), "text/plain"),
     415, "unsupported_media_type"),
    ("form body on PATCH", lambda api, o: send(api, "PATCH", f"/orders/{o['id']}",
                                               b"email=a%40b.com",
                                               "application/x-www-form-urlencoded"),
     415, "unsupported_media_type"),
    ("empty order", lambda api, o: api.post("/orders", {}), 422, "validation_failed"),
    ("bad email on PATCH", lambda api, o: api.patch(f"/orders/{o['id']}", {"email": "x"}), 422,
     "validation_failed"),
    ("bad list limit", lambda api, o: api.get("/orders?limit=0"), 422, "validation_failed"),
    ("cancel twice", cancel_twice, 409, "invalid_transition"),
    ("release an open FO", lambda api, o: api.post(
        f"/fulfillment_orders/{fo_of(o, 'acme')['id']}/release_hold", {}), 409,
     "invalid_transition"),
    ("approve a declined return", decline_then_approve, 409, "invalid_transition"),
    ("edit while in progress", edit_while_in_progress, 409, "order_locked"),
    ("over-fulfillment", over_fulfill, 409, "over_fulfillment"),
    ("webhook body too large", oversized_webhook, 413, "payload_too_large"),
    ("unsigned webhook", unsigned_webhook, 401, "signature_invalid"),
    ("webhook id reused with another body", webhook_id_reused_with_another_body, 422,
     "idempotency_conflict"),
]
# Cases that change something before the error they show.
WRITING_CASES = {"cancel twice", "edit while in progress", "approve a declined return",
                 "webhook id reused with another body"}


@pytest.mark.parametrize(("call", "status", "code"), [case[1:] for case in ERROR_CASES],
                         ids=[case[0] for case in ERROR_CASES])
def test_error_is_problem_json_with_a_stable_code(api, order, call, status, code):
    response = call(api, order)

    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.data)
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str) and body[key].strip(), key
    if code == "validation_failed":
        assert isinstance(body["errors"], dict) and body["errors"]
        for field, messages in body["errors"].items():
            assert isinstance(field, str)
            assert messages and all(isinstance(m, str) and m for m in messages)
    else:
        assert "errors" not in body
    if code == "unauthorized":
        assert response.headers["WWW-Authenticate"].split()[0] == "Bearer"
    if status == 405:
        assert response.headers["Allow"]


def error_classes(base=AdapterError):
    """Every subclass of `base`, at any depth."""
    for cls in base.__subclasses__():
        yield cls
        yield from error_classes(cls)


def test_every_error_class_has_a_case_of_its_code_and_status():
    statuses = {cls.code: cls.status for cls in error_classes()}
    assert {case[3] for case in ERROR_CASES} | set(CAUSED_ELSEWHERE) == set(statuses)
    for name, _, status, code in ERROR_CASES:
        assert statuses[code] == status, name
    for module, test in CAUSED_ELSEWHERE.values():
        assert callable(getattr(importlib.import_module(module), test))


def test_the_error_codes_are_the_spec_codes():
    assert {cls.code for cls in error_classes()} == SPEC_CODES


def test_an_error_writes_nothing(api, order):
    before = api.get(f"/orders/{order['id']}").body
    events = api.get(f"/orders/{order['id']}/timeline").body

    for case in ERROR_CASES:
        if case[0] not in WRITING_CASES:
            case[1](api, order)

    assert api.get(f"/orders/{order['id']}").body == before
    assert api.get(f"/orders/{order['id']}/timeline").body == events
    assert [o["id"] for o in api.get("/orders").body["orders"]] == [order["id"]]


# ---- no input gets a 500 ----------------------------------------------------------------------


def body_with(**changes):
    return json_bytes(order_payload(**changes))


def line_with(**fields):
    line = {"sku": "X", "title": "X", "quantity": 1, "price": "1.00", "fulfillment_service": None}
    line.update(fields)
    return json_bytes(order_payload(line_items=[line]))


DEEP = 10000
NASTY_ORDERS = [
    ("deeply nested arrays", b"[" * DEEP + b"]" * DEEP),
    ("deeply nested objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    ("deeply nested line items",
     b'{"currency": "USD", "line_items": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("deeply nested address", body_with(shipping_address=None).replace(
        b'"shipping_address": null', b'"shipping_address": ' + b'{"name": ' * DEEP + b'"x"' +
        b"}" * DEEP)),
    ("huge quantity", line_with(quantity=10**30)),
    ("quantity with 5000 digits", line_with(quantity=0).replace(b'"quantity": 0',
                                                                b'"quantity": ' + b"9" * 5000)),
    ("price with 5000 digits", line_with(price="9" * 5000)),
    ("price with a huge exponent", line_with(price="1e999999999")),
    ("quantity 1e999", line_with(quantity=0).replace(b'"quantity": 0', b'"quantity": 1e999')),
    ("NaN quantity", line_with(quantity=0).replace(b'"quantity": 0', b'"quantity": NaN')),
    ("Infinity quantity", line_with(quantity=0).replace(b'"quantity": 0',
                                                        b'"quantity": -Infinity')),
    ("null byte in a title", line_with(title="a\u0000b")),
    ("null byte in the name", body_with(name="#\u00001")),
    ("null byte in a SKU", line_with(sku="\u0000")),
    ("null byte in the address", body_with(shipping_address={"city": "Bang\u0000kok"})),
    ("null byte in the external id", body_with(external_id="ext\u0000")),
    ("null byte in a hold note", body_with(hold={"reason": "other", "note": "\u0000"})),
    ("null byte in the currency", body_with(currency="US\u0000")),
    ("raw null byte", b'{"currency": "USD\x00"}'),
    ("lone surrogate in a title", line_with(title="TITLE").replace(b"TITLE", b"\\ud800")),
    ("lone surrogate in the address",
     body_with(shipping_address={"city": "CITY"}).replace(b"CITY", b"\\udfff")),
    ("lone surrogate in a hold note",
     body_with(hold={"reason": "other", "note": "NOTE"}).replace(b"NOTE", b"\\ud83d")),
    ("very long title", line_with(title="ก" * 1_000_000)),
    ("very long name", body_with(name="n" * 100_000)),
    ("very long external id", body_with(external_id="e" * 100_000)),
    ("very long address line", body_with(shipping_address={"address1": "a" * 100_000})),
    ("very long hold note", body_with(hold={"reason": "other", "note": "🚚" * 500_000})),
    ("very long unknown key", body_with(**{"k" * 100_000: 1})),
    ("very long currency", body_with(currency="U" * 100_000)),
    ("many line items", json_bytes(order_payload(line_items=[
        {"title": "x", "quantity": 1, "price": "0.01"}] * 5000))),
    ("array body", b"[]"),
    ("array of orders", json_bytes([order_payload()])),
    ("string body", b'"order"'),
    ("null body", b"null"),
    ("array address", body_with(shipping_address=["Bangkok"])),
    ("array line item", body_with(line_items=[[]])),
    ("array hold", body_with(hold=["other"])),
    ("array transaction", body_with(transactions=[["sale", "1.00"]])),
    ("object transactions", body_with(transactions={"kind": "sale"})),
    ("object title", line_with(title={"th": "เสื้อ"})),
    ("array price", line_with(price=["1.00"])),
    ("year 1", body_with(fulfill_at="0001-01-01T00:00:00Z")),
    ("year 9999", body_with(payment_due_at="9999-12-31T23:59:59Z")),
    ("year 10000", body_with(fulfill_at="10000-01-01T00:00:00Z")),
    ("offset +14:00", body_with(fulfill_at="2030-01-01T00:00:00+14:00")),
    ("numeric date", body_with(payment_due_at=1e308)),
    ("expiry in year 10000", body_with(transactions=[
        {"kind": "authorization", "amount": "1.00", "expires_at": "10000-01-01T00:00:00Z"}])),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + body_with()),
    ("UTF-16 body", json.dumps(order_payload()).encode("utf-16")),
    ("whitespace only", b"   \n\t  "),
]


def assert_not_500(response):
    assert response.status_code < 500, response.data[:300]
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("body", [case[1] for case in NASTY_ORDERS],
                         ids=[case[0] for case in NASTY_ORDERS])
def test_nasty_order_body_is_never_a_500(api, body):
    response = send(api, "POST", "/orders", body, "application/json")

    assert_not_500(response)
    assert api.get("/orders").status_code == 200


NASTY_EDITS = [
    ("deeply nested arrays", b"[" * DEEP + b"]" * DEEP),
    ("deeply nested objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    ("deeply nested line items", b'{"line_items": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("huge line id", json_bytes({"line_items": [{"id": 10**30, "quantity": 1}]})),
    ("largest line id", json_bytes({"line_items": [{"id": 2**53, "quantity": 1}]})),
    ("line id beyond 64 bits", json_bytes({"line_items": [{"id": 2**64 + 1, "quantity": 1}]})),
    ("huge quantity", json_bytes({"line_items": [{"id": 1, "quantity": 10**30}]})),
    ("NaN quantity", b'{"line_items": [{"id": 1, "quantity": NaN}]}'),
    ("null byte in the email", json_bytes({"email": "a\u0000@example.com"})),
    ("null byte in the address", json_bytes({"shipping_address": {"name": "\u0000"}})),
    ("null byte in an added title", json_bytes({"add_line_items": [
        {"title": "a\u0000", "quantity": 1, "price": "1.00"}]})),
    ("lone surrogate in the address", b'{"shipping_address": {"name": "\\ud800"}}'),
    ("lone surrogate in an added title",
     b'{"add_line_items": [{"title": "\\udc00", "quantity": 1, "price": "1.00"}]}'),
    ("very long address line", json_bytes({"shipping_address": {"address1": "a" * 1_000_000}})),
    ("very long added title", json_bytes({"add_line_items": [
        {"title": "t" * 1_000_000, "quantity": 1, "price": "1.00"}]})),
    ("very long email", json_bytes({"email": "a" * 100_000 + "@example.com"})),
    ("array body", b"[]"),
    ("array address", json_bytes({"shipping_address": []})),
    ("object line items", json_bytes({"line_items": {"id": 1}})),
    ("array line edit", json_bytes({"line_items": [[1, 2]]})),
    ("price with 5000 digits", json_bytes({"add_line_items": [
        {"title": "x", "quantity": 1, "price": "9" * 5000}]})),
    ("invalid UTF-8", b'{"email": "\xc3\x28"}'),
]


@pytest.mark.parametrize("body", [case[1] for case in NASTY_EDITS],
                         ids=[case[0] for case in NASTY_EDITS])
def test_nasty_edit_body_is_never_a_500(api, order, body):
    response = send(api, "PATCH", f"/orders/{order['id']}", body, "application/json")

    assert_not_500(response)
    assert api.get(f"/orders/{order['id']}").status_code == 200


HUGE = "9" * 25
NASTY_PATHS = [
    ("GET", f"/orders/{HUGE}"),
    ("PATCH", f"/orders/{HUGE}"),
    ("POST", f"/orders/{HUGE}/cancel"),
    ("POST", f"/orders/{HUGE}/transactions"),
    ("GET", f"/orders/{HUGE}/timeline"),
    ("GET", f"/fulfillment_orders/{HUGE}"),
    ("POST", f"/fulfillment_orders/{HUGE}/hold"),
    ("POST", f"/returns/{HUGE}/approve"),
    ("GET", "/orders/-1"),
    ("GET", "/orders/%00"),
    ("GET", "/orders?limit=" + HUGE),
    ("GET", "/orders?cursor=%00"),
    ("GET", "/orders?payment_status=" + "paid," * 5000),
    ("GET", "/orders?service=%00"),
]


@pytest.mark.parametrize(("method", "path"), NASTY_PATHS,
                         ids=[f"{m} {p[:40]}" for m, p in NASTY_PATHS])
def test_nasty_path_or_query_is_never_a_500(api, order, method, path):
    body = {"kind": "sale", "amount": "1.00"} if path.endswith("transactions") else (
        {"reason": "other"} if path.endswith("hold") else {})

    response = api.call(method, path, body if method != "GET" else None)

    assert_not_500(response)
    assert response.status_code >= 400 or method == "GET"

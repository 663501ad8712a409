"""Service → adapter webhooks (SPEC 4.2): checks in order, signatures, idempotency, audit, order.

Also the body size limit. Bodies are signed here over raw bytes, independently of the
adapter's own signing code, so both sides of the scheme are checked against the SPEC.
"""

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SECRETS, Api, ServiceSide, fo_of, make_secret

from adapter import store
from adapter.models import WebhookDelivery, WebhookReceipt
from app import create_app

THAI_EMOJI = "ส่งของแล้วค่ะ 📦🚚 ขอบคุณ 🙏"


# ---- helpers ------------------------------------------------------------------------------------


def sign(secret, webhook_id, timestamp, body):
    """Return a Standard Webhooks `v1,` signature of raw `body` bytes (SPEC 4)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def envelope(event_type, data):
    """Return the JSON text of a webhook envelope."""
    return json.dumps(
        {"type": event_type, "timestamp": "2026-03-10T12:00:00Z", "data": data}, ensure_ascii=False
    )


def unix(at=None):
    """Return unix seconds of an aware or naive-UTC datetime (default: now)."""
    at = at or datetime.now(UTC)
    return int(at.replace(tzinfo=UTC).timestamp()) if at.tzinfo is None else int(at.timestamp())


def signed_headers(service_key, body, *, webhook_id=None, timestamp=None, secret=None,
                   content_type="application/json"):
    """Return headers that sign raw `body` bytes correctly for `service_key`."""
    webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
    timestamp = unix() if timestamp is None else timestamp
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret or SECRETS[service_key], webhook_id, timestamp, body),
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def post_raw(client, service_key, body, headers, **kwargs):
    """POST raw bytes to `/webhooks/{service_key}` with exactly these headers."""
    response = client.post(f"/webhooks/{service_key}", data=body, headers=headers, **kwargs)
    response.body = response.get_json(silent=True)
    return response


def assert_problem(response, status, code):
    assert response.status_code == status, (response.status_code, response.body)
    assert response.mimetype == "application/problem+json"
    assert response.body["code"] == code
    assert response.body["status"] == status


def assert_applied(response):
    assert response.status_code == 200, response.body
    assert response.mimetype == "application/json"
    assert response.body["status"] == "applied"
    assert "Idempotent-Replayed" not in response.headers


def line(service, quantity=1, sku="SKU-1", title="Thing"):
    return {"sku": sku, "title": title, "quantity": quantity, "price": "10.00",
            "fulfillment_service": service}


def get_fo(api, fo_id):
    response = api.get(f"/fulfillment_orders/{fo_id}")
    assert response.status_code == 200, response.body
    return response.body


def get_order(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def timeline(api, order_id):
    response = api.get(f"/orders/{order_id}/timeline")
    assert response.status_code == 200, response.body
    return response.body


def state(fo):
    return fo["status"], fo["request_status"]


def request_fulfillment(api, fo_id):
    """Submit the FO; return the new request's id."""
    response = api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {})
    assert response.status_code == 200, response.body
    return response.body["submitted_fulfillment_order"]["merchant_requests"][-1]["id"]


def merchant(api, fo_id, action, body=None):
    response = api.post(f"/fulfillment_orders/{fo_id}/{action}", body or {})
    assert response.status_code == 200, (action, response.body)
    return response.body


def applied(service, service_key, event_type, data, **kwargs):
    response = service.send(service_key, event_type, data, **kwargs)
    assert_applied(response)
    return response


def first_line_id(fo):
    return fo["line_items"][0]["id"]


# Ways to bring an acme FO (default order: 2 × TEE-1 and 1 × MUG-1) into a state.
def _submit(api, service, fo):
    request_fulfillment(api, fo["id"])


def _accept(api, service, fo):
    applied(service, "acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo["id"]})


def _reject(api, service, fo):
    applied(service, "acme", "fulfillment_request.rejected",
            {"fulfillment_order_id": fo["id"], "reason": "inventory_out_of_stock"})


def _withdraw(api, service, fo):
    merchant(api, fo["id"], "cancel")


def _request_cancellation(api, service, fo):
    merchant(api, fo["id"], "cancellation_request", {"message": "please stop"})


def _accept_cancellation(api, service, fo):
    applied(service, "acme", "cancellation_request.accepted", {"fulfillment_order_id": fo["id"]})


def _reject_cancellation(api, service, fo):
    applied(service, "acme", "cancellation_request.rejected", {"fulfillment_order_id": fo["id"]})


def _revert(api, service, fo):
    merchant(api, fo["id"], "revert")


def _ship_one(api, service, fo):
    applied(service, "acme", "fulfillment.created", {
        "fulfillment_order_id": fo["id"], "external_id": "ship-1",
        "line_items": [{"id": first_line_id(fo), "quantity": 1}]})


def _ship_all(api, service, fo):
    applied(service, "acme", "fulfillment.created",
            {"fulfillment_order_id": fo["id"], "external_id": "ship-1"})


def _service_close(api, service, fo):
    applied(service, "acme", "fulfillment_order.closed", {"fulfillment_order_id": fo["id"]})


def _hold(api, service, fo):
    merchant(api, fo["id"], "hold", {"reason": "other", "note": "wait"})


def _cancel_order(api, service, fo):
    response = api.post(f"/orders/{fo['order_id']}/cancel", {"reason": "customer changed mind"})
    assert response.status_code == 200, response.body


PATHS = {
    "unsubmitted": [],
    "submitted": [_submit],
    "accepted": [_submit, _accept],
    "rejected": [_submit, _reject],
    "withdrawn": [_submit, _withdraw],
    "cancellation_requested": [_submit, _accept, _request_cancellation],
    "cancellation_rejected": [_submit, _accept, _request_cancellation, _reject_cancellation],
    "cancellation_accepted": [_submit, _accept, _request_cancellation, _accept_cancellation],
    "reverted": [_submit, _accept, _request_cancellation, _revert],
    "partly_shipped": [_submit, _accept, _ship_one],
    "closed": [_submit, _accept, _ship_all],
    "incomplete": [_submit, _accept, _ship_one, _service_close],
    "on_hold": [_hold],
    "cancelled": [_cancel_order],
}


def acme_fo_in(api, service, order, path):
    """Walk the order's acme FO along PATHS[path]; return the FO as GET shows it."""
    fo = fo_of(order, "acme")
    for step in PATHS[path]:
        step(api, service, fo)
    return get_fo(api, fo["id"])


def delivery_rows():
    """Return every stored inbound delivery, oldest first."""
    with store.database.connection_context():
        return list(WebhookDelivery.select().order_by(WebhookDelivery.id))


# ---- 1. the checks, in their order ----------------------------------------------------------


@pytest.fixture
def world(app, api, create_order, service):
    """An acme FO never submitted, and an oldco FO that shipped one of two units as `old-1`."""
    acme_order = create_order()
    oldco_order = create_order(line_items=[line("oldco", quantity=2)])
    oldco_fo = fo_of(oldco_order, "oldco")
    request_fulfillment(api, oldco_fo["id"])
    applied(service, "oldco", "fulfillment.created", {
        "fulfillment_order_id": oldco_fo["id"], "external_id": "old-1",
        "line_items": [{"id": first_line_id(oldco_fo), "quantity": 1}]})
    return {
        "acme_fo": fo_of(acme_order, "acme")["id"],
        "oldco_fo": oldco_fo["id"],
        "oldco_line": first_line_id(oldco_fo),
        "orders": (acme_order["id"], oldco_order["id"]),
        "max": app.extensions["adapter_settings"].max_body_bytes,
    }


def signed(service_key, text, **kwargs):
    body = text.encode() if isinstance(text, str) else text
    return service_key, body, signed_headers(service_key, body, **kwargs)


def badly_signed(service_key, body, content_type="application/json"):
    headers = signed_headers("acme", body, secret=make_secret(), content_type=content_type)
    return service_key, body, headers


def unsigned(service_key, body, content_type="application/json"):
    return service_key, body, {"Content-Type": content_type} if content_type else {}


NOT_JSON = b"{this is not json"

# Each case breaks one check and every later one; the earlier check must answer.
CHECK_ORDER_CASES = [
    pytest.param(
        lambda w: badly_signed("nosuch", b"x" * (w["max"] + 1), "text/plain"),
        404, "not_found", None, id="1-unknown-service-beats-size-type-signature-json",
    ),
    pytest.param(
        lambda w: unsigned("nosuch", NOT_JSON, None),
        404, "not_found", None, id="1-unknown-service-beats-missing-type-and-signature",
    ),
    pytest.param(
        lambda w: signed("nosuch", envelope("fulfillment_request.accepted",
                                            {"fulfillment_order_id": w["acme_fo"]}),
                         secret=SECRETS["acme"]),
        404, "not_found", None, id="1-unknown-service-even-signed-with-a-known-secret",
    ),
    pytest.param(
        lambda w: badly_signed("acme", b"x" * (w["max"] + 1), "text/plain"),
        413, "payload_too_large", None, id="2-too-large-beats-type-signature-json",
    ),
    pytest.param(
        lambda w: unsigned("acme", b"{" * (w["max"] + 1), None),
        413, "payload_too_large", None, id="2-too-large-beats-missing-type-and-signature",
    ),
    pytest.param(
        lambda w: badly_signed("acme", NOT_JSON, "text/plain"),
        415, "unsupported_media_type", None, id="2-not-json-type-beats-signature-and-json",
    ),
    pytest.param(
        lambda w: badly_signed("acme", NOT_JSON, "application/x-www-form-urlencoded"),
        415, "unsupported_media_type", None, id="2-form-type-beats-signature-and-json",
    ),
    pytest.param(
        lambda w: unsigned("acme", NOT_JSON, None),
        415, "unsupported_media_type", None, id="2-missing-type-beats-missing-signature",
    ),
    pytest.param(
        lambda w: badly_signed("acme", NOT_JSON),
        401, "signature_invalid", None, id="3-wrong-signature-beats-malformed-json",
    ),
    pytest.param(
        lambda w: unsigned("acme", NOT_JSON),
        401, "signature_invalid", None, id="3-missing-signature-beats-malformed-json",
    ),
    pytest.param(
        lambda w: signed("acme", NOT_JSON, secret=SECRETS["oldco"]),
        401, "signature_invalid", None, id="3-another-services-secret-beats-malformed-json",
    ),
    pytest.param(
        lambda w: signed("acme", NOT_JSON, timestamp=unix() - 3600),
        401, "signature_invalid", None, id="3-expired-signature-beats-malformed-json",
    ),
    pytest.param(
        lambda w: signed("acme", NOT_JSON, timestamp=unix() + 3600),
        401, "signature_invalid", None, id="3-future-signature-beats-malformed-json",
    ),
    pytest.param(
        lambda w: signed("acme", b'{"type": "fulfillment_request.accepted", "data": {"fulfil'),
        400, "malformed_json", None, id="4-truncated-json-is-400-not-422",
    ),
    pytest.param(
        lambda w: signed("acme", b'{"type": "fulfillment_request.\xff\xfe", "data": {}}'),
        400, "malformed_json", None, id="4-invalid-utf8-is-400",
    ),
    pytest.param(
        lambda w: signed("acme", b""),
        400, "malformed_json", None, id="4-empty-body-is-400",
    ),
    pytest.param(
        lambda w: signed("acme", json.dumps({"type": "fulfillment_request.accepted", "data": None})),
        422, "validation_failed", "data", id="4-null-data",
    ),
    pytest.param(
        lambda w: signed("acme", json.dumps({"type": "fulfillment_request.accepted",
                                             "data": [w["acme_fo"]]})),
        422, "validation_failed", "data", id="4-data-not-an-object",
    ),
    pytest.param(
        lambda w: signed("acme", json.dumps({"type": 5, "data": {"fulfillment_order_id": 1}})),
        422, "validation_failed", "type", id="4-type-not-a-string",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.teleported",
                                          {"fulfillment_order_id": 999999})),
        422, "validation_failed", "type", id="4-unknown-type-beats-unknown-fo",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.rejected",
                                          {"fulfillment_order_id": 999999, "reason": "bored"})),
        422, "validation_failed", "data.reason", id="4-invalid-data-beats-unknown-fo",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.rejected",
                                          {"fulfillment_order_id": w["oldco_fo"]})),
        422, "validation_failed", "data.reason",
        id="4-missing-data-field-beats-another-services-fo",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.accepted",
                                          {"fulfillment_order_id": "one"})),
        422, "validation_failed", "data.fulfillment_order_id", id="4-wrong-id-type-is-named",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.event", {
            "external_id": "old-1", "status": "teleported", "happened_at": "2026-03-10T12:00:00Z"})),
        422, "validation_failed", "data.status",
        id="4-invalid-event-status-beats-another-services-shipment",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.accepted",
                                          {"fulfillment_order_id": 2**70})),
        422, "validation_failed", "data.fulfillment_order_id", id="4-huge-id-is-named",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.created", {
            "fulfillment_order_id": 999999, "external_id": "x",
            "line_items": [{"id": 1, "quantity": 0}]})),
        422, "validation_failed", "data.line_items.0.quantity",
        id="4-zero-quantity-beats-unknown-fo",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.created", {
            "fulfillment_order_id": w["oldco_fo"], "external_id": "x",
            "tracking": {"url": "javascript:alert(1)"}})),
        422, "validation_failed", "data.tracking.url",
        id="4-bad-tracking-url-beats-another-services-fo",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.event", {
            "external_id": "old-1", "status": "delivered", "happened_at": "yesterday"})),
        422, "validation_failed", "data.happened_at",
        id="4-bad-happened-at-beats-another-services-shipment",
    ),
    pytest.param(
        lambda w: signed("acme", json.dumps({"type": "fulfillment_request.accepted"})),
        422, "validation_failed", "data", id="4-envelope-without-data",
    ),
    pytest.param(
        lambda w: signed("acme", json.dumps({"data": {"fulfillment_order_id": w["acme_fo"]}})),
        422, "validation_failed", "type", id="4-envelope-without-type",
    ),
    pytest.param(
        lambda w: signed("acme", "[]"),
        422, "validation_failed", None, id="4-envelope-not-an-object",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.accepted",
                                          {"fulfillment_order_id": 999999})),
        404, "not_found", None, id="5-unknown-fo",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.accepted",
                                          {"fulfillment_order_id": w["oldco_fo"]})),
        404, "not_found", None, id="5-another-services-fo-beats-not-allowed-in-state",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.created", {
            "fulfillment_order_id": w["oldco_fo"], "external_id": "acme-9",
            "line_items": [{"id": w["oldco_line"], "quantity": 99}]})),
        404, "not_found", None, id="5-another-services-fo-beats-over-fulfillment",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.event", {
            "external_id": "old-1", "status": "delivered", "happened_at": "2026-03-10T12:00:00Z"})),
        404, "not_found", None, id="5-event-for-another-services-external-id",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.tracking_updated", {
            "external_id": "old-1", "tracking": {"number": "HIJACK"}})),
        404, "not_found", None, id="5-tracking-for-another-services-external-id",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment.event", {
            "external_id": "never-shipped", "status": "delivered",
            "happened_at": "2026-03-10T12:00:00Z"})),
        404, "not_found", None, id="5-unknown-external-id",
    ),
    pytest.param(
        lambda w: signed("acme", envelope("fulfillment_request.accepted",
                                          {"fulfillment_order_id": w["acme_fo"]})),
        409, "invalid_transition", None, id="6-accept-of-an-unsubmitted-fo",
    ),
]


@pytest.mark.parametrize(("build", "status", "code", "field"), CHECK_ORDER_CASES)
def test_checks_answer_in_spec_order(api, service, world, build, status, code, field):
    before = [get_order(api, order_id) for order_id in world["orders"]]
    service_key, body, headers = build(world)

    response = post_raw(service.client, service_key, body, headers)

    assert_problem(response, status, code)
    if field is not None:
        assert field in response.body["errors"], response.body
    assert [get_order(api, order_id) for order_id in world["orders"]] == before


NOT_ALLOWED_CASES = [
    ("unsubmitted", "fulfillment_request.accepted", {}),
    ("unsubmitted", "fulfillment_request.rejected", {"reason": "other"}),
    ("unsubmitted", "fulfillment_order.closed", {}),
    ("accepted", "fulfillment_request.accepted", {}),
    ("accepted", "fulfillment_request.rejected", {"reason": "other"}),
    ("accepted", "cancellation_request.accepted", {}),
    ("submitted", "cancellation_request.rejected", {}),
    ("submitted", "fulfillment_order.closed", {}),
    ("rejected", "fulfillment_request.accepted", {}),
    ("cancellation_requested", "fulfillment_order.closed", {}),
    ("cancellation_rejected", "cancellation_request.accepted", {}),
    ("incomplete", "fulfillment_request.accepted", {}),
    ("closed", "fulfillment_request.rejected", {"reason": "other"}),
    ("on_hold", "fulfillment_request.accepted", {}),
    ("cancelled", "fulfillment_order.closed", {}),
]


@pytest.mark.parametrize(
    ("path", "event_type", "extra"), NOT_ALLOWED_CASES,
    ids=[f"{event}-when-{path}" for path, event, _ in NOT_ALLOWED_CASES],
)
def test_action_not_allowed_in_state_is_409_with_the_current_state(
    api, service, create_order, path, event_type, extra
):
    order = create_order()
    fo = acme_fo_in(api, service, order, path)
    events = timeline(api, order["id"])

    response = service.send("acme", event_type, {"fulfillment_order_id": fo["id"], **extra})

    assert_problem(response, 409, "invalid_transition")
    assert response.body["current_status"] == fo["status"]
    assert response.body["request_status"] == fo["request_status"]
    assert response.body["fulfillment_order"] == {
        "id": fo["id"], "status": fo["status"], "request_status": fo["request_status"]}
    assert get_fo(api, fo["id"]) == fo
    assert timeline(api, order["id"]) == events


def test_a_service_can_never_change_or_see_another_services_fo(api, service, create_order):
    order = create_order(line_items=[line("oldco", quantity=2)])
    fo_id = fo_of(order, "oldco")["id"]
    request_fulfillment(api, fo_id)
    fo = get_fo(api, fo_id)
    events = timeline(api, order["id"])
    unknown = service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": 999999})

    answers = [
        service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id}),
        service.send("acme", "fulfillment_request.rejected",
                     {"fulfillment_order_id": fo_id, "reason": "other"}),
        service.send("acme", "fulfillment.created",
                     {"fulfillment_order_id": fo_id, "external_id": "acme-1"}),
        service.send("acme", "fulfillment_order.message",
                     {"fulfillment_order_id": fo_id, "message": "peek"}),
        service.send("acme", "fulfillment_order.closed", {"fulfillment_order_id": fo_id}),
    ]

    def beyond_detail(body):
        return {key: value for key, value in body.items() if key != "detail"}

    for response in answers:
        assert_problem(response, 404, "not_found")
        # Indistinguishable from an FO that does not exist: nothing about it is revealed.
        assert beyond_detail(response.body) == beyond_detail(unknown.body)
    assert get_fo(api, fo_id) == fo
    assert timeline(api, order["id"]) == events


def test_an_external_id_belongs_to_its_service_only(api, service, create_order):
    oldco_order = create_order(line_items=[line("oldco", quantity=1)])
    oldco_fo = fo_of(oldco_order, "oldco")["id"]
    request_fulfillment(api, oldco_fo)
    applied(service, "oldco", "fulfillment.created", {
        "fulfillment_order_id": oldco_fo, "external_id": "SHIP-42",
        "tracking": {"number": "OLD-TRACK"}})
    oldco_before = get_order(api, oldco_order["id"])
    acme_order = create_order()
    acme_fo = fo_of(acme_order, "acme")["id"]
    request_fulfillment(api, acme_fo)

    hijack = service.send("acme", "fulfillment.tracking_updated",
                          {"external_id": "SHIP-42", "tracking": {"number": "ACME-TRACK"}})
    own = service.send("acme", "fulfillment.created",
                       {"fulfillment_order_id": acme_fo, "external_id": "SHIP-42"})

    assert_problem(hijack, 404, "not_found")
    assert_applied(own)
    assert own.body["fulfillment"]["fulfillment_order_id"] == acme_fo
    assert own.body["fulfillment"]["id"] not in {f["id"] for f in oldco_before["fulfillments"]}
    assert get_order(api, oldco_order["id"]) == oldco_before


# ---- 2. signatures --------------------------------------------------------------------------


@pytest.fixture
def rotation(overrides):
    """An app where acme is rotating: its old secret is still in `previous_secrets`."""
    old = make_secret()
    overrides["services"]["acme"]["previous_secrets"] = [old]
    application = create_app(overrides)
    yield application, old
    store.database.close()


def test_previous_secrets_are_accepted_while_rotating(rotation):
    application, old = rotation
    api = Api(application.test_client())
    service = ServiceSide(application.test_client(), None)
    order = api.post("/orders", {
        "currency": "USD", "line_items": [line("acme"), line("oldco")]}).body
    acme_fo, oldco_fo = fo_of(order, "acme")["id"], fo_of(order, "oldco")["id"]

    with_old = service.send("acme", "fulfillment_order.message",
                            {"fulfillment_order_id": acme_fo, "message": "old key"}, secret=old)
    with_current = service.send("acme", "fulfillment_order.message",
                                {"fulfillment_order_id": acme_fo, "message": "new key"})
    with_other = service.send("acme", "fulfillment_order.message",
                              {"fulfillment_order_id": acme_fo, "message": "x"},
                              secret=make_secret())
    old_for_oldco = service.send("oldco", "fulfillment_order.message",
                                 {"fulfillment_order_id": oldco_fo, "message": "x"}, secret=old)

    assert_applied(with_old)
    assert_applied(with_current)
    assert_problem(with_other, 401, "signature_invalid")
    assert_problem(old_for_oldco, 401, "signature_invalid")


def test_a_secret_dropped_from_rotation_is_refused(api, service, create_order):
    fo_id = fo_of(create_order(), "acme")["id"]

    response = service.send("acme", "fulfillment_order.message",
                            {"fulfillment_order_id": fo_id, "message": "x"}, secret=make_secret())

    assert_problem(response, 401, "signature_invalid")


@pytest.mark.parametrize(("offset", "accepted"), [
    (0, True),
    (-1, True),
    ("-tolerance", True),
    ("+tolerance", True),
    ("-tolerance-1", False),
    ("+tolerance+1", False),
    (-86400, False),
    (86400, False),
    (-10 * 365 * 86400, False),
])
def test_timestamp_must_be_within_tolerance(app, clock, service, create_order, offset, accepted):
    tolerance = app.extensions["adapter_settings"].tolerance_seconds
    seconds = {"-tolerance": -tolerance, "+tolerance": tolerance,
               "-tolerance-1": -tolerance - 1, "+tolerance+1": tolerance + 1}.get(offset, offset)
    fo_id = fo_of(create_order(), "acme")["id"]
    at = clock.now.replace(tzinfo=UTC) + timedelta(seconds=seconds)

    response = service.send("acme", "fulfillment_order.message",
                            {"fulfillment_order_id": fo_id, "message": "hello"}, timestamp=at)

    if accepted:
        assert_applied(response)
    else:
        assert_problem(response, 401, "signature_invalid")


def _good(body, webhook_id, timestamp):
    return sign(SECRETS["acme"], webhook_id, timestamp, body)


def _bad(body, webhook_id, timestamp):
    return sign(make_secret(), webhook_id, timestamp, body)


@pytest.mark.parametrize(("parts", "accepted"), [
    ((_bad, _good), True),
    ((_good, _bad), True),
    ((_bad, _bad, _bad, _good), True),
    ((lambda *a: "v1a,c29tZXRoaW5nIGVsc2U=", _good), True),
    ((_bad, _bad), False),
    ((lambda *a: "v1a,c29tZXRoaW5nIGVsc2U=",), False),
], ids=["bad-then-good", "good-then-bad", "three-bad-then-good", "other-version-then-good",
        "only-bad", "only-other-version"])
def test_one_valid_signature_among_several_is_enough(service, create_order, parts, accepted):
    fo_id = fo_of(create_order(), "acme")["id"]
    body = envelope("fulfillment_order.message",
                    {"fulfillment_order_id": fo_id, "message": "hi"}).encode()
    headers = signed_headers("acme", body)
    stamp = int(headers["webhook-timestamp"])
    headers["webhook-signature"] = " ".join(part(body, headers["webhook-id"], stamp)
                                            for part in parts)

    response = post_raw(service.client, "acme", body, headers)

    if accepted:
        assert_applied(response)
    else:
        assert_problem(response, 401, "signature_invalid")


def _now_s():
    return unix()


# (header, value or callable(good signature) -> value; None removes the header)
MALFORMED_HEADERS = [
    ("webhook-signature", None),
    ("webhook-signature", ""),
    ("webhook-signature", "   "),
    ("webhook-signature", "garbage"),
    ("webhook-signature", "v1"),
    ("webhook-signature", "v1,"),
    ("webhook-signature", ","),
    ("webhook-signature", lambda good: good.replace("v1,", "v1 ")),
    ("webhook-signature", lambda good: good.replace("v1,", "")),
    ("webhook-signature", lambda good: good.replace("v1,", "v2,")),
    ("webhook-signature", lambda good: good.replace("v1,", "V1,")),
    ("webhook-signature", lambda good: good.rstrip("=")[:-1]),
    ("webhook-signature", lambda good: good[:-4] + "!!!="),
    ("webhook-signature", "v1,!!!not*base64!!!"),
    ("webhook-signature", "v1,YWJj"),
    ("webhook-signature", "v1,é"),
    ("webhook-signature", "v1,🙂🙂🙂"),
    ("webhook-signature", lambda good: good + "é"),
    ("webhook-signature", "v1," + "A" * 10_000),
    ("webhook-signature", "v1,AAAA " * 1_250),
    ("webhook-signature", "x" * 10_000),
    ("webhook-timestamp", None),
    ("webhook-timestamp", ""),
    ("webhook-timestamp", "   "),
    ("webhook-timestamp", "garbage"),
    ("webhook-timestamp", "-1"),
    ("webhook-timestamp", lambda good: f"-{_now_s()}"),
    ("webhook-timestamp", lambda good: f"{_now_s()}.0"),
    ("webhook-timestamp", lambda good: f"{_now_s()}.5"),
    ("webhook-timestamp", "1.7e9"),
    ("webhook-timestamp", lambda good: f"+{_now_s()}"),
    ("webhook-timestamp", lambda good: f"0{_now_s()}"),
    ("webhook-timestamp", lambda good: str(_now_s() * 1000)),
    ("webhook-timestamp", lambda good: hex(_now_s())),
    ("webhook-timestamp", "0"),
    ("webhook-timestamp", "NaN"),
    ("webhook-timestamp", "inf"),
    ("webhook-timestamp", "9" * 30),
    ("webhook-timestamp", str(2**63)),
    ("webhook-timestamp", str(2**64 + 1)),
    ("webhook-timestamp", "-" + "9" * 30),
    ("webhook-timestamp", "１７００００００００"),
    ("webhook-timestamp", "١٧٠٠٠٠٠٠٠٠"),
    ("webhook-timestamp", "1" * 10_000),
    ("webhook-id", None),
    ("webhook-id", ""),
    ("webhook-id", "   "),
    ("webhook-id", "é"),
    ("webhook-id", "msg_🙂"),
    ("webhook-id", "x" * 10_000),
]


@pytest.mark.parametrize(
    ("header", "value"), MALFORMED_HEADERS,
    ids=[f"{header}-{index}" for index, (header, _) in enumerate(MALFORMED_HEADERS)],
)
def test_malformed_signature_headers_are_401_never_500(service, create_order, header, value):
    fo_id = fo_of(create_order(), "acme")["id"]
    body = envelope("fulfillment_order.message",
                    {"fulfillment_order_id": fo_id, "message": "hi"}).encode()
    headers = signed_headers("acme", body)
    if value is None:
        del headers[header]
    else:
        headers[header] = value(headers["webhook-signature"]) if callable(value) else value

    response = post_raw(service.client, "acme", body, headers)

    assert_problem(response, 401, "signature_invalid")
    assert delivery_rows() == []


# ---- 3. applied deliveries ------------------------------------------------------------------


APPLIED_CASES = [
    ("submitted", "fulfillment_request.accepted",
     lambda fo: {"fulfillment_order_id": fo["id"]},
     ("in_progress", "accepted"), False),
    ("submitted", "fulfillment_request.accepted",
     lambda fo: {"fulfillment_order_id": fo["id"], "message": "on it",
                 "estimated_shipped_at": "2026-03-11T10:00:00Z"},
     ("in_progress", "accepted"), False),
    ("submitted", "fulfillment_request.rejected",
     lambda fo: {"fulfillment_order_id": fo["id"], "reason": "incorrect_address",
                 "message": THAI_EMOJI},
     ("open", "rejected"), False),
    ("cancellation_requested", "cancellation_request.accepted",
     lambda fo: {"fulfillment_order_id": fo["id"]}, ("open", "cancellation_accepted"), False),
    ("cancellation_requested", "cancellation_request.rejected",
     lambda fo: {"fulfillment_order_id": fo["id"], "message": "already packed"},
     ("in_progress", "cancellation_rejected"), False),
    ("accepted", "fulfillment.created",
     lambda fo: {"fulfillment_order_id": fo["id"], "external_id": "ship-9",
                 "line_items": [{"id": first_line_id(fo), "quantity": 1}],
                 "tracking": {"number": "TH123", "company": "Kerry",
                              "url": "https://track.example/TH123"}},
     ("in_progress", "accepted"), True),
    ("partly_shipped", "fulfillment.tracking_updated",
     lambda fo: {"external_id": "ship-1", "tracking": {"number": "NEW-1", "company": "DHL"}},
     ("in_progress", "accepted"), True),
    ("partly_shipped", "fulfillment.event",
     lambda fo: {"external_id": "ship-1", "status": "in_transit",
                 "happened_at": "2026-03-10T12:00:00Z", "location": {"city": "Bangkok"}},
     ("in_progress", "accepted"), True),
    ("accepted", "fulfillment_order.closed",
     lambda fo: {"fulfillment_order_id": fo["id"], "message": "cannot source"},
     ("incomplete", "closed"), False),
    ("accepted", "fulfillment_order.message",
     lambda fo: {"fulfillment_order_id": fo["id"], "message": THAI_EMOJI},
     ("in_progress", "accepted"), False),
]


@pytest.mark.parametrize(
    ("path", "event_type", "data", "result", "with_fulfillment"), APPLIED_CASES,
    ids=["accepted", "accepted-with-message-and-estimated-shipped-at", "rejected",
         "cancellation-accepted", "cancellation-rejected", "fulfillment-created",
         "tracking-updated", "shipment-event", "fo-closed", "fo-message"],
)
def test_applied_delivery_answers_applied_with_the_fo_and_its_fulfillment(
    api, service, create_order, path, event_type, data, result, with_fulfillment
):
    order = create_order()
    fo = acme_fo_in(api, service, order, path)

    sent = data(fo)
    response = service.send("acme", event_type, sent)

    assert_applied(response)
    # The merchant API's FO, but with only its current (latest) request: SPEC 4.2.
    expected = get_fo(api, fo["id"])
    assert expected["merchant_requests"]
    expected["merchant_requests"] = expected["merchant_requests"][-1:]
    assert response.body["fulfillment_order"] == expected
    assert state(response.body["fulfillment_order"]) == result
    if with_fulfillment:
        assert set(response.body) == {"status", "fulfillment_order", "fulfillment"}
        fulfillments = {f["id"]: f for f in get_order(api, order["id"])["fulfillments"]}
        expected = fulfillments[response.body["fulfillment"]["id"]]
        # ... and the fulfillment with only the events this delivery recorded.
        expected["events"] = [
            event for event in expected["events"]
            if event_type == "fulfillment.event"
            and (event["status"], event["happened_at"]) == (sent["status"], sent["happened_at"])
        ]
        assert response.body["fulfillment"] == expected
        assert response.body["fulfillment"]["fulfillment_order_id"] == fo["id"]
    else:
        assert set(response.body) == {"status", "fulfillment_order"}


def test_webhook_answers_stay_the_same_size_however_long_the_history(api, service, create_order):
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    for _ in range(12):  # twelve requests the service turned down, then one it accepts
        request_fulfillment(api, fo_id)
        applied(service, "acme", "fulfillment_request.rejected",
                {"fulfillment_order_id": fo_id, "reason": "other"})
    current = request_fulfillment(api, fo_id)
    applied(service, "acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
    applied(service, "acme", "fulfillment.created", {"fulfillment_order_id": fo_id, "external_id": "ship-1"})

    answers = [
        applied(service, "acme", "fulfillment.event", {
            "external_id": "ship-1", "status": "in_transit", "message": f"hub {n:02}",
            "happened_at": f"2026-03-10T12:{n:02}:00Z"})
        for n in range(40)
    ]

    assert len(get_fo(api, fo_id)["merchant_requests"]) == 13
    assert len(get_order(api, order["id"])["fulfillments"][0]["events"]) == 40
    for n, answer in enumerate(answers):
        [request] = answer.body["fulfillment_order"]["merchant_requests"]
        assert (request["id"], request["status"]) == (current, "accepted")
        [event] = answer.body["fulfillment"]["events"]
        assert (event["message"], event["happened_at"]) == (f"hub {n:02}", f"2026-03-10T12:{n:02}:00Z")
    assert {len(answer.data) for answer in answers} == {len(answers[0].data)}
    with store.database.connection_context():
        stored = {len(receipt.response_body) for receipt in WebhookReceipt.select().where(
            WebhookReceipt.response_body.contains('"hub '))}
    assert stored == {len(answers[0].data)}


def test_service_message_and_reason_reach_the_timeline_verbatim(api, service, create_order):
    order = create_order()
    fo = acme_fo_in(api, service, order, "submitted")

    applied(service, "acme", "fulfillment_request.rejected",
            {"fulfillment_order_id": fo["id"], "reason": "incorrect_address", "message": THAI_EMOJI})

    last = timeline(api, order["id"])[-1]
    assert last["actor"] == "service"
    assert last["fulfillment_order_id"] == fo["id"]
    assert last["message"] == THAI_EMOJI
    assert "incorrect_address" in json.dumps(last["data"])


@pytest.mark.parametrize(("lines", "field"), [
    (lambda fo, other: [{"id": 999999, "quantity": 1}], "data.line_items.0.id"),
    (lambda fo, other: [{"id": other, "quantity": 1}], "data.line_items.0.id"),
    (lambda fo, other: [{"id": first_line_id(fo), "quantity": 1},
                        {"id": first_line_id(fo), "quantity": 1}], "data.line_items.1.id"),
], ids=["unknown-line", "line-of-another-fo", "line-listed-twice"])
def test_shipment_naming_lines_not_on_the_fo_is_422_naming_the_data_field(
    api, service, create_order, lines, field
):
    other = fo_of(create_order(), "acme")
    order = create_order()
    fo = acme_fo_in(api, service, order, "accepted")
    before = get_order(api, order["id"])

    response = service.send("acme", "fulfillment.created", {
        "fulfillment_order_id": fo["id"], "external_id": "ship-l",
        "line_items": lines(fo, first_line_id(other))})

    assert_problem(response, 422, "validation_failed")
    assert field in response.body["errors"], response.body["errors"]
    assert get_order(api, order["id"]) == before


# ---- 4. idempotency -------------------------------------------------------------------------


def shipment_body(fo, external_id="ship-7", quantity=1):
    return envelope("fulfillment.created", {
        "fulfillment_order_id": fo["id"], "external_id": external_id,
        "line_items": [{"id": first_line_id(fo), "quantity": quantity}],
        "message": THAI_EMOJI})


@pytest.mark.parametrize("path", ["submitted", "accepted"])
def test_redelivery_replays_the_original_answer_byte_for_byte_and_changes_nothing(
    api, service, clock, create_order, path
):
    order = create_order()
    fo = acme_fo_in(api, service, order, path)
    body = shipment_body(fo)
    first = service.send("acme", "fulfillment.created", None, body=body, webhook_id="msg_same",
                         timestamp=clock.now.replace(tzinfo=UTC))
    assert_applied(first)
    after_first = get_order(api, order["id"]), timeline(api, order["id"])
    clock.advance(seconds=90)

    again = service.send("acme", "fulfillment.created", None, body=body, webhook_id="msg_same",
                         timestamp=clock.now.replace(tzinfo=UTC))

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.data == first.data
    assert (get_order(api, order["id"]), timeline(api, order["id"])) == after_first
    assert len(after_first[0]["fulfillments"]) == 1


def test_replay_answers_the_original_even_after_the_state_moved_on(api, service, create_order):
    order = create_order()
    fo = acme_fo_in(api, service, order, "submitted")
    body = envelope("fulfillment_request.accepted", {"fulfillment_order_id": fo["id"]})
    first = service.send("acme", "fulfillment_request.accepted", None, body=body, webhook_id="msg_a")
    assert_applied(first)
    merchant(api, fo["id"], "cancellation_request")
    moved = get_fo(api, fo["id"])

    again = service.send("acme", "fulfillment_request.accepted", None, body=body, webhook_id="msg_a")

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.data == first.data
    assert state(again.body["fulfillment_order"]) == ("in_progress", "accepted")
    assert get_fo(api, fo["id"]) == moved


def test_same_webhook_id_with_another_body_is_422_idempotency_conflict(api, service, create_order):
    order = create_order()
    fo = acme_fo_in(api, service, order, "accepted")
    first = service.send("acme", "fulfillment.created", None, body=shipment_body(fo, "ship-a"),
                         webhook_id="msg_dup")
    assert_applied(first)
    before = get_order(api, order["id"]), timeline(api, order["id"])

    conflict = service.send("acme", "fulfillment.created", None,
                            body=shipment_body(fo, "ship-b"), webhook_id="msg_dup")

    assert_problem(conflict, 422, "idempotency_conflict")
    assert (get_order(api, order["id"]), timeline(api, order["id"])) == before


def test_same_webhook_id_at_another_service_is_another_delivery(api, service, create_order):
    order = create_order(line_items=[line("acme"), line("oldco")])
    acme_fo, oldco_fo = fo_of(order, "acme")["id"], fo_of(order, "oldco")["id"]

    at_acme = service.send("acme", "fulfillment_order.message",
                           {"fulfillment_order_id": acme_fo, "message": "a"}, webhook_id="msg_1")
    at_oldco = service.send("oldco", "fulfillment_order.message",
                            {"fulfillment_order_id": oldco_fo, "message": "o"}, webhook_id="msg_1")

    assert_applied(at_acme)
    assert_applied(at_oldco)
    assert at_oldco.body["fulfillment_order"]["id"] == oldco_fo


def test_rejected_delivery_is_judged_again_when_retried(api, service, create_order):
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    body = envelope("fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
    early = service.send("acme", "fulfillment_request.accepted", None, body=body,
                         webhook_id="msg_retry")
    assert_problem(early, 409, "invalid_transition")
    request_fulfillment(api, fo_id)

    retried = service.send("acme", "fulfillment_request.accepted", None, body=body,
                           webhook_id="msg_retry")
    replayed = service.send("acme", "fulfillment_request.accepted", None, body=body,
                            webhook_id="msg_retry")

    assert_applied(retried)
    assert state(retried.body["fulfillment_order"]) == ("in_progress", "accepted")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.data == retried.data


def test_event_arriving_before_its_shipment_is_404_then_applies_on_retry(
    api, service, create_order
):
    order = create_order()
    fo = acme_fo_in(api, service, order, "accepted")
    body = envelope("fulfillment.event", {"external_id": "ship-early", "status": "in_transit",
                                          "happened_at": "2026-03-10T12:00:00Z"})
    early = service.send("acme", "fulfillment.event", None, body=body, webhook_id="msg_ev")
    assert_problem(early, 404, "not_found")
    applied(service, "acme", "fulfillment.created",
            {"fulfillment_order_id": fo["id"], "external_id": "ship-early"})

    retried = service.send("acme", "fulfillment.event", None, body=body, webhook_id="msg_ev")

    assert_applied(retried)
    assert retried.body["fulfillment"]["shipment_status"] == "in_transit"


def test_invalid_delivery_can_be_corrected_under_the_same_webhook_id(api, service, create_order):
    order = create_order()
    fo = acme_fo_in(api, service, order, "submitted")
    wrong = service.send("acme", "fulfillment_request.rejected",
                         {"fulfillment_order_id": fo["id"], "reason": "bored"}, webhook_id="msg_fix")
    assert_problem(wrong, 422, "validation_failed")

    fixed = service.send("acme", "fulfillment_request.rejected",
                         {"fulfillment_order_id": fo["id"], "reason": "other"}, webhook_id="msg_fix")

    assert_applied(fixed)
    assert state(fixed.body["fulfillment_order"]) == ("open", "rejected")


# ---- 5. every verified delivery is kept -------------------------------------------------------


def test_every_verified_delivery_is_kept_with_headers_raw_body_and_outcome(
    api, service, create_order
):
    order = create_order()
    fo = acme_fo_in(api, service, order, "unsubmitted")
    assert delivery_rows() == []
    # Odd spacing, key order and raw UTF-8: what is kept must be these bytes, not a re-encoding.
    message_body = (
        '{ "data":{"message":"' + THAI_EMOJI + ' \\u0e2a\\ud83d\\ude00",'
        '"fulfillment_order_id":' + str(fo["id"]) + '},\n  "type":"fulfillment_order.message",'
        ' "timestamp":"2026-03-10T12:00:00z"}'
    ).encode()
    sent = [
        ("msg_applied", message_body, 200),
        ("msg_applied", message_body, 200),  # replay
        ("msg_conflict409", envelope("fulfillment_request.accepted",
                                     {"fulfillment_order_id": fo["id"]}).encode(), 409),
        ("msg_invalid", envelope("fulfillment_order.message",
                                 {"fulfillment_order_id": fo["id"]}).encode(), 422),
        ("msg_notjson", b"\xff\xfe not json \xf0\x9f", 400),
        ("msg_missing", envelope("fulfillment_order.message",
                                 {"fulfillment_order_id": 999999, "message": "x"}).encode(), 404),
        ("msg_applied", message_body.replace(b"\n", b" "), 422),  # same id, another body
    ]
    answers = []
    for webhook_id, body, _ in sent:
        headers = signed_headers("acme", body, webhook_id=webhook_id)
        answers.append((headers, post_raw(service.client, "acme", body, headers)))
    unverified = post_raw(service.client, "acme", message_body,
                          signed_headers("acme", message_body, secret=make_secret(),
                                         webhook_id="msg_forged"))
    unknown_service = post_raw(service.client, "nosuch", message_body,
                               signed_headers("acme", message_body, webhook_id="msg_nosuch"))

    assert [response.status_code for _, response in answers] == [s for _, _, s in sent]
    assert_problem(unverified, 401, "signature_invalid")
    assert_problem(unknown_service, 404, "not_found")
    rows = delivery_rows()
    assert len(rows) == len(sent)
    for row, (webhook_id, body, status), (headers, _) in zip(rows, sent, answers, strict=True):
        kept_headers = {key.lower(): value for key, value in row.headers.items()}
        assert row.service == "acme"
        assert row.webhook_id == webhook_id
        assert bytes(row.body) == body
        assert row.outcome_status == status
        # The signature was verified on arrival and is not kept: a replay signs afresh.
        assert "webhook-signature" not in kept_headers
        for name, value in headers.items():
            if name.lower() != "webhook-signature":
                assert kept_headers[name.lower()] == value


# ---- 6. ordering and late events --------------------------------------------------------------


def test_stale_request_id_is_409_and_the_current_one_applies(api, service, create_order):
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    first_request = request_fulfillment(api, fo_id)
    merchant(api, fo_id, "cancel")
    second_request = request_fulfillment(api, fo_id)
    fo = get_fo(api, fo_id)

    stale_accept = service.send("acme", "fulfillment_request.accepted",
                                {"fulfillment_order_id": fo_id, "request_id": first_request})
    stale_reject = service.send("acme", "fulfillment_request.rejected", {
        "fulfillment_order_id": fo_id, "request_id": first_request, "reason": "other"})
    assert get_fo(api, fo_id) == fo
    current = service.send("acme", "fulfillment_request.accepted",
                           {"fulfillment_order_id": fo_id, "request_id": second_request})

    for stale in (stale_accept, stale_reject):
        assert_problem(stale, 409, "invalid_transition")
        assert (stale.body["current_status"], stale.body["request_status"]) == (
            "in_progress", "submitted")
    assert_applied(current)
    assert state(current.body["fulfillment_order"]) == ("in_progress", "accepted")
    [answered] = current.body["fulfillment_order"]["merchant_requests"]
    assert (answered["id"], answered["status"]) == (second_request, "accepted")
    requests = {r["id"]: r for r in get_fo(api, fo_id)["merchant_requests"]}
    assert requests[second_request]["status"] == "accepted"
    assert requests[first_request]["status"] != "accepted"


@pytest.mark.parametrize("with_request_id", [False, True])
def test_late_accept_after_withdrawal_is_409(api, service, create_order, with_request_id):
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    request_id = request_fulfillment(api, fo_id)
    merchant(api, fo_id, "cancel")
    fo = get_fo(api, fo_id)
    data = {"fulfillment_order_id": fo_id}
    if with_request_id:
        data["request_id"] = request_id

    response = service.send("acme", "fulfillment_request.accepted", data)

    assert_problem(response, 409, "invalid_transition")
    assert (response.body["current_status"], response.body["request_status"]) == (
        "open", "unsubmitted")
    assert get_fo(api, fo_id) == fo


@pytest.mark.parametrize("service_key", ["acme", "oldco"])
def test_shipment_on_a_submitted_fo_is_an_implicit_accept(api, service, create_order, service_key):
    order = create_order(line_items=[line(service_key, quantity=2)])
    fo = fo_of(order, service_key)
    request_id = request_fulfillment(api, fo["id"])

    response = service.send(service_key, "fulfillment.created", {
        "fulfillment_order_id": fo["id"], "external_id": "ship-1",
        "line_items": [{"id": first_line_id(fo), "quantity": 1}]})

    assert_applied(response)
    shown = get_fo(api, fo["id"])
    assert state(shown) == ("in_progress", "accepted")
    assert shown["needs_attention"] is False
    assert {r["id"]: r["status"] for r in shown["merchant_requests"]}[request_id] == "accepted"
    assert response.body["fulfillment"]["line_items"] == [
        {"line_item_id": fo["line_items"][0]["line_item_id"], "quantity": 1}]


def test_shipment_events_out_of_order_keep_the_latest_status_and_the_whole_history(
    api, service, create_order
):
    order = create_order()
    acme_fo_in(api, service, order, "partly_shipped")

    delivered = service.send("acme", "fulfillment.event", {
        "external_id": "ship-1", "status": "delivered", "happened_at": "2026-03-12T15:00:00Z"})
    in_transit = service.send("acme", "fulfillment.event", {
        "external_id": "ship-1", "status": "in_transit", "happened_at": "2026-03-11T09:00:00+07:00",
        "message": "left the hub"})

    assert_applied(delivered)
    assert_applied(in_transit)
    assert in_transit.body["fulfillment"]["shipment_status"] == "delivered"
    (fulfillment,) = get_order(api, order["id"])["fulfillments"]
    assert fulfillment["shipment_status"] == "delivered"
    assert [(e["status"], e["happened_at"]) for e in fulfillment["events"]] == [
        ("in_transit", "2026-03-11T02:00:00Z"), ("delivered", "2026-03-12T15:00:00Z")]


def test_same_external_id_twice_with_different_webhook_ids_records_one_fulfillment(
    api, service, create_order
):
    order = create_order()
    fo = acme_fo_in(api, service, order, "accepted")
    data = {"fulfillment_order_id": fo["id"], "external_id": "ship-x",
            "line_items": [{"id": first_line_id(fo), "quantity": 1}]}

    first = service.send("acme", "fulfillment.created", data, webhook_id="msg_x1")
    second = service.send("acme", "fulfillment.created", data, webhook_id="msg_x2")

    assert_applied(first)
    assert second.status_code == 200, second.body
    assert second.body["fulfillment"]["id"] == first.body["fulfillment"]["id"]
    shown = get_order(api, order["id"])
    assert len(shown["fulfillments"]) == 1
    assert get_fo(api, fo["id"])["line_items"][0]["remaining_quantity"] == 1


def test_same_external_id_reported_again_after_the_fo_closed_is_not_an_over_fulfillment(
    api, service, create_order
):
    order = create_order()
    fo = acme_fo_in(api, service, order, "closed")

    again = service.send("acme", "fulfillment.created",
                         {"fulfillment_order_id": fo["id"], "external_id": "ship-1"})

    assert again.status_code == 200, again.body
    assert len(get_order(api, order["id"])["fulfillments"]) == 1
    assert get_fo(api, fo["id"]) == fo


LATE_PATHS = ["withdrawn", "cancellation_accepted", "reverted"]


@pytest.mark.parametrize("path", LATE_PATHS)
def test_late_shipment_is_recorded_and_flags_the_fo_for_attention(api, service, create_order, path):
    quiet = create_order()
    order = create_order()
    fo = acme_fo_in(api, service, order, path)
    assert fo["needs_attention"] is False
    events_before = len(timeline(api, order["id"]))

    response = service.send("acme", "fulfillment.created", {
        "fulfillment_order_id": fo["id"], "external_id": "late-1",
        "line_items": [{"id": first_line_id(fo), "quantity": 1}]})

    assert_applied(response)
    assert response.body["fulfillment"]["external_id"] == "late-1"
    shown = get_fo(api, fo["id"])
    assert shown["needs_attention"] is True
    assert shown["line_items"][0]["remaining_quantity"] == fo["line_items"][0]["remaining_quantity"] - 1
    assert [f["external_id"] for f in get_order(api, order["id"])["fulfillments"]] == ["late-1"]
    new_events = timeline(api, order["id"])[events_before:]
    why = json.dumps([(e["message"], e["data"]) for e in new_events
                      if e["fulfillment_order_id"] == fo["id"]], ensure_ascii=False)
    assert fo["request_status"] in why, new_events
    listed = api.get("/orders?needs_attention=true").body["orders"]
    assert [o["id"] for o in listed] == [order["id"]]
    assert quiet["id"] not in [o["id"] for o in listed]

    acknowledged = api.post(f"/fulfillment_orders/{fo['id']}/acknowledge", {})

    assert acknowledged.status_code == 200, acknowledged.body
    assert acknowledged.body["needs_attention"] is False
    assert get_fo(api, fo["id"])["needs_attention"] is False
    assert api.get("/orders?needs_attention=true").body["orders"] == []


def test_shipment_while_accepted_does_not_need_attention(api, service, create_order):
    order = create_order()
    fo = acme_fo_in(api, service, order, "accepted")

    response = service.send("acme", "fulfillment.created",
                            {"fulfillment_order_id": fo["id"], "external_id": "ok-1"})

    assert_applied(response)
    assert response.body["fulfillment_order"]["needs_attention"] is False
    assert response.body["fulfillment_order"]["status"] == "closed"
    assert api.get("/orders?needs_attention=true").body["orders"] == []


OVER_CASES = [
    ("accepted", lambda fo: [{"id": first_line_id(fo), "quantity": 3}]),
    ("partly_shipped", lambda fo: [{"id": first_line_id(fo), "quantity": 2}]),
    ("closed", lambda fo: [{"id": first_line_id(fo), "quantity": 1}]),
    ("closed", lambda fo: None),
    ("withdrawn", lambda fo: [{"id": first_line_id(fo), "quantity": 3}]),
]


@pytest.mark.parametrize(("path", "lines"), OVER_CASES,
                         ids=["more-than-ordered", "more-than-remains", "line-of-closed-fo",
                              "all-of-closed-fo", "late-and-too-many"])
def test_over_fulfillment_is_409_and_records_nothing(api, service, create_order, path, lines):
    order = create_order()
    fo = acme_fo_in(api, service, order, path)
    before = get_order(api, order["id"]), timeline(api, order["id"])
    data = {"fulfillment_order_id": fo["id"], "external_id": "too-much"}
    if lines(fo) is not None:
        data["line_items"] = lines(fo)

    response = service.send("acme", "fulfillment.created", data)

    assert_problem(response, 409, "over_fulfillment")
    assert (get_order(api, order["id"]), timeline(api, order["id"])) == before


@pytest.mark.parametrize("path", ["closed", "incomplete"])
def test_tracking_and_delivery_events_are_accepted_on_a_finished_fo(
    api, service, create_order, path
):
    order = create_order()
    fo = acme_fo_in(api, service, order, path)

    tracking = service.send("acme", "fulfillment.tracking_updated", {
        "external_id": "ship-1",
        "tracking": {"number": "TH-NEW", "company": "Flash", "url": "https://t.example/TH-NEW"}})
    event = service.send("acme", "fulfillment.event", {
        "external_id": "ship-1", "status": "delivered", "happened_at": "2026-03-12T15:00:00Z"})

    assert_applied(tracking)
    assert_applied(event)
    assert tracking.body["fulfillment"]["tracking"] == {
        "number": "TH-NEW", "company": "Flash", "url": "https://t.example/TH-NEW"}
    assert event.body["fulfillment"]["shipment_status"] == "delivered"
    assert state(get_fo(api, fo["id"])) == state(fo)


@pytest.mark.parametrize("path", list(PATHS))
def test_service_message_is_accepted_in_any_state_and_changes_nothing(
    api, service, create_order, path
):
    order = create_order()
    fo = acme_fo_in(api, service, order, path)

    response = service.send("acme", "fulfillment_order.message",
                            {"fulfillment_order_id": fo["id"], "message": THAI_EMOJI})

    assert_applied(response)
    after = get_fo(api, fo["id"])
    assert (state(after), after["line_items"], after["merchant_requests"]) == (
        state(fo), fo["line_items"], fo["merchant_requests"])
    last = timeline(api, order["id"])[-1]
    assert (last["actor"], last["fulfillment_order_id"], last["message"]) == (
        "service", fo["id"], THAI_EMOJI)


# ---- 7. body size ---------------------------------------------------------------------------


def padded(text, size):
    """Pad JSON text with trailing spaces to exactly `size` bytes."""
    body = text.encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413), (1000, 413)])
def test_body_limit_counts_bytes_with_a_content_length(app, service, create_order, extra, status):
    limit = app.extensions["adapter_settings"].max_body_bytes
    fo_id = fo_of(create_order(), "acme")["id"]
    body = padded(envelope("fulfillment_order.message",
                           {"fulfillment_order_id": fo_id, "message": "padded"}), limit + extra)

    response = post_raw(service.client, "acme", body, signed_headers("acme", body))

    if status == 200:
        assert_applied(response)
    else:
        assert_problem(response, 413, "payload_too_large")


class ChunkedBody:
    """A request body of unknown length, as a chunked upload arrives; counts what was read."""

    def __init__(self, body):
        self.body = body
        self.position = 0

    def read(self, size=-1):
        end = len(self.body) if size is None or size < 0 else self.position + size
        chunk = self.body[self.position:end]
        self.position += len(chunk)
        return chunk

    def readline(self, size=-1):
        return self.read(size)


def post_chunked(client, service_key, body, headers):
    stream = ChunkedBody(body)
    response = client.post(
        f"/webhooks/{service_key}",
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
    )
    response.body = response.get_json(silent=True)
    return response, stream


def test_chunked_body_without_content_length_over_the_limit_is_413(app, service, create_order):
    limit = app.extensions["adapter_settings"].max_body_bytes
    fo_id = fo_of(create_order(), "acme")["id"]
    body = padded(envelope("fulfillment_order.message",
                           {"fulfillment_order_id": fo_id, "message": "big"}), 20 * limit)

    response, stream = post_chunked(service.client, "acme", body, signed_headers("acme", body))

    assert "CONTENT_LENGTH" not in response.request.environ
    assert_problem(response, 413, "payload_too_large")
    # It stops reading soon after the limit instead of buffering everything.
    assert stream.position <= 2 * limit


def test_chunked_body_without_content_length_within_the_limit_applies(app, service, create_order):
    fo_id = fo_of(create_order(), "acme")["id"]
    body = envelope("fulfillment_order.message",
                    {"fulfillment_order_id": fo_id, "message": THAI_EMOJI}).encode()

    response, _ = post_chunked(service.client, "acme", body, signed_headers("acme", body))

    assert "CONTENT_LENGTH" not in response.request.environ
    assert_applied(response)


def test_an_external_id_already_used_on_another_fo_is_an_idempotency_conflict(
    api, service, create_order
):
    first = acme_fo_in(api, service, create_order(), "accepted")
    second = acme_fo_in(api, service, create_order(), "accepted")
    applied(service, "acme", "fulfillment.created",
            {"fulfillment_order_id": first["id"], "external_id": "parcel-1"})

    response = service.send("acme", "fulfillment.created",
                            {"fulfillment_order_id": second["id"], "external_id": "parcel-1"})

    assert_problem(response, 422, "idempotency_conflict")
    assert state(get_fo(api, second["id"])) == ("in_progress", "accepted")
    assert get_order(api, second["order_id"])["fulfillments"] == []

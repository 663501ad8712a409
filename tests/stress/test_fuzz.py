"""Fuzzers: hostile input on `POST /webhooks/{service}` and on every merchant POST/PATCH route.

SPEC 4.2 and 5: whatever the headers and the body hold, the answer is one of the codes the SPEC
lists (never a 500), as `application/problem+json` when it is an error. Sizes: STRESS_EXAMPLES
(default 10) scales the cases: 20 × that many hostile deliveries, 3 × per event type and per route.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SECRETS, TOKEN, fo_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.stress

EXAMPLES = int(os.environ.get("STRESS_EXAMPLES", "10"))
FUZZED = Counter()  # requests sent per fuzzer, for the report
SENT_AT = "2026-03-10T12:00:00Z"  # a valid envelope timestamp, so that the data gets checked


def fuzz_settings(examples):
    """Hypothesis settings for `examples` cases against the shared world of one test."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )

WEBHOOK_CODES = {200, 400, 401, 404, 409, 413, 415, 422}  # SPEC 4.2
MAX_BODY = 262_144
WEBHOOK_TYPES = (
    "fulfillment_request.accepted",
    "fulfillment_request.rejected",
    "cancellation_request.accepted",
    "cancellation_request.rejected",
    "fulfillment.created",
    "fulfillment.tracking_updated",
    "fulfillment.event",
    "fulfillment_order.closed",
    "fulfillment_order.message",
)
DATA_FIELDS = (
    "fulfillment_order_id", "request_id", "message", "estimated_shipped_at", "reason",
    "external_id", "line_items", "tracking", "notify_customer", "status", "happened_at",
    "estimated_delivery_at", "location",
)
# Every merchant route that takes a body, with the ids it needs (SPEC 3).
MERCHANT_ROUTES = (
    ("POST", "/orders"),
    ("PATCH", "/orders/{order_id}"),
    ("POST", "/orders/{order_id}/cancel"),
    ("POST", "/orders/{order_id}/archive"),
    ("POST", "/orders/{order_id}/unarchive"),
    ("POST", "/orders/{order_id}/transactions"),
    ("POST", "/orders/{order_id}/returns"),
    ("POST", "/orders/{order_id}/comments"),
    ("POST", "/outbox/messages/{message_id}/retry"),
    ("POST", "/returns/{return_id}/approve"),
    ("POST", "/returns/{return_id}/decline"),
    ("POST", "/returns/{return_id}/complete_inspection"),
    ("POST", "/returns/{return_id}/close"),
    ("POST", "/fulfillment_orders/{fo_id}/fulfillment_request"),
    ("POST", "/fulfillment_orders/{fo_id}/cancel"),
    ("POST", "/fulfillment_orders/{fo_id}/cancellation_request"),
    ("POST", "/fulfillment_orders/{fo_id}/revert"),
    ("POST", "/fulfillment_orders/{fo_id}/mark_fulfilled"),
    ("POST", "/fulfillment_orders/{fo_id}/hold"),
    ("POST", "/fulfillment_orders/{fo_id}/release_hold"),
    ("POST", "/fulfillment_orders/{fo_id}/open"),
    ("POST", "/fulfillment_orders/{fo_id}/messages"),
    ("POST", "/fulfillment_orders/{fo_id}/acknowledge"),
)

# ---- strategies ---------------------------------------------------------------------------------

HUGE_NUMBERS = ("1" + "0" * 400, "-" + "9" * 5000, "1e999", "-1e999", "1E+400", "0.1e-400",
                "12345678901234567890123", "9223372036854775808", "18446744073709551616")
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "null", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z",
                     "0001-01-01T00:00:00Z", "ส่งด่วน 🚚", "\x00", "\ud800", "a" * 6000]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)
HEADER_CHARS = st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n")
HEADER_VALUES = st.one_of(
    st.text(HEADER_CHARS, max_size=80),
    st.binary(max_size=60).map(lambda raw: raw.decode("latin-1").replace("\r", "").replace("\n", "")),
    st.sampled_from(["", " ", ",", "v1,", "v1,====", "v1,%%%", "v2,abc", "v1," + "A" * 5000,
                     "v1a,abc v1,", "0", "-1", "1e10", "9" * 40, " 1700000000 ", "0x10"]),
)
CONTENT_TYPES = st.sampled_from([
    None, "application/json", "application/json; charset=utf-8", "application/vnd.acme+json",
    "APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/jsonx", "", "json", "application/",
])
JSON_CONTENT_TYPES = {"application/json", "application/json; charset=utf-8",
                      "application/vnd.acme+json", "APPLICATION/JSON"}
SERVICE_KEYS = st.sampled_from(["acme", "oldco", "autoship", "nope", "ACME", "a" * 300, "%00",
                                "acme%2F..", "%C3%A4", "acme.json", "-", "_"])


def dumps(value, ascii_only=False):
    """Encode any generated value as JSON text (NaN and Infinity included, lone surrogates too)."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def deep(depth, leaf="1"):
    """Return JSON text nested `depth` levels deep, without recursing to build it."""
    return "".join('{"a":[' for _ in range(depth)) + leaf + "]}" * depth


@st.composite
def raw_bodies(draw):
    """Bytes of any kind: random bytes, JSON of any shape, invalid UTF-8, deep nesting, huge numbers."""
    kind = draw(st.sampled_from(["bytes", "json", "envelope", "invalid_utf8", "deep", "huge",
                                 "oversize", "empty"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return dumps(draw(JSON_VALUES), draw(st.booleans()))
    if kind == "envelope":
        return dumps({"type": draw(st.sampled_from(WEBHOOK_TYPES)), "timestamp": SENT_AT,
                      "data": draw(JSON_VALUES)}, draw(st.booleans()))
    if kind == "invalid_utf8":
        return b'{"type": "fulfillment_order.message", "data": {"message": "\xff\xfe\xc3("}}'
    if kind == "deep":
        return deep(draw(st.sampled_from([50, 999, 1001, 20_000, 60_000]))).encode()
    if kind == "huge":
        number = draw(st.sampled_from(HUGE_NUMBERS))
        data = f'{{"fulfillment_order_id": {number}}}'
        return (f'{{"type": "fulfillment_request.accepted", "timestamp": "{SENT_AT}", '
                f'"data": {data}}}').encode()
    if kind == "oversize":
        return b'{"type": "x", "data": {"message": "' + b"x" * MAX_BODY + b'"}}'
    return b""


def sign(secret, webhook_id, timestamp, body):
    """Return a Standard Webhooks v1 signature of raw bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def is_strict_json(body):
    """Tell whether `body` is UTF-8 JSON by RFC 8259 (None when too deep to tell)."""
    try:
        json.loads(body.decode("utf-8"), parse_constant=lambda name: 1 / 0)
    except RecursionError:
        return None
    except (UnicodeDecodeError, ValueError, ZeroDivisionError):
        return False
    return True


def post_webhook(client, service, body, headers):
    response = client.post(f"/webhooks/{service}", data=body, headers=headers)
    FUZZED["webhooks"] += 1
    assert response.status_code in WEBHOOK_CODES, (
        service, headers, body[:300], response.status_code, response.get_data(as_text=True)[:500],
    )
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
        problem = response.get_json()
        assert problem["status"] == response.status_code and problem["code"], problem
    return response


@pytest.fixture
def world(api, service, create_order):
    """An order whose acme FO is accepted and partly shipped (`ship-known`), plus ids to aim at."""
    order = create_order(external_id=f"fuzz-{secrets.token_hex(4)}")
    acme, managed = fo_of(order, "acme"), fo_of(order, None)
    legacy = fo_of(create_order(line_items=[
        {"sku": "OLD", "title": "Old", "quantity": 2, "price": "3.00", "fulfillment_service": "oldco"},
    ]), "oldco")
    submitted = api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {}).body
    request_id = submitted["submitted_fulfillment_order"]["merchant_requests"][-1]["id"]
    assert service.send("acme", "fulfillment_request.accepted",
                        {"fulfillment_order_id": acme["id"]}).status_code == 200
    line = acme["line_items"][0]
    shipped = service.send("acme", "fulfillment.created", {
        "fulfillment_order_id": acme["id"], "external_id": "ship-known",
        "line_items": [{"id": line["id"], "quantity": 1}],
    })
    assert shipped.status_code == 200, shipped.body
    marked = api.post(f"/fulfillment_orders/{managed['id']}/mark_fulfilled", {})
    assert marked.status_code == 201, marked.body
    card = next(item for item in order["line_items"] if item["fulfillment_service"] is None)
    return_ = api.post(f"/orders/{order['id']}/returns", {
        "requested_by": "customer", "line_items": [{"line_item_id": card["id"], "quantity": 1}],
    })
    assert return_.status_code == 201, return_.body
    return {
        "order_id": order["id"],
        "fo_ids": [acme["id"], managed["id"], legacy["id"]],
        "fo_line_ids": [line["id"] for line in acme["line_items"]],
        "line_item_ids": [item["id"] for item in order["line_items"]],
        "request_id": request_id,
        "return_id": return_.body["id"],
        "message_id": api.get("/outbox/messages?state=pending").body["messages"][0]["id"],
    }


# ---- webhooks -----------------------------------------------------------------------------------


HOSTILE = dict(
    service_key=SERVICE_KEYS,
    body=raw_bodies(),
    content_type=CONTENT_TYPES,
    id_shape=st.sampled_from(["fresh", "missing", "random", "twice", "long"]),
    id_value=HEADER_VALUES,
    timestamp_shape=st.sampled_from(["now", "missing", "random", "twice", "old", "future"]),
    timestamp_value=HEADER_VALUES,
    signature_shape=st.sampled_from(["valid", "valid_among_junk", "missing", "random", "twice",
                                     "other_secret", "valid_for_other_body"]),
    signature_value=HEADER_VALUES,
)


def test_webhook_intake_answers_only_spec_codes_to_any_headers_and_body(app, world, request):
    client = app.test_client()
    before = FUZZED["webhooks"]

    @fuzz_settings(20 * EXAMPLES)
    @given(**HOSTILE)
    def fuzz(**case):
        hostile_delivery(client, **case)

    fuzz()
    request.node.user_properties.append(("requests", FUZZED["webhooks"] - before))
    assert FUZZED["webhooks"] > before


def hostile_delivery(client, service_key, body, content_type, id_shape, id_value, timestamp_shape,
                     timestamp_value, signature_shape, signature_value):
    now = int(time.time())
    webhook_id = {"fresh": f"msg_{secrets.token_hex(8)}", "long": "m" * 300}.get(id_shape, id_value)
    timestamp = {"now": str(now), "old": str(now - 3600), "future": str(now + 3600)}.get(
        timestamp_shape, timestamp_value
    )
    secret = SECRETS.get(service_key, SECRETS["acme"])
    signature = {
        "valid": lambda: sign(secret, webhook_id, timestamp, body),
        "valid_among_junk": lambda: f"v1,AAAA v2,zzz {sign(secret, webhook_id, timestamp, body)}",
        "other_secret": lambda: sign(SECRETS["oldco" if service_key != "oldco" else "acme"],
                                     webhook_id, timestamp, body),
        "valid_for_other_body": lambda: sign(secret, webhook_id, timestamp, body + b" "),
    }.get(signature_shape, lambda: signature_value)()
    headers = []
    for name, shape, value in (
        ("webhook-id", id_shape, webhook_id),
        ("webhook-timestamp", timestamp_shape, timestamp),
        ("webhook-signature", signature_shape, signature),
    ):
        if shape == "missing":
            continue
        headers.append((name, value))
        if shape == "twice":
            headers.append((name, value))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    response = post_webhook(client, service_key, body, headers)

    # SPEC 4.2, checks in order: what must win whatever else is wrong.
    if service_key not in SECRETS:
        assert response.status_code == 404
    elif len(body) > MAX_BODY:
        assert response.status_code == 413
    elif content_type in (None, "", "text/plain", "application/x-www-form-urlencoded", "json"):
        assert response.status_code == 415
    elif signature_shape in ("missing", "other_secret", "valid_for_other_body") or (
        timestamp_shape in ("missing", "old", "future") or id_shape == "missing"
    ):
        assert response.status_code in (401, 415)
    elif signature_shape == "valid" and id_shape == "fresh" and timestamp_shape == "now" and (
        content_type in JSON_CONTENT_TYPES
    ):
        strict = is_strict_json(body)
        if strict is False:
            assert response.status_code == 400, response.get_json()
        elif strict:
            assert response.status_code in (200, 400, 404, 409, 422), response.get_json()


@st.composite
def event_data(draw, world, event_type):
    """Data for one event type: its own fields with values valid, near-valid or absurd."""
    ids = st.one_of(
        st.sampled_from(world["fo_ids"] + [world["request_id"], world["request_id"] + 1]),
        st.sampled_from([0, -1, 2**53, 2**53 + 1, 2**63, 2**64, 10**30, 1.0, 1.5, "1", True]),
        st.integers(),
    )
    times = st.one_of(
        st.just(datetime.now(UTC).isoformat()),
        st.just((datetime.now(UTC) - timedelta(days=400)).isoformat()),
        st.sampled_from(["2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                         "10000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "yesterday", "",
                         "2026-01-01T00:00:00+14:00", "2026-01-01T00:00:00-12:00"]),
    )
    lines = st.lists(
        st.fixed_dictionaries({
            "id": st.one_of(st.sampled_from(world["fo_line_ids"]), ids),
            "quantity": st.one_of(st.integers(-2, 5), st.sampled_from([10**12, 2**63, 0.5, "1"])),
        }) | JSON_VALUES,
        max_size=3,
    )
    values = {
        "fulfillment_order_id": ids,
        "request_id": ids,
        "message": st.one_of(st.text(max_size=60), JSON_VALUES),
        "estimated_shipped_at": times,
        "reason": st.one_of(st.sampled_from(["other", "invalid_sku", "nope"]), JSON_VALUES),
        "external_id": st.one_of(st.sampled_from(["ship-known", "", "x" * 300]),
                                 st.text(max_size=20), JSON_VALUES),
        "line_items": st.one_of(st.none(), lines, JSON_VALUES),
        "tracking": st.one_of(
            st.fixed_dictionaries({}, optional={
                "number": st.text(max_size=20) | JSON_VALUES,
                "company": st.text(max_size=20),
                "url": st.sampled_from(["https://t.example/1", "javascript:alert(1)", "ftp://x",
                                        "http://" + "a" * 3000, "not a url"]),
            }),
            JSON_VALUES,
        ),
        "notify_customer": st.one_of(st.booleans(), JSON_VALUES),
        "status": st.one_of(st.sampled_from(["delivered", "in_transit", "failure", "lost"]),
                            JSON_VALUES),
        "happened_at": times,
        "estimated_delivery_at": times,
        "location": st.one_of(JSON_VALUES, st.just("DEEP")),
    }
    chosen = draw(st.lists(st.sampled_from(DATA_FIELDS), unique=True, max_size=len(DATA_FIELDS)))
    data = {name: draw(values[name]) for name in chosen}
    data.update(draw(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=2)))
    if event_type and draw(st.booleans()):  # mostly well-aimed: the fields this type needs
        data.setdefault("fulfillment_order_id", world["fo_ids"][0])
        data.setdefault("external_id", "ship-known")
    return data


@pytest.mark.parametrize("event_type", [*WEBHOOK_TYPES, "fulfillment.unknown"])
def test_validly_signed_random_data_never_answers_500(app, world, event_type, request):
    client = app.test_client()
    before = FUZZED["webhooks"]

    @fuzz_settings(3 * EXAMPLES)
    @given(data=st.data())
    def fuzz(data):
        payload = data.draw(event_data(world, event_type))
        # Three times in four a valid envelope timestamp, so that most deliveries reach the
        # checks of their data.
        sent_at = datetime.now(UTC).isoformat() if data.draw(st.integers(0, 3)) else None
        envelope = {"type": event_type, "timestamp": sent_at or data.draw(JSON_VALUES),
                    "data": payload}
        body = dumps(envelope)
        if payload.get("location") == "DEEP":  # nested deeper than json.dumps would go
            depth = data.draw(st.sampled_from([500, 1200, 5000]))
            body = body.replace(b'"DEEP"', deep(depth).encode())
        service = data.draw(st.sampled_from(["acme", "acme", "oldco"]))
        webhook_id = f"msg_{secrets.token_hex(8)}"
        timestamp = str(int(time.time()))
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(SECRETS[service], webhook_id, timestamp, body),
            "Content-Type": "application/json",
            # Verified deliveries are kept with their headers: any bytes a header may hold.
            **data.draw(st.dictionaries(
                st.sampled_from(["X-Extra", "User-Agent", "X-Forwarded-For", "Idempotency-Key"]),
                st.text(HEADER_CHARS, max_size=40), max_size=2,
            )),
        }
        response = post_webhook(client, service, body, headers)
        assert response.status_code != 401, response.get_json()
        if is_strict_json(body) and len(body) <= MAX_BODY:
            assert response.status_code in (200, 400, 404, 409, 422), response.get_json()
        if event_type == "fulfillment.unknown" and response.status_code != 400:
            assert response.status_code == 422, response.get_json()

    fuzz()
    request.node.user_properties.append(("requests", FUZZED["webhooks"] - before))
    assert FUZZED["webhooks"] > before


# ---- the merchant API ---------------------------------------------------------------------------


def body_fields(document, method, template):
    """Return the property names the OpenAPI document gives for a route's JSON body."""
    operation = document["paths"][template][method.lower()]
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get(
        "schema", {}
    )
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {}))


def test_fuzzed_routes_are_every_merchant_route_with_a_body(app):
    routes = {
        (method, rule.rule.replace("<id:", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        for method in rule.methods & {"POST", "PATCH", "PUT"}
        if not rule.rule.startswith(("/webhooks", "/admin"))
    }
    assert routes == set(MERCHANT_ROUTES)


@pytest.mark.parametrize(("method", "template"), MERCHANT_ROUTES)
def test_merchant_route_never_answers_500_to_random_bodies(api, world, method, template, request):
    document = api.get("/openapi.json", token=None).body
    fields = body_fields(document, method, template)
    before = FUZZED["merchant"]

    @fuzz_settings(3 * EXAMPLES)
    @given(data=st.data())
    def fuzz(data):
        absurd = st.sampled_from([1, 2**31, 2**63 - 1, 2**63, 10**30])
        path = template.format(
            order_id=data.draw(st.just(world["order_id"]) | absurd),
            return_id=data.draw(st.just(world["return_id"]) | absurd),
            fo_id=data.draw(st.sampled_from(world["fo_ids"]) | absurd),
            message_id=data.draw(st.just(world["message_id"]) | absurd),
        )
        shape = data.draw(st.sampled_from(["fields", "fields", "json", "bytes", "deep", "huge"]))
        content_type = "application/json"
        if shape == "fields":
            names = data.draw(st.lists(st.sampled_from(fields or ["x"]), unique=True))
            value = {name: data.draw(JSON_VALUES | st.sampled_from(
                [world["line_item_ids"], [{"id": i, "quantity": 1} for i in world["fo_line_ids"]]]
            )) for name in names}
            body = dumps(value, data.draw(st.booleans()))
        elif shape == "json":
            body = dumps(data.draw(JSON_VALUES), data.draw(st.booleans()))
        elif shape == "bytes":
            body = data.draw(st.binary(max_size=200))
            content_type = data.draw(CONTENT_TYPES) or "application/json"
        elif shape == "deep":
            body = deep(data.draw(st.sampled_from([999, 1001, 50_000]))).encode()
        else:
            name = data.draw(st.sampled_from(fields or ["x"]))
            body = f'{{"{name}": {data.draw(st.sampled_from(HUGE_NUMBERS))}}}'.encode()
        response = api.client.open(
            path, method=method, data=body, content_type=content_type,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        FUZZED["merchant"] += 1
        assert response.status_code < 500, (
            method, path, body[:300], response.status_code, response.get_data(as_text=True)[:500],
        )
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json", response.get_data(as_text=True)

    fuzz()
    request.node.user_properties.append(("requests", FUZZED["merchant"] - before))
    assert FUZZED["merchant"] > before


@fuzz_settings(3 * EXAMPLES)
@given(query=st.lists(st.tuples(
    st.sampled_from(["order_status", "payment_status", "fulfillment_status", "return_status",
                     "service", "needs_attention", "limit", "cursor", "x", ""]),
    st.one_of(st.text(max_size=40), st.sampled_from(["unpaid,expiring", "0", "251", "-1",
                                                     "9" * 40, "b3Q6MQ", "bzo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
                                                     ",,,", "open," * 60])),
), max_size=4))
def test_order_list_never_answers_500_to_random_filters(api, world, query):
    response = api.client.get("/orders", query_string=query,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    FUZZED["merchant"] += 1
    assert response.status_code in (200, 422), (query, response.get_data(as_text=True)[:500])


"""`GET /openapi.json`: a valid OpenAPI 3.1 document of every route, the webhooks both ways, every
status as an enum, every input rule, and links from what is created to what takes its id (SPEC 9).
"""

import json
import re
from datetime import UTC, datetime

import jsonschema
import pytest
from conftest import SECRETS, fo_of, make_secret, order_payload
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from standardwebhooks import Webhook

from adapter import store
from adapter.models import OutboxMessage

IGNORED_METHODS = {"HEAD", "OPTIONS"}
# The oracle: SPEC 4.1 and 4.2, written out by hand.
SENT_TYPES = {
    "fulfillment_request.submitted", "fulfillment_request.withdrawn", "cancellation_request.submitted",
    "fulfillment_order.reverted", "merchant.message", "shipping_confirmation",
}
RECEIVED_REQUIRED = {
    "fulfillment_request.accepted": {"fulfillment_order_id"},
    "fulfillment_request.rejected": {"fulfillment_order_id", "reason"},
    "cancellation_request.accepted": {"fulfillment_order_id"},
    "cancellation_request.rejected": {"fulfillment_order_id"},
    "fulfillment.created": {"fulfillment_order_id", "external_id"},
    "fulfillment.tracking_updated": {"external_id", "tracking"},
    "fulfillment.event": {"external_id", "status", "happened_at"},
    "fulfillment_order.closed": {"fulfillment_order_id"},
    "fulfillment_order.message": {"fulfillment_order_id", "message"},
}
NOTIFY_URL = "https://shop.example/notifications"


@pytest.fixture
def document(api):
    """The served OpenAPI document."""
    response = api.get("/openapi.json", token=None)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/json"
    return response.body


def resolve(document, schema):
    """Follow a `$ref` to its component."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def component(document, name):
    return document["components"]["schemas"][name]


def validator(document, schema):
    """Return a JSON Schema 2020-12 validator of `schema` with the document's components."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def openapi_path(rule):
    """Turn a Flask rule (`/orders/<int:order_id>`) into an OpenAPI path (`/orders/{order_id}`)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def routes(app):
    """Yield (path, method) for every route of the JSON API: not static files, admin or docs pages."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(("admin.", "docs.")):
            continue
        for method in sorted(rule.methods - IGNORED_METHODS):
            yield openapi_path(rule), method.lower()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_document_is_valid_openapi_3_1(document):
    validate(document, cls=OpenAPIV31SpecValidator)

    assert document["openapi"] == "3.1.0"


def test_every_route_appears_with_each_of_its_methods(app, document):
    expected = set(routes(app))
    documented = {(path, method) for path, item in document["paths"].items() for method in item
                  if method in {"get", "post", "put", "patch", "delete"}}

    assert len(expected) > 20
    assert expected - documented == set()
    assert documented - expected == set()


def test_every_path_parameter_is_declared(document):
    for path, method, operation in operations(document):
        names = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == names, (method, path)


def test_merchant_operations_require_the_bearer_token(document):
    public = {("/openapi.json", "get"), ("/healthz", "get"), ("/webhooks/{service}", "post")}
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, scheme in schemes.items()
              if scheme.get("type") == "http" and scheme.get("scheme") == "bearer"]

    assert bearer
    for path, method, operation in operations(document):
        if (path, method) in public:
            continue
        assert {name for need in operation.get("security", []) for name in need} & set(
            bearer), (method, path)
        assert "401" in operation["responses"], (method, path)


def test_every_operation_documents_the_store_unavailable_answer(document):
    for path, method, operation in operations(document):
        answer = operation["responses"]["503"]
        assert "application/problem+json" in answer["content"], (method, path)
        assert "Retry-After" in answer["headers"], (method, path)


def test_order_schema_documents_the_spec_fields(document):
    order_schema = document["paths"]["/orders/{order_id}"]["get"]["responses"]["200"][
        "content"]["application/json"]["schema"]
    properties = resolve(document, order_schema)["properties"]

    assert {
        "id", "name", "external_id", "email", "currency", "shipping_address", "created_at",
        "updated_at", "order_status", "payment_status", "payment_markers", "fulfillment_status",
        "return_status", "total_price", "amount_authorized", "amount_captured", "amount_refunded",
        "payment_due_at", "line_items", "fulfillment_orders", "fulfillments", "transactions",
        "returns",
    } <= set(properties)


def test_order_intake_documents_its_body_and_its_answers(document):
    operation = document["paths"]["/orders"]["post"]
    body = resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])

    assert {"name", "external_id", "email", "currency", "shipping_address", "line_items",
            "payment_due_at", "fulfill_at", "hold", "transactions"} <= set(body["properties"])
    assert {"201", "200", "422"} <= set(operation["responses"])
    assert "application/problem+json" in operation["responses"]["422"]["content"]


# ---- statuses: every value as an enum (SPEC 2, 3.1, 4.2) ---------------------------------------

FO_STATUSES = ["open", "scheduled", "on_hold", "in_progress", "incomplete", "closed", "cancelled"]
REQUEST_STATUSES = ["unsubmitted", "submitted", "accepted", "rejected", "cancellation_requested",
                    "cancellation_accepted", "cancellation_rejected", "closed"]
SHIPMENT_STATUSES = ["label_purchased", "label_printed", "confirmed", "ready_for_pickup",
                     "carrier_picked_up", "picked_up", "in_transit", "out_for_delivery",
                     "attempted_delivery", "delayed", "delivered", "failure"]
HOLD_REASONS = ["awaiting_payment", "high_risk_of_fraud", "incorrect_address", "inventory_out_of_stock",
                "unknown_delivery_date", "online_store_post_purchase_cross_sell", "awaiting_return_items",
                "other"]


@pytest.mark.parametrize(("schema", "field", "values"), [
    ("OrderOut", "order_status", ["open", "archived", "cancelled"]),
    ("OrderOut", "payment_status", ["voided", "refunded", "partially_refunded", "paid", "partially_paid",
                                    "expired", "authorized", "overdue", "pending"]),
    ("OrderOut", "payment_markers", ["expiring"]),
    ("OrderOut", "fulfillment_status", ["fulfilled", "partially_fulfilled", "on_hold", "scheduled",
                                        "in_progress", "unfulfilled"]),
    ("OrderOut", "return_status", ["return_requested", "inspection_complete", "return_in_progress",
                                   "returned", None]),
    ("FulfillmentOrderOut", "status", FO_STATUSES),
    ("FulfillmentOrderOut", "request_status", REQUEST_STATUSES),
    ("FulfillmentOrderOut", "supported_actions", [
        "request_fulfillment", "cancel_fulfillment_request", "request_cancellation",
        "revert_to_unfulfilled", "mark_as_fulfilled", "hold", "release_hold", "open", "send_message"]),
    ("HoldOut", "reason", HOLD_REASONS),
    ("HoldIn", "reason", HOLD_REASONS),
    ("MerchantRequestOut", "kind", ["fulfillment_request", "cancellation_request"]),
    ("FulfillmentOut", "created_by", ["service", "merchant"]),
    ("FulfillmentOut", "shipment_status", [*SHIPMENT_STATUSES, None]),
    ("ShipmentEventOut", "status", SHIPMENT_STATUSES),
    ("ShipmentEvent", "status", SHIPMENT_STATUSES),
    ("ReturnOut", "status", ["requested", "in_progress", "inspection_complete", "returned", "declined"]),
    ("ReturnLineIn", "reason", ["color", "defective", "not_as_described", "size_too_large",
                                "size_too_small", "style", "unwanted", "wrong_item", "unknown", "other"]),
    ("TransactionIn", "kind", ["authorization", "capture", "sale", "refund", "void"]),
    ("TransactionOut", "kind", ["authorization", "capture", "sale", "refund", "void"]),
    ("Rejected", "reason", ["incorrect_address", "inventory_out_of_stock", "ineligible_product",
                            "undeliverable_destination", "invalid_sku", "order_too_large", "other"]),
    ("TimelineEventOut", "actor", ["merchant", "service", "system", "customer"]),
    ("WebhookResult", "status", ["applied"]),
])
def test_status_field_is_an_enum_of_the_spec_values(document, schema, field, values):
    prop = component(document, schema)["properties"][field]
    enum = prop["items"]["enum"] if prop.get("type") == "array" else prop["enum"]

    assert sorted(enum, key=str) == sorted(values, key=str)


def test_merchant_request_statuses_include_every_outcome(document):
    enum = component(document, "MerchantRequestOut")["properties"]["status"]["enum"]

    assert {"submitted", "accepted", "rejected", "withdrawn", "cancelled", "closed"} <= set(enum)


# ---- input rules: what the document allows is what the adapter accepts ----------------------------


def line(**changes):
    return {**order_payload()["line_items"][0], **changes}


@pytest.mark.parametrize(("changes", "accepted"), [
    pytest.param({}, True, id="valid"),
    pytest.param({"line_items": [line(price="10")]}, True, id="price_integer"),
    pytest.param({"line_items": [line(price="1234567890123.12", quantity=1)]}, True, id="price_13_digits"),
    pytest.param({"currency": "KWD", "line_items": [line(price="1.125")]}, True, id="price_3_decimals"),
    pytest.param({"line_items": [line(price="12345678901234")]}, False, id="price_14_digits"),
    pytest.param({"line_items": [line(price="10.5055")]}, False, id="price_4_decimals"),
    pytest.param({"line_items": [line(price="-1.00")]}, False, id="price_negative"),
    pytest.param({"line_items": [line(price="1e3")]}, False, id="price_exponent"),
    pytest.param({"line_items": [line(price=10.5)]}, False, id="price_number"),
    pytest.param({"line_items": [line(quantity=0)]}, False, id="quantity_zero"),
    pytest.param({"line_items": [line(quantity=1_000_000)]}, True, id="quantity_max"),
    pytest.param({"line_items": [line(quantity=1_000_001)]}, False, id="quantity_over_max"),
    pytest.param({"line_items": [line(quantity="2")]}, False, id="quantity_string"),
    pytest.param({"line_items": [line(title="   ")]}, False, id="title_blank"),
    pytest.param({"line_items": [line(title="x" * 1001)]}, False, id="title_too_long"),
    pytest.param({"line_items": []}, False, id="no_lines"),
    pytest.param({"currency": "usd"}, False, id="currency_lowercase"),
    pytest.param({"currency": "USDT"}, False, id="currency_four_letters"),
    pytest.param({"external_id": ""}, False, id="external_id_empty"),
    pytest.param({"external_id": " \t"}, False, id="external_id_blank"),
    pytest.param({"hold": {"reason": "bored"}}, False, id="hold_reason_unknown"),
    pytest.param({"hold": {"reason": "other", "note": "x" * 5001}}, False, id="hold_note_too_long"),
    pytest.param({"shipping_address": {"country_code": "THA"}}, False, id="country_code_too_long"),
    pytest.param({"fulfill_at": "2030-01-01T00:00:00+07:00"}, True, id="fulfill_at_with_offset"),
    pytest.param({"colour": "red"}, False, id="unknown_field"),
    pytest.param({"transactions": [{"kind": "sale", "amount": "1.5"}]}, True, id="transaction"),
    pytest.param({"transactions": [{"kind": "gift", "amount": "1.5"}]}, False, id="transaction_kind"),
])
def test_order_body_allowed_by_the_document_is_accepted_by_the_adapter(api, document, changes,
                                                                        accepted):
    body = order_payload(**changes)
    schema = document["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    response = api.post("/orders", body)

    assert validator(document, schema).is_valid(body) is accepted
    assert response.status_code == (201 if accepted else 422), response.body


@pytest.mark.parametrize(("tracking", "accepted"), [
    pytest.param({"number": "1Z", "url": "https://carrier.example/t/1Z"}, True, id="https"),
    pytest.param({"url": "HTTP://carrier.example/t/1Z"}, True, id="http_upper_case"),
    pytest.param({"url": "ftp://carrier.example/t/1Z"}, False, id="ftp"),
    pytest.param({"url": "carrier.example/t/1Z"}, False, id="no_scheme"),
    pytest.param({"number": " "}, False, id="blank_number"),
])
def test_tracking_allowed_by_the_document_is_accepted_by_the_adapter(api, document, create_order,
                                                                     tracking, accepted):
    fo_id = fo_of(create_order(), None)["id"]
    body = {"tracking": tracking}
    schema = document["paths"]["/fulfillment_orders/{fo_id}/mark_fulfilled"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]
    response = api.post(f"/fulfillment_orders/{fo_id}/mark_fulfilled", body)

    assert validator(document, schema).is_valid(body) is accepted
    assert response.status_code == (201 if accepted else 422), response.body


def test_list_filters_are_documented_as_comma_separated_values(api, document, create_order):
    parameters = {p["name"]: p for p in document["paths"]["/orders"]["get"]["parameters"]}
    create_order()

    for name in ("order_status", "payment_status", "fulfillment_status", "return_status", "service"):
        assert parameters[name]["explode"] is False, name
        assert parameters[name]["style"] == "form", name
        assert parameters[name]["schema"]["maxItems"] == 50, name
    assert parameters["limit"]["schema"]["maximum"] == 250
    assert len(api.get("/orders?order_status=archived,open").body["orders"]) == 1


# ---- links -------------------------------------------------------------------------------------


def pointer(body, expression):
    """Evaluate `$response.body#/a/0/b` on a response body."""
    value = body
    for part in expression.removeprefix("$response.body#/").split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_every_link_names_an_operation_and_its_path_parameter(document):
    by_id = {operation["operationId"]: (path, operation) for path, _, operation in operations(document)}
    links = [link for _, _, operation in operations(document)
             for response in operation["responses"].values()
             for link in response.get("links", {}).values()]

    assert len(links) > 20
    for link in links:
        path, _ = by_id[link["operationId"]]
        assert set(link["parameters"]) == set(re.findall(r"{([^}]+)}", path)), link


@pytest.mark.parametrize(("operation_id", "status", "targets"), [
    ("orders_create_order", "201", {"orders_get_order_view", "orders_cancel_order",
                                    "fulfillment_orders_get_fulfillment_order"}),
    ("fulfillment_orders_request_fulfillment", "200", {"fulfillment_orders_get_fulfillment_order",
                                                       "fulfillment_orders_cancel_request"}),
    ("fulfillment_orders_mark_fulfilled", "201", {"fulfillment_orders_get_fulfillment_order",
                                                  "orders_get_order_view", "orders_create_return"}),
    ("orders_create_return", "201", {"returns_approve", "returns_decline", "returns_close",
                                     "returns_complete_inspection", "orders_get_order_view"}),
    ("fulfillment_orders_revert", "200", {"fulfillment_orders_request_fulfillment"}),
])
def test_created_resources_link_to_the_operations_that_take_their_id(document, operation_id, status,
                                                                     targets):
    [operation] = [op for _, _, op in operations(document) if op["operationId"] == operation_id]

    assert targets <= {link["operationId"] for link in operation["responses"][status]["links"].values()}


def test_following_the_links_of_created_resources_reaches_them(api, document, create_order):
    by_id = {operation["operationId"]: (path, method) for path, method, operation in operations(document)}
    order = api.post("/orders", order_payload())
    fo_id = fo_of(order.body, None)["id"]
    shipped = api.post(f"/fulfillment_orders/{fo_id}/mark_fulfilled", {})
    line_id = shipped.body["fulfillment"]["line_items"][0]["line_item_id"]
    return_ = api.post(f"/orders/{order.body['id']}/returns", {
        "requested_by": "customer", "line_items": [{"line_item_id": line_id, "quantity": 1}]})
    created = [("/orders", "post", order), ("/fulfillment_orders/{fo_id}/mark_fulfilled", "post", shipped),
               ("/orders/{order_id}/returns", "post", return_)]

    followed = 0
    for path, method, response in created:
        links = document["paths"][path][method]["responses"][str(response.status_code)]["links"]
        for link in links.values():
            target_path, target_method = by_id[link["operationId"]]
            if target_method != "get":
                continue
            url = target_path.format(**{name: pointer(response.body, expression)
                                        for name, expression in link["parameters"].items()})
            assert api.get(url).status_code == 200, (link, url)
            followed += 1
    assert followed >= 4


# ---- inbound webhooks: one schema per type, selected by `type` ------------------------------------


def inbound(document):
    return document["paths"]["/webhooks/{service}"]["post"]


def test_inbound_webhook_has_one_envelope_per_type_selected_by_type(document):
    body = inbound(document)["requestBody"]["content"]["application/json"]["schema"]
    mapping = body["discriminator"]["mapping"]

    assert body["discriminator"]["propertyName"] == "type"
    assert set(mapping) == set(RECEIVED_REQUIRED)
    assert sorted(option["$ref"] for option in body["oneOf"]) == sorted(mapping.values())
    for message_type, ref in mapping.items():
        envelope = resolve(document, {"$ref": ref})
        assert envelope["properties"]["type"]["const"] == message_type
        assert set(envelope["required"]) == {"type", "timestamp", "data"}
        data = resolve(document, envelope["properties"]["data"])
        assert set(data["required"]) == RECEIVED_REQUIRED[message_type], message_type


def test_inbound_webhook_documents_the_signature_headers_and_every_answer(document):
    operation = inbound(document)
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}

    assert {"webhook-id", "webhook-timestamp", "webhook-signature",
            "svix-id", "svix-timestamp", "svix-signature"} <= headers
    assert {"200", "400", "401", "404", "409", "413", "415", "422"} <= set(operation["responses"])
    assert "Idempotent-Replayed" in operation["responses"]["200"]["headers"]


def fo_in_state(api, service, create_order, message_type):
    """Return an acme FO in a state where `message_type` applies, with its current request id."""
    fo_id = fo_of(create_order(), "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    if message_type.startswith("cancellation_request.") or message_type == "fulfillment_order.closed":
        assert service.send("acme", "fulfillment_request.accepted",
                            {"fulfillment_order_id": fo_id}).status_code == 200
    if message_type.startswith("cancellation_request."):
        assert api.post(f"/fulfillment_orders/{fo_id}/cancellation_request", {}).status_code == 200
    if message_type in ("fulfillment.tracking_updated", "fulfillment.event"):
        assert service.send("acme", "fulfillment.created", {
            "fulfillment_order_id": fo_id, "external_id": "SHP-1001"}).status_code == 200
    return api.get(f"/fulfillment_orders/{fo_id}").body


def with_ids_of(data, fo):
    """Put the ids of `fo` (its id, its current request, its lines) into an example's data."""
    data = json.loads(json.dumps(data))
    if "fulfillment_order_id" in data:
        data["fulfillment_order_id"] = fo["id"]
    if "request_id" in data:
        data["request_id"] = fo["merchant_requests"][-1]["id"]
    for example_line, fo_line in zip(data.get("line_items") or [], fo["line_items"], strict=False):
        example_line["id"] = fo_line["id"]
    return data


@pytest.mark.parametrize("message_type", sorted(RECEIVED_REQUIRED))
def test_documented_inbound_example_is_applied_by_the_live_endpoint(api, service, create_order,
                                                                    document, message_type):
    envelope = resolve(document, {"$ref": inbound(document)["requestBody"]["content"][
        "application/json"]["schema"]["discriminator"]["mapping"][message_type]})
    example = envelope["example"]
    fo = fo_in_state(api, service, create_order, message_type)
    body = json.dumps({**example, "data": with_ids_of(example["data"], fo)})

    assert validator(document, envelope).is_valid(example)
    response = service.send("acme", message_type, None, body=body)

    assert response.status_code == 200, response.body
    assert response.body["status"] == "applied"
    assert response.body["fulfillment_order"]["id"] == fo["id"]


def test_inbound_webhook_signed_with_the_svix_header_names_is_accepted(api, service, create_order):
    fo_id = fo_of(create_order(), "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    body = json.dumps({"type": "fulfillment_order.message", "timestamp": "2025-05-02T15:00:00Z",
                       "data": {"fulfillment_order_id": fo_id, "message": "hello"}})
    at = datetime.now(UTC)
    response = service.client.post("/webhooks/acme", data=body, headers={
        "svix-id": "msg_svix_1", "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": Webhook(SECRETS["acme"]).sign("msg_svix_1", at, body),
        "Content-Type": "application/json",
    })

    assert response.status_code == 200, response.get_data(as_text=True)


# ---- outbound messages: the `webhooks` section ----------------------------------------------------


def test_every_message_the_adapter_sends_is_described_with_headers_and_answers(document):
    assert set(document["webhooks"]) == SENT_TYPES
    for message_type, item in document["webhooks"].items():
        operation = item["post"]
        envelope = resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        assert envelope["properties"]["type"]["const"] == message_type
        assert set(envelope["required"]) == {"type", "timestamp", "data"}
        assert {"webhook-id", "webhook-timestamp", "webhook-signature", "Idempotency-Key"} <= set(headers)
        assert all(header["required"] for header in headers.values())
        assert {"2XX", "408", "425", "429", "5XX", "default"} == set(operation["responses"])


@pytest.mark.parametrize(("message_type", "fields"), [
    ("fulfillment_request.submitted", {"request_id", "fulfillment_order", "message", "notify_customer"}),
    ("fulfillment_request.withdrawn", {"request_id", "fulfillment_order_id", "message"}),
    ("cancellation_request.submitted", {"request_id", "fulfillment_order_id", "message"}),
    ("fulfillment_order.reverted", {"fulfillment_order_id", "message"}),
    ("merchant.message", {"fulfillment_order_id", "message"}),
    ("shipping_confirmation", {"order", "line_items", "tracking"}),
])
def test_sent_message_data_names_the_spec_fields(document, message_type, fields):
    envelope = resolve(document, document["webhooks"][message_type]["post"]["requestBody"]["content"][
        "application/json"]["schema"])
    data = resolve(document, envelope["properties"]["data"])

    assert fields <= set(data["required"])


def test_submitted_request_describes_the_fo_the_spec_names(document):
    fo = component(document, "RequestedFulfillmentOrder")
    lines = component(document, "RequestedLine")

    assert {"id", "order_id", "order_name", "destination", "line_items"} <= set(fo["required"])
    assert {"id", "line_item_id", "sku", "title", "quantity"} <= set(lines["required"])


@pytest.fixture
def notifying(overrides):
    """Customer notifications go to NOTIFY_URL."""
    overrides["notifications"] = {"url": NOTIFY_URL, "secret": make_secret()}


def test_every_message_actually_enqueued_validates_against_its_documented_schema(
    notifying, api, service, create_order, document
):
    order = create_order()
    first = fo_of(order, "acme")["id"]
    api.post(f"/fulfillment_orders/{first}/fulfillment_request", {"message": "Gift wrap, please"})
    api.post(f"/fulfillment_orders/{first}/cancel", {})
    api.post(f"/fulfillment_orders/{first}/fulfillment_request", {})
    accepted = service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": first})
    assert accepted.status_code == 200
    api.post(f"/fulfillment_orders/{first}/messages", {"message": "Ring twice"})
    api.post(f"/fulfillment_orders/{first}/cancellation_request", {"message": "Customer moved"})
    line_id = api.get(f"/fulfillment_orders/{first}").body["line_items"][0]["id"]
    partial = api.post(f"/fulfillment_orders/{first}/revert",
                       {"line_items": [{"id": line_id, "quantity": 1}]})
    assert partial.status_code == 200, partial.body
    api.post(f"/fulfillment_orders/{first}/revert", {})
    second = create_order(shipping_address=None, email=None)
    managed = fo_of(second, None)["id"]
    assert api.post(f"/fulfillment_orders/{managed}/mark_fulfilled", {
        "notify_customer": True, "tracking": {"number": "1Z", "company": "UPS"}}).status_code == 201
    with store.database.connection_context():
        messages = [(message.type, json.loads(message.body)) for message in OutboxMessage.select()]

    assert {message_type for message_type, _ in messages} == SENT_TYPES
    for message_type, body in messages:
        schema = document["webhooks"][message_type]["post"]["requestBody"]["content"]["application/json"][
            "schema"]
        errors = [error.message for error in validator(document, schema).iter_errors(body)]
        assert errors == [], (message_type, body)
    reverted = [body["data"]["line_items"] for t, body in messages if t == "fulfillment_order.reverted"]
    assert None in reverted and any(reverted), "both a whole and a partial revert were checked"

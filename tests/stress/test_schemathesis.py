"""Schemathesis against the served `/openapi.json`, in process through the WSGI app (SPEC 3, 5).

For every documented operation, requests generated from the document (valid and invalid, with
random ids and with ids that exist) and sent with the merchant token never answer 500, and every
answer conforms to the document: a documented status code, its content type, its body schema and
headers. Sizes: 2 × STRESS_EXAMPLES cases per operation with any ids,
STRESS_EXAMPLES more with ids that exist.

The operations are driven one by one with hypothesis rather than with `schema.parametrize()`:
schemathesis' lazy `from_fixture` loader reads `Function._nodeid`, which pytest 9 no longer has.
"""

import os

import jsonschema
import pytest
import schemathesis
from conftest import TOKEN, fo_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapter import store
from adapter.models import OutboxMessage, WebhookDelivery
from adapter.times import utcnow

pytestmark = pytest.mark.stress

EXAMPLES = int(os.environ.get("STRESS_EXAMPLES", "10"))
AUTHORIZATION = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Every operation the SPEC 3 table names (and the webhook intake); a test keeps this list equal to
# the document, so a new route is never left out.
OPERATIONS = (
    ("POST", "/orders"),
    ("GET", "/orders"),
    ("GET", "/orders/{order_id}"),
    ("PATCH", "/orders/{order_id}"),
    ("POST", "/orders/{order_id}/cancel"),
    ("POST", "/orders/{order_id}/archive"),
    ("POST", "/orders/{order_id}/unarchive"),
    ("POST", "/orders/{order_id}/transactions"),
    ("GET", "/orders/{order_id}/timeline"),
    ("POST", "/orders/{order_id}/comments"),
    ("POST", "/orders/{order_id}/returns"),
    ("POST", "/returns/{return_id}/approve"),
    ("POST", "/returns/{return_id}/decline"),
    ("POST", "/returns/{return_id}/complete_inspection"),
    ("POST", "/returns/{return_id}/close"),
    ("GET", "/fulfillment_orders/{fo_id}"),
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
    ("POST", "/webhooks/{service}"),
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/outbox/messages"),
    ("GET", "/outbox/messages/{message_id}"),
    ("POST", "/outbox/messages/{message_id}/retry"),
    ("GET", "/webhook_deliveries"),
    ("GET", "/webhook_deliveries/{delivery_id}"),
)
OPERATION_IDS = [f"{method} {path}" for method, path in OPERATIONS]
BODY_OPERATIONS = [
    (method, path) for method, path in OPERATIONS
    if method in ("POST", "PATCH") and not path.startswith("/webhooks")
]
ID_OPERATIONS = [(method, path) for method, path in OPERATIONS if "_id}" in path]


@pytest.fixture
def known_ids(api, create_order):
    """Ids that exist: an order (its acme FO unsubmitted), a shipped merchant line, a return."""
    order = create_order()
    managed = fo_of(order, None)
    assert api.post(f"/fulfillment_orders/{managed['id']}/mark_fulfilled", {}).status_code == 201
    card = next(line for line in order["line_items"] if line["fulfillment_service"] is None)
    return_ = api.post(f"/orders/{order['id']}/returns", {
        "requested_by": "customer", "line_items": [{"line_item_id": card["id"], "quantity": 1}],
    })
    assert return_.status_code == 201, return_.body
    # Another order's request, so that the first keeps its acme FO unsubmitted.
    requested = fo_of(create_order(), "acme")["id"]
    assert api.post(f"/fulfillment_orders/{requested}/fulfillment_request", {}).status_code == 200
    with store.database.connection_context():
        delivery = WebhookDelivery.create(service="acme", webhook_id="msg_known", headers={},
                                          body=b"\xff{}", received_at=utcnow(), outcome_status=200,
                                          outcome_code="applied")
    return {
        "order_id": order["id"],
        "fo_id": fo_of(order, "acme")["id"],
        "return_id": return_.body["id"],
        "service": "acme",
        "message_id": OutboxMessage.get(OutboxMessage.fulfillment_order_id == requested).id,
        "delivery_id": delivery.id,
    }


def test_every_documented_operation_is_exercised(app):
    document = schemathesis.openapi.from_wsgi("/openapi.json", app).raw_schema
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert documented == set(OPERATIONS)


def check_cases(cases, examples):
    """Send `examples` generated cases and run the conformance checks on every answer."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=cases)
    def call_and_validate(case):
        case.call_and_validate(headers=AUTHORIZATION, checks=CHECKS)

    call_and_validate()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=OPERATION_IDS)
def test_operation_answers_as_documented(app, known_ids, method, path):
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)[path][method]
    check_cases(
        st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ),
        2 * EXAMPLES,
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=OPERATION_IDS)
def test_operation_on_existing_resources_answers_as_documented(app, known_ids, method, path):
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)[path][method]
    known = {name: value for name, value in known_ids.items() if "{" + name + "}" in path}
    check_cases(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known), EXAMPLES)


# ---- the same findings, deterministic: what SPEC 5 says every endpoint may answer --------------


def documented_statuses(api, method, path):
    document = api.get("/openapi.json", token=None).body
    return set(document["paths"][path][method.lower()]["responses"])


@pytest.mark.parametrize(("body", "content_type", "status"), [
    pytest.param(b"{", "application/json", 400, id="malformed_json"),
    pytest.param(b"x=1", "text/plain", 415, id="unsupported_media_type"),
    pytest.param(b'{"no_such_field": 1}', "application/json", 422, id="validation_failed"),
])
def test_body_errors_are_documented_on_every_route_with_a_body(api, known_ids, body, content_type,
                                                               status):
    undocumented = []
    for method, path in BODY_OPERATIONS:
        response = api.client.open(path.format(**known_ids), method=method, data=body,
                                   content_type=content_type, headers=AUTHORIZATION)
        assert response.status_code == status, (method, path, response.get_data(as_text=True))
        if str(status) not in documented_statuses(api, method, path):
            undocumented.append(f"{method} {path}")
    assert not undocumented, f"{status} answered but not documented by: {undocumented}"


# A valid body for each route that needs one, so that an unknown id is the only thing wrong.
VALID_BODIES = {
    "/orders/{order_id}/transactions": {"kind": "sale", "amount": "1.00"},
    "/orders/{order_id}/returns": {"requested_by": "merchant",
                                   "line_items": [{"line_item_id": 1, "quantity": 1}]},
    "/fulfillment_orders/{fo_id}/hold": {"reason": "other"},
    "/fulfillment_orders/{fo_id}/messages": {"message": "hello"},
    "/orders/{order_id}/comments": {"message": "hello"},
}


def test_unknown_ids_answer_a_404_every_route_documents(api, known_ids):
    unknown = {name: 2**53 for name in ("order_id", "fo_id", "return_id", "message_id", "delivery_id")}
    undocumented = []
    for method, path in ID_OPERATIONS:
        body = VALID_BODIES.get(path, {}) if method != "GET" else None
        response = api.call(method, path.format(**unknown), body)
        assert response.status_code == 404, (method, path, response.get_data(as_text=True))
        if "404" not in documented_statuses(api, method, path):
            undocumented.append(f"{method} {path}")
    assert not undocumented, f"404 answered but not documented by: {undocumented}"


@pytest.mark.parametrize("path", [
    pytest.param("/fulfillment_orders/{fo_id}/cancel", id="invalid_transition"),
    pytest.param("/returns/{return_id}/close", id="invalid_return_transition"),
])
def test_conflict_answers_match_the_documented_problem_schema(api, known_ids, path):
    document = api.get("/openapi.json", token=None).body
    response = api.post(path.format(**known_ids), {})
    assert response.status_code == 409, response.body
    problem = {"$ref": "#/components/schemas/Problem", "components": document["components"]}
    jsonschema.validate(response.body, problem)


def test_webhook_conflict_answer_matches_the_documented_problem_schema(api, service, known_ids):
    document = api.get("/openapi.json", token=None).body
    response = service.send("acme", "fulfillment_request.accepted",
                            {"fulfillment_order_id": known_ids["fo_id"]})
    assert response.status_code == 409, response.body
    assert "409" in document["paths"]["/webhooks/{service}"]["post"]["responses"]
    jsonschema.validate(
        response.body, {"$ref": "#/components/schemas/Problem", "components": document["components"]}
    )

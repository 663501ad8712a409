"""`GET /openapi.json`: a valid OpenAPI 3 document that describes every route of the app."""

import re

import pytest
from openapi_spec_validator import validate

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(api):
    """The served OpenAPI document."""
    response = api.get("/openapi.json", token=None)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/json"
    return response.body


def openapi_path(rule):
    """Turn a Flask rule (`/orders/<int:order_id>`) into an OpenAPI path (`/orders/{order_id}`)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def routes(app):
    """Yield (path, method) for every route of the app except static files and the admin pages."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("admin."):
            continue
        for method in sorted(rule.methods - IGNORED_METHODS):
            yield openapi_path(rule), method.lower()


def test_document_is_valid_openapi_3(document):
    validate(document)

    assert document["openapi"].startswith("3.")


def test_every_route_appears_with_each_of_its_methods(app, document):
    expected = set(routes(app))
    documented = {(path, method) for path, item in document["paths"].items() for method in item
                  if method in {"get", "post", "put", "patch", "delete"}}

    assert len(expected) > 20
    assert expected - documented == set()
    assert documented - expected == set()


def test_every_path_parameter_is_declared(document):
    for path, item in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)


def test_merchant_operations_require_the_bearer_token(document):
    public = {("/openapi.json", "get"), ("/healthz", "get"), ("/webhooks/{service}", "post")}
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, scheme in schemes.items()
              if scheme.get("type") == "http" and scheme.get("scheme") == "bearer"]

    assert bearer
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if (path, method) in public:
                continue
            assert {name for need in operation.get("security", []) for name in need} & set(
                bearer), (method, path)
            assert "401" in operation["responses"], (method, path)


def test_order_schema_documents_the_spec_fields(document):
    order_schema = document["paths"]["/orders/{order_id}"]["get"]["responses"]["200"][
        "content"]["application/json"]["schema"]
    name = order_schema["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][name]["properties"]

    assert {
        "id", "name", "external_id", "email", "currency", "shipping_address", "created_at",
        "updated_at", "order_status", "payment_status", "payment_markers", "fulfillment_status",
        "return_status", "total_price", "amount_authorized", "amount_captured", "amount_refunded",
        "payment_due_at", "line_items", "fulfillment_orders", "fulfillments", "transactions",
        "returns",
    } <= set(properties)


def test_order_intake_documents_its_body_and_its_answers(document):
    operation = document["paths"]["/orders"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][name]["properties"]

    assert {"name", "external_id", "email", "currency", "shipping_address", "line_items",
            "payment_due_at", "fulfill_at", "hold", "transactions"} <= set(properties)
    assert {"201", "422"} <= set(operation["responses"])
    assert "application/problem+json" in operation["responses"]["422"]["content"]

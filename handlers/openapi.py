"""The OpenAPI 3 document, built from the routes and the schemas that validate them."""

import json
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from werkzeug.routing import IntegerConverter

from adapter.version import VERSION

from . import schemas


def documented(summary, *, body=None, query=None, response=None, status=200, also=None, errors=(),
               tag=None):
    """Attach the OpenAPI description of a view; the document is built from these.

    `also` is `(status, description)` of a second success answer with the same body.
    """

    def decorate(view):
        view.openapi = {
            "summary": summary,
            "body": body,
            "query": query,
            "response": response,
            "status": status,
            "also": also,
            "errors": errors,
            "tag": tag,
        }
        return view

    return decorate


ERROR_DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Missing or invalid credentials or signature",
    404: "Not found",
    409: "Not allowed in the current state",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
}
PUBLIC_ENDPOINTS = {"meta.healthz", "meta.openapi_document", "webhooks.receive", "static"}


def _path_of(rule):
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)


def _schema_name(schema):
    name = type(schema).__name__
    return name.removesuffix("Schema") or name


def _operation(rule, view, method):
    meta = view.openapi
    problem = {"application/problem+json": {"schema": "Problem"}}
    responses = {}
    if meta["response"] is not None:
        responses[str(meta["status"])] = {
            "description": meta["summary"],
            "content": {"application/json": {"schema": meta["response"]}},
        }
    else:
        responses[str(meta["status"])] = {"description": meta["summary"]}
    if meta["also"] is not None:
        status, description = meta["also"]
        responses[str(status)] = {**responses[str(meta["status"])], "description": description}
    errors = set(meta["errors"])
    if rule.arguments:
        errors.add(404)
    if meta["body"] is not None and method != "get":
        errors.update((400, 415, 422))
    if meta["query"] is not None:
        errors.add(422)
    for status in sorted(errors):
        responses[str(status)] = {"description": ERROR_DESCRIPTIONS[status], "content": problem}
    operation = {
        "summary": meta["summary"],
        "operationId": rule.endpoint.replace(".", "_"),
        "tags": [meta["tag"]] if meta["tag"] else [],
        "responses": responses,
    }
    if rule.endpoint not in PUBLIC_ENDPOINTS:
        operation["security"] = [{"bearer": []}]
        responses["401"] = {"description": ERROR_DESCRIPTIONS[401], "content": problem}
    parameters = [
        {"in": "path", "name": name, "required": True,
         "schema": {"type": "integer"} if isinstance(rule._converters[name], IntegerConverter)
         else {"type": "string"}}
        for name in rule.arguments
    ]
    if meta["query"] is not None:
        parameters.append({"in": "query", "schema": meta["query"]})
    if parameters:
        operation["parameters"] = parameters
    if meta["body"] is not None and method != "get":
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": meta["body"]}},
        }
    return operation


def build(app):
    """Return the OpenAPI document of `app` as a dict."""
    spec = APISpec(
        title="Fulfillment adapter",
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={"description": "Merchant API and fulfillment service webhooks."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Problem", schema=schemas.ProblemSchema)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, "openapi"):
            continue
        operations = {
            method.lower(): _operation(rule, view, method.lower())
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        }
        spec.path(path=_path_of(rule), operations=operations)
    return spec.to_dict()


def document(app):
    """Return the OpenAPI document as JSON text, built once per app."""
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = json.dumps(build(app), ensure_ascii=False)
    return app.extensions["openapi"]

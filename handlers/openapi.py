"""The OpenAPI 3.1 document, built from the routes and the schemas that validate them.

Besides the routes it describes the messages the adapter sends (`webhooks`), each inbound
webhook type with its own data schema, the signature headers, every status as an enum and
`links` from what an operation creates to the operations that take its id.
"""

import json
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields, validate
from werkzeug.routing import IntegerConverter

from adapter import vocabulary as words
from adapter.transitions import MERCHANT_ACTIONS
from adapter.version import VERSION

from . import message_schemas, schemas

OPENAPI_VERSION = "3.1.0"


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
    503: "The store is unavailable: try again after Retry-After seconds",
}
PUBLIC_ENDPOINTS = {"meta.healthz", "meta.openapi_document", "webhooks.receive", "static"}
INBOUND_ENDPOINT = "webhooks.receive"
TAGS = (
    ("Orders", "Orders, their payments, timeline and returns (SPEC 3)."),
    ("Fulfillment orders", "Merchant actions on fulfillment orders (SPEC 2.3)."),
    ("Returns", "The return lifecycle (SPEC 2.5)."),
    ("Webhooks", "What fulfillment services send to the adapter (SPEC 4.2)."),
    ("Operations", "Health and this document."),
    ("Messages to services", "What the adapter POSTs to a service's `url` (SPEC 4.1)."),
    ("Customer notifications", "What the adapter POSTs to `notifications.url`."),
)
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}

# Values of output fields whose schema names no choices: the vocabulary is their one source.
# (schema class, field) -> allowed values; a list field's items take them.
OUTPUT_CHOICES = {
    ("FulfillmentOrderOutSchema", "status"): words.FOStatus,
    ("FulfillmentOrderOutSchema", "request_status"): words.RequestStatus,
    ("FulfillmentOrderOutSchema", "workflow"): words.Workflow,
    ("FulfillmentOrderOutSchema", "supported_actions"): MERCHANT_ACTIONS,
    ("HoldOutSchema", "reason"): words.HoldReason,
    ("MerchantRequestOutSchema", "kind"): words.MerchantRequestKind,
    ("MerchantRequestOutSchema", "status"): words.MerchantRequestStatus,
    ("FulfillmentOutSchema", "created_by"): (words.Actor.SERVICE, words.Actor.MERCHANT),
    ("FulfillmentOutSchema", "status"): ("success",),
    ("FulfillmentOutSchema", "shipment_status"): words.ShipmentStatus,
    ("ShipmentEventOutSchema", "status"): words.ShipmentStatus,
    ("TransactionOutSchema", "kind"): words.TransactionKind,
    ("ReturnLineOutSchema", "reason"): words.ReturnReason,
    ("ReturnOutSchema", "status"): words.ReturnState,
    ("ReturnOutSchema", "requested_by"): (words.Actor.CUSTOMER, words.Actor.MERCHANT),
    ("OrderOutSchema", "order_status"): words.OrderStatus,
    ("OrderOutSchema", "payment_status"): words.PaymentStatus,
    ("OrderOutSchema", "payment_markers"): words.PaymentMarker,
    ("OrderOutSchema", "fulfillment_status"): words.FulfillmentStatus,
    ("OrderOutSchema", "return_status"): words.ReturnStatus,
    ("TimelineEventOutSchema", "actor"): words.Actor,
    ("WebhookResultSchema", "status"): ("applied",),
    ("FOStateSchema", "status"): words.FOStatus,
    ("FOStateSchema", "request_status"): words.RequestStatus,
    # A refused FO action names the FO's status, a refused return action the return's.
    ("ProblemSchema", "current_status"): tuple(dict.fromkeys((*words.FOStatus, *words.ReturnState))),
    ("ProblemSchema", "request_status"): words.RequestStatus,
    ("HealthSchema", "status"): ("ok",),
}
# A comma-separated query filter takes 1 to 50 values (schemas.CommaList).
COMMA_LIST_ITEMS = {"minItems": 1, "maxItems": 50}

SIGNATURE_HEADERS = (
    ("webhook-id", "The message id; the same on every retry of one message.",
     {"type": "string", "minLength": 1, "maxLength": 255}),
    ("webhook-timestamp", "Unix seconds when the message was signed.",
     {"type": "string", "pattern": "^[0-9]{1,12}$"}),
    ("webhook-signature",
     'Space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` signatures, keyed by the'
     " secret (`whsec_<base64>`).",
     {"type": "string", "minLength": 1, "maxLength": 4096}),
)
INBOUND_SIGNATURE_NOTE = (
    " Required, unless the service signs with the Svix names (`svix-id`, `svix-timestamp`,"
    " `svix-signature`); when any `webhook-*` header is present the `svix-*` ones are ignored."
)

# A data example for each inbound type, with the ids of the FO it is sent about.
INBOUND_EXAMPLES = {
    "fulfillment_request.accepted": {
        "fulfillment_order_id": 1, "request_id": 1, "message": "Picking tomorrow morning.",
        "estimated_shipped_at": "2025-05-02T09:00:00Z",
    },
    "fulfillment_request.rejected": {
        "fulfillment_order_id": 1, "request_id": 1, "reason": "inventory_out_of_stock",
        "message": "MUG-1 is out of stock until June.",
    },
    "cancellation_request.accepted": {"fulfillment_order_id": 1, "message": "Stopped before packing."},
    "cancellation_request.rejected": {"fulfillment_order_id": 1, "message": "Already on the truck."},
    "fulfillment.created": {
        "fulfillment_order_id": 1, "external_id": "SHP-1001",
        "line_items": [{"id": 1, "quantity": 1}],
        "tracking": {"number": "1Z999AA10123456784", "company": "UPS",
                     "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"},
        "notify_customer": True, "message": "Left the warehouse.",
    },
    "fulfillment.tracking_updated": {
        "external_id": "SHP-1001",
        "tracking": {"number": "1Z999AA10123456785", "company": "UPS",
                     "url": "https://www.ups.com/track?tracknum=1Z999AA10123456785"},
        "notify_customer": False,
    },
    "fulfillment.event": {
        "external_id": "SHP-1001", "status": "in_transit", "happened_at": "2025-05-02T14:30:00Z",
        "message": "Arrived at the sorting centre.", "estimated_delivery_at": "2025-05-04T12:00:00Z",
        "location": {"city": "Bangkok", "country_code": "TH"},
    },
    "fulfillment_order.closed": {"fulfillment_order_id": 1, "message": "Cannot source the rest."},
    "fulfillment_order.message": {"fulfillment_order_id": 1, "message": "The parcel leaves on Monday."},
}
EXAMPLE_TIMESTAMP = "2025-05-02T15:00:00Z"

# Links: what a response creates (a runtime expression for its id) and the path parameter that
# every operation taking that id names.
LINKED_IDS = {"order": "order_id", "fulfillment_order": "fo_id", "return": "return_id"}
LINKS = {
    # operationId: {status: [(kind, expression, link name prefix)]}
    "orders_create_order": {
        "201": [("order", "$response.body#/id", ""),
                ("fulfillment_order", "$response.body#/fulfillment_orders/0/id", "first_fo_")],
        "200": [("order", "$response.body#/id", ""),
                ("fulfillment_order", "$response.body#/fulfillment_orders/0/id", "first_fo_")],
    },
    "fulfillment_orders_request_fulfillment": {
        "200": [("fulfillment_order", "$response.body#/submitted_fulfillment_order/id", "submitted_"),
                ("fulfillment_order", "$response.body#/unsubmitted_fulfillment_order/id",
                 "unsubmitted_")],
    },
    "fulfillment_orders_revert": {
        "200": [("fulfillment_order", "$response.body#/fulfillment_order/id", "")],
    },
    "fulfillment_orders_mark_fulfilled": {
        "201": [("fulfillment_order", "$response.body#/fulfillment/fulfillment_order_id", "fulfillment_"),
                ("order", "$response.body#/fulfillment/order_id", "fulfillment_")],
    },
    "orders_create_return": {
        "201": [("return", "$response.body#/id", ""), ("order", "$response.body#/order_id", "return_")],
    },
}


def camel(message_type):
    """Return `FulfillmentRequestAccepted` for `fulfillment_request.accepted`."""
    return "".join(part.capitalize() for part in re.split(r"[._]", message_type))


def _vocabulary(self, field, ret, **kwargs):
    """Give an output field whose schema names no choices the values of its vocabulary."""
    choices = OUTPUT_CHOICES.get((type(field.parent).__name__, field.name))
    if choices is None:
        return {}
    target = ret["items"] if isinstance(field, fields.List) else ret
    if "enum" not in target:
        target["enum"] = [str(choice) for choice in choices] + ([None] if field.allow_none else [])
    return {}


def _amount(self, field, ret, **kwargs):
    """Say what an amount's pattern cannot: its decimals and sums depend on the currency."""
    if not any(getattr(v, "regex", None) and v.regex.pattern == schemas.AMOUNT for v in field.validators):
        return {}
    return {"description": "A decimal string with at most as many decimals as the currency has;"
                           " every sum the adapter stores stays within 13 integer digits, else 422."}


def _web_address(self, field, ret, **kwargs):
    """Describe a URL field as JSON Schema knows it: a `uri` of one of the accepted schemes."""
    schemes = [v.schemes for v in field.validators if isinstance(v, validate.URL)]
    if not isinstance(field, fields.URL) or not schemes:
        return {}
    either_case = "|".join(
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in scheme)
        for scheme in sorted(schemes[0])
    )
    return {"format": "uri", "pattern": f"^({either_case})://"}


def _path_of(rule):
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)


def _schema_name(schema):
    name = type(schema).__name__
    return name.removesuffix("Schema") or name


def _problem(status):
    response = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/problem+json": {"schema": "Problem"}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


def _operation(rule, view, method):
    meta = view.openapi
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
    errors = set(meta["errors"]) | {503}
    if rule.arguments:
        errors.add(404)
    if meta["body"] is not None and method != "get":
        errors.update((400, 415, 422))
    if meta["query"] is not None:
        errors.add(422)
    if rule.endpoint not in PUBLIC_ENDPOINTS:
        errors.add(401)
    for status in sorted(errors):
        responses[str(status)] = _problem(status)
    operation = {
        "summary": meta["summary"],
        "operationId": rule.endpoint.replace(".", "_"),
        "tags": [meta["tag"]] if meta["tag"] else [],
        "responses": responses,
    }
    if rule.endpoint not in PUBLIC_ENDPOINTS:
        operation["security"] = [{"bearer": []}]
    parameters = [
        {"in": "path", "name": name, "required": True,
         "schema": {"type": "integer", "minimum": 0}
         if isinstance(rule._converters[name], IntegerConverter) else {"type": "string"}}
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
    if rule.endpoint == INBOUND_ENDPOINT:
        _describe_inbound(operation)
    return operation


def _header_parameters(required, note=""):
    return [
        {"in": "header", "name": name, "required": required, "description": description + note,
         "schema": schema}
        for name, description, schema in SIGNATURE_HEADERS
    ]


def _describe_inbound(operation):
    """Give `POST /webhooks/{service}` one envelope per type, its headers and its answers."""
    mapping = {
        message_type: f"#/components/schemas/{camel(message_type)}Webhook"
        for message_type in schemas.WEBHOOK_DATA_SCHEMAS
    }
    operation["requestBody"] = {
        "required": True,
        "description": "A JSON envelope `{type, timestamp, data}`; `type` selects the data schema."
                       " Fields of `data` the adapter does not know are ignored.",
        "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }}},
    }
    svix = [
        {"in": "header", "name": name, "required": False,
         "description": f"Accepted in place of `{standard}` (Svix naming).", "schema": schema}
        for (standard, _, schema), name in zip(
            SIGNATURE_HEADERS, ("svix-id", "svix-timestamp", "svix-signature"), strict=True
        )
    ]
    operation["parameters"] += _header_parameters(False, INBOUND_SIGNATURE_NOTE) + svix
    responses = operation["responses"]
    responses["200"]["description"] = (
        "Applied; or a redelivery of an applied webhook (same `webhook-id`, same body), answered"
        " with the original response and `Idempotent-Replayed: true`."
    )
    responses["200"]["headers"] = {"Idempotent-Replayed": {
        "description": "`true` when this answer repeats the one given to an earlier delivery.",
        "schema": {"type": "string", "enum": ["true"]},
    }}
    details = {
        "400": "The body is not JSON.",
        "401": "Missing, malformed, wrong or expired signature (outside the tolerance).",
        "404": "Unknown service key; or the FO or fulfillment is unknown or another service's.",
        "409": "Not allowed in the FO's current state (the problem names `current_status` and"
               " `request_status`), a stale `request_id`, or the same delivery still being applied.",
        "413": "The body is over `webhooks.max_body_bytes`.",
        "415": "The content type is not JSON.",
        "422": "The envelope or its data is invalid, the type is unknown, or the `webhook-id` was"
               " applied with another body (`idempotency_conflict`).",
    }
    for status, description in details.items():
        responses[status] = {**responses[status], "description": description}


def _inbound_envelope(message_type):
    data_name = _schema_name(schemas.WEBHOOK_DATA_SCHEMAS[message_type])
    return _envelope(message_type, data_name, {
        "type": message_type, "timestamp": EXAMPLE_TIMESTAMP, "data": INBOUND_EXAMPLES[message_type],
    })


def _envelope(message_type, data_name, example=None):
    envelope = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": message_type},
            "timestamp": {"type": "string", "format": "date-time",
                          "description": "RFC 3339, with an offset."},
            "data": {"$ref": f"#/components/schemas/{data_name}"},
        },
        "required": ["type", "timestamp", "data"],
        "additionalProperties": False,
    }
    if example is not None:
        envelope["example"] = example
    return envelope


def _outbound(message_type, target, description):
    retried = "Retried on `outbox.retry_schedule` (honouring `Retry-After`)."
    return {"post": {
        "summary": description,
        "operationId": "send_" + message_type.replace(".", "_"),
        "tags": ["Messages to services" if target == message_schemas.SERVICE
                 else "Customer notifications"],
        "description": "Signed like the inbound webhooks (Standard Webhooks). `Idempotency-Key`"
                       " equals `webhook-id`; both stay the same on every retry of the message.",
        "parameters": _header_parameters(True) + [{
            "in": "header", "name": "Idempotency-Key", "required": True,
            "description": "Equal to `webhook-id`: a retry is the same message.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{camel(message_type)}Message"},
        }}},
        "responses": {
            "2XX": {"description": "Stored: the message is delivered and never sent again."},
            "408": {"description": retried},
            "425": {"description": retried},
            "429": {"description": retried, "headers": {"Retry-After": RETRY_AFTER}},
            "5XX": {"description": retried + " So are timeouts and connection errors.",
                    "headers": {"Retry-After": RETRY_AFTER}},
            "default": {
                "description": "Any other answer, or running out of attempts, fails the message: a"
                               " failed request puts the FO back (`open` / `unsubmitted`, or"
                               " `accepted` for a cancellation request) and the timeline shows the"
                               " answer.",
            },
        },
    }}


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def _link_targets(document):
    """Return {kind: [(operationId, summary)]} of the operations that take each kind's id."""
    targets = {kind: [] for kind in LINKED_IDS}
    for path, _, operation in _operations(document):
        for kind, name in LINKED_IDS.items():
            if "{" + name + "}" in path:
                targets[kind].append((operation["operationId"], operation["summary"]))
    return targets


def _add_links(document):
    targets = _link_targets(document)
    for _, _, operation in _operations(document):
        for status, sources in LINKS.get(operation["operationId"], {}).items():
            links = operation["responses"][status].setdefault("links", {})
            for kind, expression, prefix in sources:
                for operation_id, summary in targets[kind]:
                    links[prefix + operation_id] = {
                        "operationId": operation_id,
                        "parameters": {LINKED_IDS[kind]: expression},
                        "description": summary,
                    }


def _comma_separated(document):
    """Query filters take comma-separated values (`a,b`), not repeated parameters."""
    for _, _, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "array":
                parameter.update(style="form", explode=False)
                parameter["schema"].update(COMMA_LIST_ITEMS)


def _add_schema(spec, schema):
    """Add a marshmallow schema as a component once (several types share one data schema)."""
    if _schema_name(schema) not in spec.components.schemas:
        spec.components.schema(_schema_name(schema), schema=schema)


def build(app):
    """Return the OpenAPI document of `app` as a dict."""
    plugin = MarshmallowPlugin(schema_name_resolver=_schema_name)
    spec = APISpec(
        title="Fulfillment adapter",
        version=VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": "Merchant API, the webhooks fulfillment services send, and the"
                             " messages the adapter sends them (`webhooks`)."},
    )
    plugin.converter.add_attribute_function(_vocabulary)
    plugin.converter.add_attribute_function(_web_address)
    plugin.converter.add_attribute_function(_amount)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Problem", schema=schemas.ProblemSchema)
    for message_type, schema in schemas.WEBHOOK_DATA_SCHEMAS.items():
        _add_schema(spec, schema)
        spec.components.schema(f"{camel(message_type)}Webhook", _inbound_envelope(message_type))
    for message_type, (_, schema, _) in message_schemas.MESSAGES.items():
        _add_schema(spec, schema)
        spec.components.schema(f"{camel(message_type)}Message", _envelope(message_type, _schema_name(schema)))
    for name, description in TAGS:
        spec.tag({"name": name, "description": description})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, "openapi"):
            continue
        operations = {
            method.lower(): _operation(rule, view, method.lower())
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        }
        spec.path(path=_path_of(rule), operations=operations)
    document = spec.to_dict()
    _comma_separated(document)
    _add_links(document)
    document["webhooks"] = {
        message_type: _outbound(message_type, target, description)
        for message_type, (target, _, description) in message_schemas.MESSAGES.items()
    }
    return document


def document(app):
    """Return the OpenAPI document as JSON text, built once per app."""
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = json.dumps(build(app), ensure_ascii=False)
    return app.extensions["openapi"]

"""Service → adapter: `POST /webhooks/{service}`, checked in the order SPEC 4.2 gives."""

from flask import Blueprint, current_app, g, request

from adapter import receipts, rendering, signing, store
from adapter.errors import (
    AdapterError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

from . import schemas
from .openapi import documented
from .parsing import is_json, load, now, parse_json
from .responses import rendered

bp = Blueprint("webhooks", __name__)

envelope_in = schemas.EnvelopeSchema()
result_out = schemas.WebhookResultSchema()


def _read_body(limit):
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Bodies are limited to {limit} bytes.")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"Bodies are limited to {limit} bytes.")
    return body


def _within_data(error):
    """Name the fields of a data validation error as the sender sees them: `data.<field>`."""
    return ValidationFailed({f"data.{key}": value for key, value in error.errors.items()})


def _parse(body):
    envelope = parse_json(body)
    if not isinstance(envelope, dict):
        raise ValidationFailed({"body": ["Must be a JSON object."]})
    envelope = load(envelope_in, envelope)
    g.webhook_type = envelope["type"]  # the metrics' `type` label
    data_schema = schemas.WEBHOOK_DATA_SCHEMAS.get(envelope["type"])
    if data_schema is None:
        raise ValidationFailed({"type": [f"Unknown type {envelope['type']!r}."]})
    try:
        return envelope["type"], load(data_schema, envelope["data"])
    except ValidationFailed as exc:
        raise _within_data(exc) from None


def _respond(applied):
    result = {"status": "applied", **rendering.applied_views(applied, now())}
    body, status, _ = rendered(result)
    return status, body


@bp.post("/webhooks/<service>")
@documented(
    "Receive a signed webhook from a fulfillment service (Standard Webhooks).",
    body=envelope_in,
    response=result_out,
    errors=(400, 401, 404, 409, 413, 415, 422),
    tag="Webhooks",
)
def receive(service):
    settings = current_app.extensions["adapter_settings"]
    config = settings.services.get(service)
    if config is None:
        raise NotFound(f"No fulfillment service {service!r}.")
    body = _read_body(settings.max_body_bytes)
    if not is_json(request.mimetype):
        raise UnsupportedMediaType("Send webhooks as application/json.")
    received_at = now()
    webhook_id = signing.verify(
        config.secrets, request.headers, body, settings.tolerance_seconds, received_at
    )
    headers = dict(request.headers.items())
    try:
        event_type, data = _parse(body)
        try:
            # A redelivery is recognised by its receipt, after the checks of SPEC 4.2.
            status, text, replayed = receipts.apply_once(
                service, webhook_id, headers, body, event_type, data, received_at, _respond
            )
        except ValidationFailed as exc:
            raise _within_data(exc) from None
    except AdapterError as exc:
        receipts.keep_delivery(service, webhook_id, headers, body, received_at, exc.status, exc.code)
        raise
    except Exception as exc:
        # A fault of ours still leaves a verified delivery to keep (and replay once mended);
        # a store that is down cannot keep it, and its 503 has the sender try again.
        if not store.is_unavailable(exc):
            receipts.keep_delivery(service, webhook_id, headers, body, received_at, 500, "internal_error")
        raise
    response_headers = {"Content-Type": "application/json"}
    if replayed:
        response_headers["Idempotent-Replayed"] = "true"
    return text, status, response_headers

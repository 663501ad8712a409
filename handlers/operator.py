"""Operator API (merchant token): outbox messages, sending them again, received webhooks (SPEC 9)."""

import base64
import binascii

from flask import Blueprint
from marshmallow import ValidationError

from adapter import operator, outbox
from adapter.errors import ValidationFailed
from adapter.times import rfc3339

from . import operator_schemas as schemas
from .auth import require_merchant_token
from .openapi import documented
from .parsing import MAX_STORED_ID, json_body, now, query_args
from .responses import rendered
from .schemas import EmptySchema, UTCDateTime

bp = Blueprint("operator", __name__)
bp.before_request(require_merchant_token)

message_query = schemas.MessageQuerySchema()
message_page_out = schemas.OutboxMessagePageSchema()
message_out = schemas.OutboxMessageDetailSchema()
delivery_query = schemas.DeliveryQuerySchema()
delivery_page_out = schemas.WebhookDeliveryPageSchema()
delivery_out = schemas.WebhookDeliveryDetailSchema()
empty = EmptySchema()
_moment = UTCDateTime()

TAG = "Operations"
NOT_A_CURSOR = "Not a cursor this API returned."


def _encode(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor, prefix):
    """Return the fields of a cursor made by `_encode(prefix + ...)`; a forged one is a 422."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed({"cursor": [NOT_A_CURSOR]}) from None
    if not text.startswith(prefix):
        raise ValidationFailed({"cursor": [NOT_A_CURSOR]})
    return text[len(prefix):]


def _row_id(text):
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= MAX_STORED_ID):
        raise ValidationFailed({"cursor": [NOT_A_CURSOR]})
    return int(text)


def message_view(message, body=False):
    """Return the operator's view of an outbox message, shaped as its schema dumps it."""
    state = outbox.state_of(message.status)
    view = {
        "id": message.id,
        "message_id": message.message_id,
        "service": message.target,
        "type": message.type,
        "state": state,
        "attempts": message.attempts,
        "next_attempt_at": rfc3339(message.next_attempt_at) if state == "pending" else None,
        "last_status_code": message.last_status_code,
        "last_answer": message.last_answer,
        "created_at": rfc3339(message.created_at),
        "finished_at": rfc3339(message.finished_at),
        "order_id": message.order_id,
        "fulfillment_order_id": message.fulfillment_order_id,
        "merchant_request_id": message.request_id,
    }
    if body:
        view["body"] = message.body
    return view


def delivery_view(delivery, detail=False):
    """Return the operator's view of a received webhook; with `detail`, its headers and raw body."""
    view = {
        "id": delivery.id,
        "service": delivery.service,
        "webhook_id": delivery.webhook_id,
        "received_at": rfc3339(delivery.received_at),
        "outcome": {"status": delivery.outcome_status, "code": delivery.outcome_code},
    }
    if detail:
        raw = bytes(delivery.body)
        view["headers"] = delivery.headers
        try:
            view["body"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            view["body"] = None
            view["body_base64"] = base64.b64encode(raw).decode("ascii")
    return view


@bp.get("/outbox/messages")
@documented(
    "List outbox messages in the order they were queued, by state and service, a page at a time.",
    query=message_query, response=message_page_out, errors=(422,), tag=TAG,
)
def list_messages():
    args = query_args(message_query)
    after = _row_id(_decode(args["cursor"], "m:")) if args.get("cursor") else None
    found, more = operator.list_messages(args.get("state"), args.get("service"), after, args["limit"])
    return rendered({
        "messages": [message_view(message) for message in found],
        "next_cursor": _encode(f"m:{found[-1].id}") if more else None,
    })


@bp.get("/outbox/messages/<id:message_id>")
@documented("Read an outbox message with the body it sends.", response=message_out, tag=TAG)
def get_message(message_id):
    return rendered(message_view(operator.get_message(message_id), body=True))


@bp.post("/outbox/messages/<id:message_id>/retry")
@documented(
    "Send a message now: a failed one again, unchanged (same webhook-id, same body), a pending one"
    " without waiting for its next attempt. 409 when it was delivered, or when its fulfillment"
    " order has moved on so that it no longer applies.",
    body=empty, response=message_out, errors=(409,), tag=TAG,
)
def retry_message(message_id):
    json_body(empty)
    return rendered(message_view(operator.retry(message_id, now()), body=True))


@bp.get("/webhook_deliveries")
@documented(
    "List received webhooks in the order received, by service, outcome and time, a page at a time.",
    query=delivery_query, response=delivery_page_out, errors=(422,), tag=TAG,
)
def list_deliveries():
    args = query_args(delivery_query)
    after = None
    if args.get("cursor"):
        at, _, last_id = _decode(args["cursor"], "d:").rpartition("|")
        try:
            after = (_moment.deserialize(at), _row_id(last_id))
        except ValidationError:
            raise ValidationFailed({"cursor": [NOT_A_CURSOR]}) from None
    found, more = operator.list_deliveries(
        args.get("service"), args.get("outcome"), args.get("since"), after, args["limit"]
    )
    last = found[-1] if found else None
    return rendered({
        "deliveries": [delivery_view(delivery) for delivery in found],
        "next_cursor": _encode(f"d:{_moment.serialize('at', {'at': last.received_at})}|{last.id}")
        if more else None,
    })


@bp.get("/webhook_deliveries/<id:delivery_id>")
@documented("Read a received webhook: its headers and its raw body.", response=delivery_out, tag=TAG)
def get_delivery(delivery_id):
    return rendered(delivery_view(operator.get_delivery(delivery_id), detail=True))

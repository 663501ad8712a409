"""Merchant API: actions on fulfillment orders."""

from flask import Blueprint

from adapter import fulfillment_orders as fos
from adapter import rendering
from adapter.errors import NotFound
from adapter.models import FulfillmentOrder

from . import schemas
from .auth import require_merchant_token
from .openapi import documented
from .parsing import json_body, now
from .responses import rendered

bp = Blueprint("fulfillment_orders", __name__)
bp.before_request(require_merchant_token)

TAG = "Fulfillment orders"
fo_out = schemas.FulfillmentOrderOutSchema()
request_in = schemas.FulfillmentRequestSchema()
request_out = schemas.FulfillmentRequestResultSchema()
message_optional = schemas.MessageOptionalSchema()
message_in = schemas.MessageSchema()
revert_in = schemas.RevertSchema()
revert_out = schemas.RevertResultSchema()
mark_in = schemas.MarkFulfilledSchema()
mark_out = schemas.MarkFulfilledResultSchema()
hold_in = schemas.HoldInSchema()
empty = schemas.EmptySchema()


def fo_view(fo):
    """Return the client view of an FO, or None."""
    return rendering.fulfillment_order_view(fo, now()) if fo is not None else None


@bp.get("/fulfillment_orders/<id:fo_id>")
@documented("Read one fulfillment order.", response=fo_out, tag=TAG)
def get_fulfillment_order(fo_id):
    fo = FulfillmentOrder.get_or_none(FulfillmentOrder.id == fo_id)
    if fo is None:
        raise NotFound(f"Fulfillment order {fo_id} does not exist.")
    return rendered(fo_view(fo))


@bp.post("/fulfillment_orders/<id:fo_id>/fulfillment_request")
@documented(
    "Ask the service to fulfill the FO, or some of its lines (the rest moves to a new FO).",
    body=request_in, response=request_out, errors=(409, 422), tag=TAG,
)
def request_fulfillment(fo_id):
    submitted, unsubmitted = fos.request_fulfillment(fo_id, json_body(request_in), now())
    return rendered(
        {
            "submitted_fulfillment_order": fo_view(submitted),
            "unsubmitted_fulfillment_order": fo_view(unsubmitted),
        },
    )


@bp.post("/fulfillment_orders/<id:fo_id>/cancel")
@documented(
    "Withdraw a request the service has not accepted yet.",
    body=message_optional, response=fo_out, errors=(409,), tag=TAG,
)
def cancel_request(fo_id):
    return rendered(fo_view(fos.cancel_request(fo_id, json_body(message_optional), now())))


@bp.post("/fulfillment_orders/<id:fo_id>/cancellation_request")
@documented(
    "Ask the service to cancel an accepted request.",
    body=message_optional, response=fo_out, errors=(409,), tag=TAG,
)
def request_cancellation(fo_id):
    fo = fos.request_cancellation(fo_id, json_body(message_optional), now())
    return rendered(fo_view(fo))


@bp.post("/fulfillment_orders/<id:fo_id>/revert")
@documented(
    "Revert to unfulfilled when the service cancelled but could not report it.",
    body=revert_in, response=revert_out, errors=(409, 422), tag=TAG,
)
def revert(fo_id):
    fo, unchanged, warnings = fos.revert(fo_id, json_body(revert_in), now())
    return rendered(
        {
            "fulfillment_order": fo_view(fo),
            "unchanged_fulfillment_order": fo_view(unchanged),
            "warnings": warnings,
        },
    )


@bp.post("/fulfillment_orders/<id:fo_id>/mark_fulfilled")
@documented(
    "Record a shipment the merchant made, with optional tracking and customer notice.",
    body=mark_in, response=mark_out, status=201, errors=(409, 422), tag=TAG,
)
def mark_fulfilled(fo_id):
    fulfillment, fo = fos.mark_fulfilled(fo_id, json_body(mark_in), now())
    return rendered(
        {
            "fulfillment": rendering.fulfillment_views([fulfillment])[0],
            "fulfillment_order": fo_view(fo),
        },
        201,
    )


@bp.post("/fulfillment_orders/<id:fo_id>/hold")
@documented("Put the FO on hold.", body=hold_in, response=fo_out, errors=(409, 422), tag=TAG)
def hold(fo_id):
    return rendered(fo_view(fos.hold(fo_id, json_body(hold_in), now())))


@bp.post("/fulfillment_orders/<id:fo_id>/release_hold")
@documented("Release the FO's hold.", body=empty, response=fo_out, errors=(409,), tag=TAG)
def release_hold(fo_id):
    json_body(empty)
    return rendered(fo_view(fos.release_hold(fo_id, now())))


@bp.post("/fulfillment_orders/<id:fo_id>/open")
@documented("Open a scheduled FO now.", body=empty, response=fo_out, errors=(409,), tag=TAG)
def open_early(fo_id):
    json_body(empty)
    return rendered(fo_view(fos.open_early(fo_id, now())))


@bp.post("/fulfillment_orders/<id:fo_id>/messages")
@documented(
    "Send a note to the FO's service (never to the customer).",
    body=message_in, response=fo_out, errors=(409, 422), tag=TAG,
)
def send_message(fo_id):
    return rendered(fo_view(fos.send_message(fo_id, json_body(message_in), now())))


@bp.post("/fulfillment_orders/<id:fo_id>/acknowledge")
@documented("Clear needs_attention after looking.", body=empty, response=fo_out, tag=TAG)
def acknowledge(fo_id):
    json_body(empty)
    return rendered(fo_view(fos.acknowledge(fo_id, now())))

"""Merchant API: orders, their transactions, timeline and returns."""

import base64
import binascii

from flask import Blueprint, current_app, url_for

from adapter import order_list, orders, payments, rendering, returns, store, timeline
from adapter.errors import ValidationFailed
from adapter.locks import get_order

from . import schemas
from .auth import require_merchant_token
from .openapi import documented
from .parsing import MAX_STORED_ID, json_body, now, query_args
from .responses import dump, rendered

bp = Blueprint("orders", __name__)
bp.before_request(require_merchant_token)

order_in = schemas.OrderInSchema()
order_edit = schemas.OrderEditSchema()
order_cancel = schemas.CancelOrderSchema()
order_query = schemas.OrderQuerySchema()
transaction_in = schemas.TransactionInSchema()
comment_in = schemas.CommentInSchema()
return_in = schemas.ReturnInSchema()
empty = schemas.EmptySchema()
order_out = schemas.OrderOutSchema()
order_page_out = schemas.OrderListSchema()
transaction_out = schemas.TransactionOutSchema()
timeline_out = schemas.TimelineEventOutSchema(many=True)
event_out = schemas.TimelineEventOutSchema()
return_out = schemas.ReturnOutSchema()

TAG = "Orders"


def encode_cursor(order_id):
    """Make an opaque cursor for the page after `order_id`."""
    return base64.urlsafe_b64encode(f"o:{order_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor):
    """Read a cursor back; a forged or damaged one is a 422."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, order_id = text.partition(":")
        if prefix != "o" or not order_id.isdigit() or not 0 < int(order_id) <= MAX_STORED_ID:
            raise ValueError
        return int(order_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed({"cursor": ["Not a cursor this API returned."]}) from None


def _order(order, status=200, headers=None, view=None):
    body, status, base = rendered(view or rendering.order_view(order, now()), status)
    return body, status, {**base, **(headers or {})}


@bp.post("/orders")
@documented(
    "Import an order; the same external_id again returns it with 200.",
    body=order_in, response=order_out, status=201, errors=(422,), tag=TAG,
    also=(200, "An order with this external_id was already imported: that order, unchanged."),
)
def create_order():
    imported = orders.import_order(json_body(order_in), now())
    order = imported.order
    location = {"Location": url_for(".get_order_view", order_id=order.id)}
    view = rendering.new_order_view(order, imported.written, now()) if imported.written else None
    return _order(order, 201 if imported.created else 200, location, view)


@bp.get("/orders")
@documented(
    "List orders, newest first, with filters (comma = any of), a search `q` and a cursor.",
    query=order_query, response=order_page_out, errors=(422,), tag=TAG,
)
def list_orders():
    args = query_args(order_query)
    after = decode_cursor(args["cursor"]) if args.get("cursor") else None
    settings = current_app.extensions["adapter_settings"]
    with store.snapshot():
        # The page and the parts of its orders, as of one moment of the store and the clock.
        found, more = order_list.list_orders(args, args["limit"], after, now(), settings.expiring_days)
        page = rendering.listed_order_views(found, now())
    return rendered(
        {"orders": page, "next_cursor": encode_cursor(found[-1].id) if more else None},
    )


@bp.get("/orders/<id:order_id>")
@documented("Read an order with its lines, FOs, fulfillments, money and returns.",
            response=order_out, tag=TAG)
def get_order_view(order_id):
    return _order(get_order(order_id))


@bp.patch("/orders/<id:order_id>")
@documented(
    "Edit contact details and line quantities, or add lines.",
    body=order_edit, response=order_out, errors=(409, 422), tag=TAG,
)
def edit_order(order_id):
    return _order(orders.edit_order(order_id, json_body(order_edit), now()))


@bp.post("/orders/<id:order_id>/cancel")
@documented(
    "Cancel: void an open authorization, refund if asked, cancel what remains.",
    body=order_cancel, response=order_out, errors=(409, 422), tag=TAG,
)
def cancel_order(order_id):
    payload = json_body(order_cancel)
    return _order(orders.cancel_order(order_id, payload.get("reason"), payload["refund"], now()))


@bp.post("/orders/<id:order_id>/archive")
@documented("Archive the order.", body=empty, response=order_out, tag=TAG)
def archive_order(order_id):
    json_body(empty)
    return _order(orders.set_archived(order_id, True, now()))


@bp.post("/orders/<id:order_id>/unarchive")
@documented("Unarchive the order.", body=empty, response=order_out, tag=TAG)
def unarchive_order(order_id):
    json_body(empty)
    return _order(orders.set_archived(order_id, False, now()))


@bp.post("/orders/<id:order_id>/transactions")
@documented(
    "Record an authorization, capture, sale, refund or void.",
    body=transaction_in, response=transaction_out, status=201, errors=(409, 422), tag=TAG,
)
def add_transaction(order_id):
    order, tx = payments.add_transaction(order_id, json_body(transaction_in), now())
    return rendered(rendering.transaction_view(tx, order.currency), 201)


@bp.get("/orders/<id:order_id>/timeline")
@documented("The order's timeline, oldest first.", response=timeline_out, tag=TAG)
def get_timeline(order_id):
    get_order(order_id)
    return dump(timeline_out, timeline.events_of(order_id))


@bp.post("/orders/<id:order_id>/comments")
@documented(
    "Add a staff comment to the timeline, in any state of the order.",
    body=comment_in, response=event_out, status=201, errors=(422,), tag=TAG,
)
def add_comment(order_id):
    event = timeline.add_comment(order_id, json_body(comment_in)["message"], now())
    return dump(event_out, event, 201)


@bp.post("/orders/<id:order_id>/returns")
@documented(
    "Open a return of fulfilled items.",
    body=return_in, response=return_out, status=201, errors=(409, 422), tag="Returns",
)
def create_return(order_id):
    return_ = returns.create_return(order_id, json_body(return_in), now())
    return rendered(rendering.return_views([return_])[0], 201)

"""Read models: orders and their parts as clients see them, statuses computed for `now`."""

from collections import defaultdict

from . import settings, store, transitions
from .models import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentOrder,
    FulfillmentOrderLine,
    LineItem,
    MerchantRequest,
    Order,
    Return,
    ReturnLine,
    ShipmentEvent,
    Transaction,
)
from .money import format_amount
from .statuses import (
    effective_fo_status,
    fulfillment_status_of,
    order_status_of,
    payment_markers_of,
    payment_status_of,
)


def _grouped(rows, key):
    groups = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def fulfillment_order_views(fos, now):
    """Return the client view of each FO, with lines, supported actions and requests."""
    with store.snapshot():
        return _fulfillment_order_views(fos, now)


def _fulfillment_order_views(fos, now):
    ids = [fo.id for fo in fos]
    if not ids:
        return []
    lines = _grouped(
        FulfillmentOrderLine.select(FulfillmentOrderLine, LineItem)
        .join(LineItem)
        .where(FulfillmentOrderLine.fulfillment_order.in_(ids))
        .order_by(FulfillmentOrderLine.id),
        lambda line: line.fulfillment_order_id,
    )
    requests = _grouped(
        MerchantRequest.select()
        .where(MerchantRequest.fulfillment_order.in_(ids))
        .order_by(MerchantRequest.id),
        lambda request: request.fulfillment_order_id,
    )
    return [fulfillment_order_view(fo, now, lines[fo.id], requests[fo.id]) for fo in fos]


def fulfillment_order_view(fo, now, lines=None, requests=None):
    """Return the client view of one FO."""
    if lines is None:
        return fulfillment_order_views([fo], now)[0]
    remaining = sum(line.remaining_quantity for line in lines)
    return {
        "id": fo.id,
        "order_id": fo.order_id,
        "service": fo.service,
        "workflow": fo.workflow,
        "status": effective_fo_status(fo.status, fo.fulfill_at, now),
        "request_status": fo.request_status,
        "fulfill_at": fo.fulfill_at,
        "hold": {"reason": fo.hold_reason, "note": fo.hold_note} if fo.hold_reason else None,
        "needs_attention": fo.needs_attention,
        "created_at": fo.created_at,
        "updated_at": fo.updated_at,
        "line_items": [
            {
                "id": line.id,
                "line_item_id": line.line_item_id,
                "sku": line.line_item.sku,
                "title": line.line_item.title,
                "quantity": line.quantity,
                "remaining_quantity": line.remaining_quantity,
            }
            for line in lines
        ],
        "supported_actions": transitions.supported_actions(fo, now, remaining),
        "merchant_requests": [
            {
                "id": request.id,
                "kind": request.kind,
                "message": request.message,
                "status": request.status,
                "sent_at": request.sent_at,
                "answered_at": request.answered_at,
                "answer_message": request.answer_message,
            }
            for request in requests
        ],
    }


def fulfillment_views(fulfillments):
    """Return the client view of each fulfillment, with lines, tracking and events."""
    ids = [f.id for f in fulfillments]
    if not ids:
        return []
    lines = _grouped(
        FulfillmentLine.select().where(FulfillmentLine.fulfillment.in_(ids)).order_by(
            FulfillmentLine.id
        ),
        lambda line: line.fulfillment_id,
    )
    events = _grouped(
        ShipmentEvent.select()
        .where(ShipmentEvent.fulfillment.in_(ids))
        .order_by(ShipmentEvent.happened_at, ShipmentEvent.id),
        lambda event: event.fulfillment_id,
    )
    return [
        {
            "id": f.id,
            "order_id": f.order_id,
            "fulfillment_order_id": f.fulfillment_order_id,
            "external_id": f.external_id,
            "created_by": f.created_by,
            "status": f.status,
            "shipment_status": f.shipment_status,
            "estimated_delivery_at": f.estimated_delivery_at,
            "created_at": f.created_at,
            "tracking": {
                "number": f.tracking_number,
                "company": f.tracking_company,
                "url": f.tracking_url,
            },
            "line_items": [
                {"line_item_id": line.line_item_id, "quantity": line.quantity}
                for line in lines[f.id]
            ],
            "events": [
                {
                    "status": event.status,
                    "happened_at": event.happened_at,
                    "message": event.message,
                    "estimated_delivery_at": event.estimated_delivery_at,
                    "location": event.location,
                }
                for event in events[f.id]
            ],
        }
        for f in fulfillments
    ]


def return_views(returns):
    """Return the client view of each return."""
    ids = [r.id for r in returns]
    lines = _grouped(
        ReturnLine.select().where(ReturnLine.return_.in_(ids)).order_by(ReturnLine.id)
        if ids
        else [],
        lambda line: line.return_id,
    )
    return [
        {
            "id": r.id,
            "order_id": r.order_id,
            "status": r.status,
            "requested_by": r.requested_by,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "line_items": [
                {
                    "id": line.id,
                    "line_item_id": line.line_item_id,
                    "quantity": line.quantity,
                    "reason": line.reason,
                }
                for line in lines[r.id]
            ],
        }
        for r in returns
    ]


def transaction_view(tx, currency):
    """Return the client view of a transaction."""
    return {
        "id": tx.id,
        "order_id": tx.order_id,
        "kind": tx.kind,
        "amount": format_amount(tx.amount_minor, currency),
        "expires_at": tx.expires_at,
        "return_id": tx.return_id,
        "created_at": tx.created_at,
    }


def order_views(orders, now):
    """Return the client view of each order as of one moment, loading related rows in a few queries."""
    with store.snapshot():
        return _order_views(orders, now)


def _order_views(orders, now):
    ids = [order.id for order in orders]
    if not ids:
        return []
    # Read the orders again inside the snapshot so their statuses match their parts.
    fresh = {order.id: order for order in Order.select().where(Order.id.in_(ids))}
    orders = [fresh[order_id] for order_id in ids if order_id in fresh]

    def by_order(model):
        return _grouped(
            model.select().where(model.order.in_(ids)).order_by(model.id), lambda row: row.order_id
        )

    lines = by_order(LineItem)
    fos = by_order(FulfillmentOrder)
    fo_views = _grouped(
        _fulfillment_order_views([fo for group in fos.values() for fo in group], now),
        lambda view: view["order_id"],
    )
    fulfillments = by_order(Fulfillment)
    fulfillment_list = fulfillment_views([f for group in fulfillments.values() for f in group])
    fulfillment_by_order = _grouped(fulfillment_list, lambda view: view["order_id"])
    fulfilled = defaultdict(int)
    for view in fulfillment_list:
        for line in view["line_items"]:
            fulfilled[line["line_item_id"]] += line["quantity"]
    transactions = by_order(Transaction)
    returns = by_order(Return)
    return_list = return_views([r for group in returns.values() for r in group])
    returns_by_order = _grouped(return_list, lambda view: view["order_id"])
    expiring_days = settings.current().expiring_days
    views = []
    for order in orders:
        payment_status = payment_status_of(
            order.payment_state, order.auth_expires_at, order.payment_due_at, now
        )
        currency = order.currency
        views.append(
            {
                "id": order.id,
                "name": order.name,
                "external_id": order.external_id,
                "email": order.email,
                "currency": currency,
                "shipping_address": order.shipping_address,
                "created_at": order.created_at,
                "updated_at": order.updated_at,
                "cancelled_at": order.cancelled_at,
                "cancel_reason": order.cancel_reason,
                "order_status": order_status_of(order.archived, order.cancelled_at is not None),
                "payment_status": payment_status,
                "payment_markers": payment_markers_of(
                    payment_status, order.auth_expires_at, now, expiring_days
                ),
                "fulfillment_status": fulfillment_status_of(
                    order.fulfillment_state, order.scheduled_until, now
                ),
                "return_status": order.return_state,
                "needs_attention": order.needs_attention,
                "total_price": format_amount(order.total_minor, currency),
                "amount_authorized": format_amount(order.authorized_minor, currency),
                "amount_captured": format_amount(order.captured_minor, currency),
                "amount_refunded": format_amount(order.refunded_minor, currency),
                "payment_due_at": order.payment_due_at,
                "line_items": [
                    {
                        "id": line.id,
                        "sku": line.sku,
                        "title": line.title,
                        "quantity": line.quantity,
                        "price": format_amount(line.price_minor, currency),
                        "fulfillment_service": line.fulfillment_service,
                        "fulfilled_quantity": fulfilled[line.id],
                    }
                    for line in lines[order.id]
                ],
                "fulfillment_orders": fo_views[order.id],
                "fulfillments": fulfillment_by_order[order.id],
                "transactions": [transaction_view(tx, currency) for tx in transactions[order.id]],
                "returns": returns_by_order[order.id],
            }
        )
    return views


def order_view(order, now):
    """Return the client view of one order."""
    return order_views([order], now)[0]

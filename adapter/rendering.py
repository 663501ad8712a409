"""Read models: orders and their parts as clients see them, statuses computed for `now`."""

from collections import defaultdict, namedtuple
from dataclasses import dataclass, field
from operator import attrgetter

from peewee import JOIN, SQL

from . import outbox, selects, settings, store, transitions
from .models import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentOrder,
    FulfillmentOrderLine,
    LineItem,
    MerchantRequest,
    Order,
    OutboxMessage,
    Return,
    ReturnLine,
    ShipmentEvent,
    Transaction,
)
from .money import format_amount
from .selects import RowsByIds
from .statuses import (
    effective_fo_status,
    fulfilled_by_line,
    fulfillment_status_of,
    order_status_of,
    payment_facts_from,
    payment_markers_of,
    payment_status_of,
    returnable_of,
    returned_by_line,
)
from .times import rfc3339
from .vocabulary import FOStatus, ReturnState


def _grouped(rows, key):
    groups = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def fulfillment_order_views(fos, now):
    """Return the client view of each FO, with lines, supported actions and requests.

    Like every view here it is ready to serialize as JSON: exactly what the response schema
    would dump (times as RFC 3339 text, money as decimal strings); tests/test_rendering.py
    holds the two equal.
    """
    ids = [fo.id for fo in fos]
    if not ids:
        return []
    with store.snapshot():
        parts = _Parts(
            fo_lines=_grouped(_FO_LINES.rows(ids), _by_fo),
            merchant_requests=_grouped(_MERCHANT_REQUESTS.rows(ids), _by_fo),
        )
    return [_render_fo(fo, parts, now) for fo in _rows_of(_FORow, fos)]


def fulfillment_order_view(fo, now):
    """Return the client view of one FO."""
    return fulfillment_order_views([fo], now)[0]


def applied_reads(applied):
    """The reads of `applied_views`, as (RowsByIds, ids) pairs for `selects.together`."""
    fo, fulfillment = applied.fulfillment_order, applied.fulfillment
    shipped = [fulfillment.id] if fulfillment is not None else []
    return [
        (_FO_LINES, [fo.id]),
        (_CURRENT_REQUEST, [fo.id]),
        (_FULFILLMENT_LINES, shipped),
        (_LATEST_SHIPMENT_EVENT, shipped if applied.recorded_event else []),
    ]


def applied_views(applied, now):
    """Render what one webhook delivery changed (`service_events.Applied`), its size bounded
    whatever the history (SPEC 4.2).

    The FO carries only its current request (its latest), the fulfillment only the shipment
    event this delivery recorded, if any: the fulfillment's latest (the order's lock keeps
    any other from being written meanwhile). All is read in one statement on PostgreSQL, unless
    the delivery read it already, with the order's facts (`applied.rows`).
    """
    rows = applied.rows
    if rows is None:
        with store.snapshot():
            rows = selects.together(*applied_reads(applied))
    lines, requests, fulfillment_lines, events = rows
    parts = _Parts(
        fo_lines=_grouped(lines, _by_fo),
        merchant_requests=_grouped(requests, _by_fo),
        shipment_events=_grouped(events, _by_fulfillment),
        fulfillment_lines=_grouped(fulfillment_lines, _by_fulfillment),
    )
    views = {"fulfillment_order": _render_fo(_rows_of(_FORow, [applied.fulfillment_order])[0], parts, now)}
    if applied.fulfillment is not None:
        views["fulfillment"] = _render_fulfillment(
            _rows_of(_FulfillmentRow, [applied.fulfillment])[0], parts
        )
    return views


def fulfillment_views(fulfillments):
    """Return the client view of each fulfillment, with lines, tracking and events."""
    ids = [f.id for f in fulfillments]
    if not ids:
        return []
    with store.snapshot():
        parts = _Parts(
            fulfillment_lines=_grouped(_FULFILLMENT_LINES.rows(ids), _by_fulfillment),
            shipment_events=_grouped(_SHIPMENT_EVENTS.rows(ids), _by_fulfillment),
        )
    return [_render_fulfillment(f, parts) for f in _rows_of(_FulfillmentRow, fulfillments)]


def return_views(returns):
    """Return the client view of each return."""
    ids = [r.id for r in returns]
    if not ids:
        return []
    parts = _Parts(return_lines=_grouped(_RETURN_LINES.rows(ids), _by_return))
    return [_render_return(r, parts) for r in _rows_of(_ReturnRow, returns)]


def transaction_view(tx, currency):
    """Return the client view of a transaction."""
    return _render_transaction(_rows_of(_TransactionRow, [tx])[0], currency)


def order_views(orders, now):
    """Return the client view of each order as of one moment, ready to serialize as JSON.

    The views are exactly what `OrderOutSchema` would dump (times as RFC 3339 text, money as
    decimal strings), so the answer needs no schema pass; tests/test_rendering.py holds them
    equal. The related rows are read as plain tuples, one statement per table.
    """
    return _views_of_ids([order.id for order in orders], now)


def order_view_by_id(order_id, now):
    """Return the client view of the order `order_id`, or None if there is no such order."""
    views = _views_of_ids([order_id], now)
    return views[0] if views else None


def _views_of_ids(ids, now):
    if not ids:
        return []
    with store.snapshot():
        # Read the orders (again) inside the snapshot so their statuses match their parts.
        fresh = {row.id: row for row in _ORDERS.rows(ids)}
        return listed_order_views([fresh[i] for i in ids if i in fresh], now)


def listed_order_views(rows, now):
    """Return the views of orders read in the snapshot the caller holds (see `order_views`).

    `rows` carry the order's columns as attributes (model instances or named tuples).
    """
    rows = list(rows)
    if not rows:
        return []
    parts = _parts_of([row.id for row in rows])
    expiring_days = settings.current().expiring_days
    return [_render_order(row, parts, now, expiring_days) for row in rows]


def order_summaries(rows, now):
    """Return what a list of orders shows of each: the order's fields and statuses exactly as its
    view has them, and the services of its FOs (None: merchant-managed), read in one statement.

    `rows` are orders read in the snapshot the caller holds (as `listed_order_views` takes them).
    """
    rows = list(rows)
    if not rows:
        return []
    services = _grouped(_FO_SERVICES.rows([row.id for row in rows]), _by_order)
    expiring_days = settings.current().expiring_days
    return [
        {
            "id": row.id,
            "name": row.name,
            "email": row.email,
            "currency": row.currency,
            "shipping_address": row.shipping_address,
            "created_at": rfc3339(row.created_at),
            "total_price": format_amount(row.total_minor, row.currency),
            **_statuses(row, now, expiring_days),
            "services": [fo.service for fo in services.get(row.id, ())],
        }
        for row in rows
    ]


def order_view(order, now):
    """Return the client view of one order, ready to serialize as JSON (see `order_views`)."""
    return order_views([order], now)[0]


def new_order_view(order, written, now):
    """Render an order just imported from the rows its import wrote, without reading them back.

    `written` holds the model instances written: `line_items`, `fulfillment_orders`,
    `fo_lines` and `transactions`; a new order has no fulfillments, returns or requests yet.
    """
    items = {item.id: item for item in written.line_items}
    fo_lines = [
        _FOLineRow(line.id, line.fulfillment_order_id, line.line_item_id, line.quantity,
                   line.fulfilled_quantity, items[line.line_item_id].sku,
                   items[line.line_item_id].title)
        for line in written.fo_lines
    ]
    parts = _Parts(
        line_items=_grouped(_rows_of(_LineRow, written.line_items), _by_order),
        fulfillment_orders=_grouped(_rows_of(_FORow, written.fulfillment_orders), _by_order),
        fo_lines=_grouped(fo_lines, _by_fo),
        transactions=_grouped(_rows_of(_TransactionRow, written.transactions), _by_order),
    )
    row = _OrderRow._make(getattr(order, name) for name in _OrderRow._fields)
    return _render_order(row, parts, now, settings.current().expiring_days)


# ---- rows read as tuples and rendered as JSON-ready views ---------------------------------
# Each row type names columns of one table; the same names are the attributes of the model
# instances, so rows just written (`new_order_view`) render like rows read back: both hold
# the fields' Python values.

_OrderRow = namedtuple(
    "_OrderRow",
    "id name external_id email currency shipping_address created_at updated_at cancelled_at "
    "cancel_reason archived payment_state auth_expires_at payment_due_at fulfillment_state "
    "scheduled_until return_state needs_attention total_minor authorized_minor captured_minor "
    "refunded_minor",
)
_LineRow = namedtuple(
    "_LineRow", "id order_id sku title quantity price_minor fulfillment_service"
)
_FORow = namedtuple(
    "_FORow",
    "id order_id service workflow status request_status fulfill_at hold_reason hold_note "
    "needs_attention created_at updated_at",
)
_FOLineRow = namedtuple(
    "_FOLineRow", "id fulfillment_order_id line_item_id quantity fulfilled_quantity sku title"
)
_RequestRow = namedtuple(
    "_RequestRow",
    "id fulfillment_order_id kind message status sent_at answered_at answer_message "
    "delivery_status delivery_attempts delivery_status_code delivery_answer delivery_next_attempt_at",
)
_FulfillmentRow = namedtuple(
    "_FulfillmentRow",
    "id order_id fulfillment_order_id external_id created_by status shipment_status "
    "estimated_delivery_at created_at tracking_number tracking_company tracking_url",
)
_FulfillmentLineRow = namedtuple("_FulfillmentLineRow", "fulfillment_id line_item_id quantity")
_EventRow = namedtuple(
    "_EventRow", "fulfillment_id status happened_at message estimated_delivery_at location"
)
_TransactionRow = namedtuple(
    "_TransactionRow", "id order_id kind amount_minor expires_at return_id created_at"
)
_ReturnRow = namedtuple(
    "_ReturnRow", "id order_id status requested_by created_at updated_at"
)
_ReturnLineRow = namedtuple("_ReturnLineRow", "id return_id line_item_id quantity reason")

_by_order = attrgetter("order_id")
_by_fo = attrgetter("fulfillment_order_id")
_by_fulfillment = attrgetter("fulfillment_id")
_by_return = attrgetter("return_id")


@dataclass
class _Parts:
    """The related rows of some orders, each grouped by the id of the row they belong to."""

    line_items: dict = field(default_factory=dict)
    fulfillment_orders: dict = field(default_factory=dict)
    fo_lines: dict = field(default_factory=dict)
    transactions: dict = field(default_factory=dict)
    merchant_requests: dict = field(default_factory=dict)
    fulfillments: dict = field(default_factory=dict)
    fulfillment_lines: dict = field(default_factory=dict)
    shipment_events: dict = field(default_factory=dict)
    returns: dict = field(default_factory=dict)
    return_lines: dict = field(default_factory=dict)


_ORDERS = RowsByIds(_OrderRow, Order.id)
_LINE_ITEMS = RowsByIds(_LineRow, LineItem.order)
_FULFILLMENT_ORDERS = RowsByIds(_FORow, FulfillmentOrder.order)
_FO_LINES = RowsByIds(
    _FOLineRow,
    FulfillmentOrderLine.fulfillment_order,
    fields=[
        FulfillmentOrderLine.id,
        FulfillmentOrderLine.fulfillment_order,
        FulfillmentOrderLine.line_item,
        FulfillmentOrderLine.quantity,
        FulfillmentOrderLine.fulfilled_quantity,
        LineItem.sku,
        LineItem.title,
    ],
    join=LineItem,
)
# Each request with the message that carried it (`<kind>.submitted` to the FO's service), found
# through the outbox's (target, fulfillment_order_id, id) index: a few rows per FO.
_REQUEST_FIELDS = [
    *(MerchantRequest._meta.columns[name] for name in _RequestRow._fields[:8]),
    OutboxMessage.status,
    OutboxMessage.attempts,
    OutboxMessage.last_status_code,
    OutboxMessage.last_answer,
    OutboxMessage.next_attempt_at,
]
_REQUEST_JOINS = [
    (FulfillmentOrder, JOIN.INNER, FulfillmentOrder.id == MerchantRequest.fulfillment_order),
    (OutboxMessage, JOIN.LEFT_OUTER,
     (OutboxMessage.target == FulfillmentOrder.service)
     & (OutboxMessage.fulfillment_order_id == MerchantRequest.fulfillment_order)
     & (OutboxMessage.request_id == MerchantRequest.id)
     & (OutboxMessage.type == MerchantRequest.kind.concat(SQL("'.submitted'")))),
]
_MERCHANT_REQUESTS = RowsByIds(
    _RequestRow,
    MerchantRequest.fulfillment_order,
    fields=_REQUEST_FIELDS,
    join=_REQUEST_JOINS,
    order_by=(MerchantRequest.id,),
)
# One FO's current request (its latest, whatever its kind) and the message that carried it,
# found through the (fulfillment_order_id, id) and outbox `request_id` indexes: a few rows
# read however many requests the FO has had.
_CURRENT_REQUEST = RowsByIds(
    _RequestRow,
    MerchantRequest.fulfillment_order,
    fields=_REQUEST_FIELDS,
    join=_REQUEST_JOINS,
    latest=True,
)
_FO_SERVICES = RowsByIds(namedtuple("_FOServiceRow", "order_id service"), FulfillmentOrder.order)
_FULFILLMENTS = RowsByIds(_FulfillmentRow, Fulfillment.order)
_FULFILLMENT_LINES = RowsByIds(_FulfillmentLineRow, FulfillmentLine.fulfillment)
_SHIPMENT_EVENTS = RowsByIds(
    _EventRow, ShipmentEvent.fulfillment, order_by=(ShipmentEvent.happened_at, ShipmentEvent.id)
)
_LATEST_SHIPMENT_EVENT = RowsByIds(_EventRow, ShipmentEvent.fulfillment, latest=True)
_TRANSACTIONS = RowsByIds(_TransactionRow, Transaction.order)
_RETURNS = RowsByIds(_ReturnRow, Return.order)
_RETURN_LINES = RowsByIds(_ReturnLineRow, ReturnLine.return_)


def _rows_of(row_type, instances):
    return [row_type._make(getattr(obj, name) for name in row_type._fields) for obj in instances]


def _parts_of(ids):
    """Read the orders' parts: one statement per table, none for a table with nothing to find."""
    fos = _FULFILLMENT_ORDERS.rows(ids)
    fo_ids = [fo.id for fo in fos]
    fulfillments = _FULFILLMENTS.rows(ids)
    fulfillment_ids = [f.id for f in fulfillments]
    returns = _RETURNS.rows(ids)
    return _Parts(
        line_items=_grouped(_LINE_ITEMS.rows(ids), _by_order),
        fulfillment_orders=_grouped(fos, _by_order),
        fo_lines=_grouped(_FO_LINES.rows(fo_ids) if fo_ids else (), _by_fo),
        transactions=_grouped(_TRANSACTIONS.rows(ids), _by_order),
        merchant_requests=_grouped(_MERCHANT_REQUESTS.rows(fo_ids) if fo_ids else (), _by_fo),
        fulfillments=_grouped(fulfillments, _by_order),
        fulfillment_lines=_grouped(
            _FULFILLMENT_LINES.rows(fulfillment_ids) if fulfillment_ids else (), _by_fulfillment
        ),
        shipment_events=_grouped(
            _SHIPMENT_EVENTS.rows(fulfillment_ids) if fulfillment_ids else (), _by_fulfillment
        ),
        returns=_grouped(returns, _by_order),
        return_lines=_grouped(
            _RETURN_LINES.rows([r.id for r in returns]) if returns else (), _by_return
        ),
    )


def _statuses(order, now, expiring_days):
    """The order's statuses, from its own row alone (the order list shows them without its parts)."""
    payment_status = payment_status_of(
        order.payment_state, order.auth_expires_at, order.payment_due_at, now
    )
    return {
        "order_status": order_status_of(order.archived, order.cancelled_at is not None),
        "payment_status": payment_status,
        "payment_markers": payment_markers_of(payment_status, order.auth_expires_at, now, expiring_days),
        "fulfillment_status": fulfillment_status_of(
            order.fulfillment_state, order.scheduled_until, now
        ),
        "return_status": order.return_state,
        "needs_attention": order.needs_attention,
    }


def _render_order(order, parts, now, expiring_days):
    currency = order.currency
    fos = parts.fulfillment_orders.get(order.id, ())
    fulfilled = fulfilled_by_line(
        fo_line for fo in fos for fo_line in parts.fo_lines.get(fo.id, ())
    )
    returns = parts.returns.get(order.id, ())
    facts = transitions.OrderFacts(
        cancelled=order.cancelled_at is not None,
        archived=order.archived,
        payment=payment_facts_from(
            parts.transactions.get(order.id, ()), order.total_minor, order.payment_due_at
        ),
        locked_by=next((fo for fo in fos if fo.status == FOStatus.IN_PROGRESS), None),
        returnable=sum(returnable_of(fulfilled, returned_by_line(
            line for r in returns if r.status != ReturnState.DECLINED
            for line in parts.return_lines.get(r.id, ())
        )).values()),
    )
    return {
        "id": order.id,
        "name": order.name,
        "external_id": order.external_id,
        "email": order.email,
        "currency": currency,
        "shipping_address": order.shipping_address,
        "created_at": rfc3339(order.created_at),
        "updated_at": rfc3339(order.updated_at),
        "cancelled_at": rfc3339(order.cancelled_at),
        "cancel_reason": order.cancel_reason,
        **_statuses(order, now, expiring_days),
        "total_price": format_amount(order.total_minor, currency),
        "amount_authorized": format_amount(order.authorized_minor, currency),
        "amount_captured": format_amount(order.captured_minor, currency),
        "amount_refunded": format_amount(order.refunded_minor, currency),
        "payment_due_at": rfc3339(order.payment_due_at),
        "line_items": [
            {
                "id": line.id,
                "sku": line.sku,
                "title": line.title,
                "quantity": line.quantity,
                "price": format_amount(line.price_minor, currency),
                "fulfillment_service": line.fulfillment_service,
                "fulfilled_quantity": fulfilled.get(line.id, 0),
            }
            for line in parts.line_items.get(order.id, ())
        ],
        "fulfillment_orders": [_render_fo(fo, parts, now) for fo in fos],
        "fulfillments": [_render_fulfillment(f, parts) for f in parts.fulfillments.get(order.id, ())],
        "transactions": [
            _render_transaction(tx, currency) for tx in parts.transactions.get(order.id, ())
        ],
        "returns": [_render_return(r, parts) for r in returns],
        "supported_actions": transitions.supported_order_actions(facts, now),
        "locked_by_fulfillment_order_id": facts.locked_by.id if facts.locked_by else None,
    }


def _render_fo(fo, parts, now):
    lines = parts.fo_lines.get(fo.id, ())
    return {
        "id": fo.id,
        "order_id": fo.order_id,
        "service": fo.service,
        "workflow": fo.workflow,
        "status": effective_fo_status(fo.status, fo.fulfill_at, now),
        "request_status": fo.request_status,
        "fulfill_at": rfc3339(fo.fulfill_at),
        "hold": {"reason": fo.hold_reason, "note": fo.hold_note} if fo.hold_reason else None,
        "needs_attention": fo.needs_attention,
        "created_at": rfc3339(fo.created_at),
        "updated_at": rfc3339(fo.updated_at),
        "line_items": [
            {
                "id": line.id,
                "line_item_id": line.line_item_id,
                "sku": line.sku,
                "title": line.title,
                "quantity": line.quantity,
                "remaining_quantity": line.quantity - line.fulfilled_quantity,
            }
            for line in lines
        ],
        "supported_actions": transitions.supported_actions(
            fo, now, sum(line.quantity - line.fulfilled_quantity for line in lines)
        ),
        "merchant_requests": [
            {
                "id": request.id,
                "kind": request.kind,
                "message": request.message,
                "status": request.status,
                "sent_at": rfc3339(request.sent_at),
                "answered_at": rfc3339(request.answered_at),
                "answer_message": request.answer_message,
                "delivery": _render_delivery(request),
            }
            for request in parts.merchant_requests.get(fo.id, ())
        ],
    }


def _render_delivery(request):
    """The state of the message that carried a merchant request, or None if there is none."""
    if request.delivery_status is None:
        return None
    status = outbox.state_of(request.delivery_status)
    code = request.delivery_status_code
    return {
        "status": status,
        "attempts": request.delivery_attempts,
        "last_error": None if status == "delivered" else (
            request.delivery_answer or (f"HTTP {code}" if code else None)
        ),
        "next_attempt_at": rfc3339(request.delivery_next_attempt_at) if status == "pending" else None,
    }


def _render_fulfillment(f, parts):
    return {
        "id": f.id,
        "order_id": f.order_id,
        "fulfillment_order_id": f.fulfillment_order_id,
        "external_id": f.external_id,
        "created_by": f.created_by,
        "status": f.status,
        "shipment_status": f.shipment_status,
        "estimated_delivery_at": rfc3339(f.estimated_delivery_at),
        "created_at": rfc3339(f.created_at),
        "tracking": {
            "number": f.tracking_number,
            "company": f.tracking_company,
            "url": f.tracking_url,
        },
        "line_items": [
            {"line_item_id": line.line_item_id, "quantity": line.quantity}
            for line in parts.fulfillment_lines.get(f.id, ())
        ],
        "events": [
            {
                "status": event.status,
                "happened_at": rfc3339(event.happened_at),
                "message": event.message,
                "estimated_delivery_at": rfc3339(event.estimated_delivery_at),
                "location": event.location,
            }
            for event in parts.shipment_events.get(f.id, ())
        ],
    }


def _render_return(r, parts):
    return {
        "id": r.id,
        "order_id": r.order_id,
        "status": r.status,
        "requested_by": r.requested_by,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
        "line_items": [
            {
                "id": line.id,
                "line_item_id": line.line_item_id,
                "quantity": line.quantity,
                "reason": line.reason,
            }
            for line in parts.return_lines.get(r.id, ())
        ],
        "supported_actions": transitions.supported_return_actions(r.status),
    }


def _render_transaction(tx, currency):
    return {
        "id": tx.id,
        "order_id": tx.order_id,
        "kind": tx.kind,
        "amount": format_amount(tx.amount_minor, currency),
        "expires_at": rfc3339(tx.expires_at),
        "return_id": tx.return_id,
        "created_at": rfc3339(tx.created_at),
    }

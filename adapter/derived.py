"""Keep an order's derived columns equal to the pure status functions of its facts."""

from collections import namedtuple

from . import selects, settings, timeline
from .models import FulfillmentOrder, FulfillmentOrderLine, LineItem, Return, Transaction
from .selects import RowsByIds
from .statuses import (
    FulfillmentFacts,
    fulfilled_by_line,
    fulfillment_state_of,
    payment_facts_from,
    payment_state_of,
    return_status_of,
)
from .vocabulary import Actor, FulfillmentStatus, PaymentStatus, TimelineKind


def payment_facts_of(order):
    """Sum the order's transactions into PaymentFacts."""
    transactions = Transaction.select().where(Transaction.order == order.id).order_by(Transaction.id)
    return payment_facts_from(transactions, order.total_minor, order.payment_due_at)


_FOLine = namedtuple("_FOLine", "fulfillment_order_id line_item_id quantity fulfilled_quantity")
_FO_LINES = RowsByIds(
    _FOLine,
    FulfillmentOrder.order,
    fields=[
        FulfillmentOrderLine.fulfillment_order,
        FulfillmentOrderLine.line_item,
        FulfillmentOrderLine.quantity,
        FulfillmentOrderLine.fulfilled_quantity,
    ],
    join=FulfillmentOrderLine,
    order_by=(FulfillmentOrderLine.id,),
)
_LINES = RowsByIds(namedtuple("_Line", "id quantity"), LineItem.order)
_FOS = RowsByIds(namedtuple("_FO", "id status fulfill_at needs_attention"), FulfillmentOrder.order)


def fulfilled_of(order):
    """Return {line_item_id: fulfilled quantity} for the order."""
    return fulfilled_by_line(_FO_LINES.rows([order.id]))


def _fulfillment_reads(order):
    return (_FO_LINES, [order.id]), (_LINES, [order.id]), (_FOS, [order.id])


def _fulfillment_facts(fo_lines, lines, fos):
    """FulfillmentFacts of the rows of `_fulfillment_reads`; also whether any FO needs attention."""
    fulfilled = fulfilled_by_line(fo_lines)
    remaining_by_fo = {}
    for fo_line in fo_lines:
        fo_id = fo_line.fulfillment_order_id
        remaining_by_fo[fo_id] = (
            remaining_by_fo.get(fo_id, 0) + fo_line.quantity - fo_line.fulfilled_quantity
        )
    facts = FulfillmentFacts(
        lines=tuple((line.quantity, fulfilled.get(line.id, 0)) for line in lines),
        fulfillment_orders=tuple(
            (fo.status, fo.fulfill_at, remaining_by_fo.get(fo.id, 0)) for fo in fos
        ),
    )
    return facts, any(fo.needs_attention for fo in fos)


def fulfillment_facts_of(order):
    """Collect per-line and per-FO quantities into FulfillmentFacts; also whether any FO needs attention.

    The order's FO lines, lines and FOs are read in one statement on PostgreSQL.
    """
    return _fulfillment_facts(*selects.together(*_fulfillment_reads(order)))


PAYMENT, FULFILLMENT, RETURNS = "payment", "fulfillment", "returns"
EVERYTHING = frozenset({PAYMENT, FULFILLMENT, RETURNS})


def refresh(order, now, changed=EVERYTHING, touch=True, fulfillment_facts=None):
    """Recompute the derived columns of the facts that `changed`, save, archive if configured.

    `fulfillment_facts` are those of `fulfillment_facts_of(order)` when already read.

    `touch=False` keeps `updated_at`, for a change that nobody can see. Returns whether the
    order was paid before, so callers can react to an order that has just become paid.
    """
    was_paid = order.payment_state == PaymentStatus.PAID
    was_done = was_paid and order.fulfillment_state == FulfillmentStatus.FULFILLED
    if PAYMENT in changed:
        facts = payment_facts_of(order)
        order.authorized_minor = facts.authorized
        order.captured_minor = facts.captured
        order.refunded_minor = facts.refunded
        order.voided = facts.voided
        order.auth_expires_at = facts.auth_expires_at
        order.payment_state = payment_state_of(facts)
    if FULFILLMENT in changed:
        facts, needs_attention = fulfillment_facts or fulfillment_facts_of(order)
        order.fulfillment_state, order.scheduled_until = fulfillment_state_of(facts)
        order.needs_attention = needs_attention
    if RETURNS in changed:
        order.return_state = return_status_of(
            r.status for r in Return.select(Return.status).where(Return.order == order.id)
        )
    if touch:
        order.updated_at = now
    is_done = (
        order.payment_state == PaymentStatus.PAID
        and order.fulfillment_state == FulfillmentStatus.FULFILLED
    )
    if is_done and not was_done and not order.archived and settings.current().auto_archive:
        order.archived = True
        timeline.record(
            order,
            TimelineKind.ORDER_ARCHIVED,
            now,
            actor=Actor.SYSTEM,
            message="Archived automatically: the order is paid and fulfilled.",
        )
    order.save()
    return was_paid


def refresh_fulfillment_reading(order, now, reads):
    """Refresh the order's fulfillment facts, their read joined by `reads` ((RowsByIds, ids)
    pairs) in one statement on PostgreSQL; return the rows of `reads`, a list per read."""
    fo_lines, lines, fos, *rows = selects.together(*_fulfillment_reads(order), *reads)
    refresh(order, now, {FULFILLMENT}, fulfillment_facts=_fulfillment_facts(fo_lines, lines, fos))
    return rows

"""Keep an order's derived columns equal to the pure status functions of its facts."""

from . import settings, timeline
from .models import FulfillmentOrder, FulfillmentOrderLine, LineItem, Return, Transaction
from .statuses import (
    FulfillmentFacts,
    PaymentFacts,
    fulfillment_state_of,
    payment_state_of,
    return_status_of,
)


def payment_facts_of(order):
    """Sum the order's transactions into PaymentFacts."""
    authorized = captured = captures = refunded = voided = 0
    expiries = []
    for tx in Transaction.select().where(Transaction.order == order.id).order_by(Transaction.id):
        if tx.kind == "authorization":
            authorized += tx.amount_minor
            expiries.append(tx.expires_at)
        elif tx.kind in ("capture", "sale"):
            captured += tx.amount_minor
            if tx.kind == "capture":
                captures += tx.amount_minor
        elif tx.kind == "refund":
            refunded += tx.amount_minor
        elif tx.kind == "void":
            voided += tx.amount_minor
    # An authorization without an end date never expires, so neither does the set.
    auth_expires_at = max(expiries) if expiries and None not in expiries else None
    return PaymentFacts(
        total=order.total_minor,
        authorized=authorized - voided,
        captured=captured,
        refunded=refunded,
        voided=voided > 0,
        captures=captures,
        auth_expires_at=auth_expires_at,
        payment_due_at=order.payment_due_at,
    )


def fulfillment_facts_of(order):
    """Collect per-line and per-FO quantities into FulfillmentFacts; also whether any FO needs attention."""
    fulfilled_by_line = {}
    remaining_by_fo = {}
    query = (
        FulfillmentOrderLine.select(FulfillmentOrderLine, FulfillmentOrder.id)
        .join(FulfillmentOrder)
        .where(FulfillmentOrder.order == order.id)
    )
    for fo_line in query:
        line_id = fo_line.line_item_id
        fulfilled_by_line[line_id] = fulfilled_by_line.get(line_id, 0) + fo_line.fulfilled_quantity
        fo_id = fo_line.fulfillment_order_id
        remaining_by_fo[fo_id] = remaining_by_fo.get(fo_id, 0) + fo_line.remaining_quantity
    lines = tuple(
        (line.quantity, fulfilled_by_line.get(line.id, 0))
        for line in LineItem.select(LineItem.id, LineItem.quantity).where(LineItem.order == order.id)
    )
    fos = list(
        FulfillmentOrder.select(
            FulfillmentOrder.id,
            FulfillmentOrder.status,
            FulfillmentOrder.fulfill_at,
            FulfillmentOrder.needs_attention,
        ).where(FulfillmentOrder.order == order.id)
    )
    facts = FulfillmentFacts(
        lines=lines,
        fulfillment_orders=tuple(
            (fo.status, fo.fulfill_at, remaining_by_fo.get(fo.id, 0)) for fo in fos
        ),
    )
    return facts, any(fo.needs_attention for fo in fos)


PAYMENT, FULFILLMENT, RETURNS = "payment", "fulfillment", "returns"
EVERYTHING = frozenset({PAYMENT, FULFILLMENT, RETURNS})


def refresh(order, now, changed=EVERYTHING, touch=True):
    """Recompute the derived columns of the facts that `changed`, save, archive if configured.

    `touch=False` keeps `updated_at`, for a change that nobody can see. Returns whether the
    order was paid before, so callers can react to an order that has just become paid.
    """
    was_paid = order.payment_state == "paid"
    was_done = was_paid and order.fulfillment_state == "fulfilled"
    if PAYMENT in changed:
        facts = payment_facts_of(order)
        order.authorized_minor = facts.authorized
        order.captured_minor = facts.captured
        order.refunded_minor = facts.refunded
        order.voided = facts.voided
        order.auth_expires_at = facts.auth_expires_at
        order.payment_state = payment_state_of(facts)
    if FULFILLMENT in changed:
        facts, needs_attention = fulfillment_facts_of(order)
        order.fulfillment_state, order.scheduled_until = fulfillment_state_of(facts)
        order.needs_attention = needs_attention
    if RETURNS in changed:
        order.return_state = return_status_of(
            r.status for r in Return.select(Return.status).where(Return.order == order.id)
        )
    if touch:
        order.updated_at = now
    is_done = order.payment_state == "paid" and order.fulfillment_state == "fulfilled"
    if is_done and not was_done and not order.archived and settings.current().auto_archive:
        order.archived = True
        timeline.record(
            order,
            "order.archived",
            now,
            actor="system",
            message="Archived automatically: the order is paid and fulfilled.",
        )
    order.save()
    return was_paid

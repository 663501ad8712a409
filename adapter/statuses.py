"""Derived statuses (SPEC 2): pure functions of stored facts and `now`.

Each clock-dependent status is split in two: a `*_state_of` function that needs
no clock (stored on the order for indexing) and a `*_status_of` function that
finishes the job for a given `now`. Queries mirror the second half in SQL.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from .vocabulary import (
    FOStatus,
    FulfillmentStatus,
    OrderStatus,
    PaymentMarker,
    PaymentStatus,
    ReturnState,
    ReturnStatus,
    TransactionKind,
)

RETURN_STATUS_BY_RETURN = {
    ReturnState.REQUESTED: ReturnStatus.RETURN_REQUESTED,
    ReturnState.INSPECTION_COMPLETE: ReturnStatus.INSPECTION_COMPLETE,
    ReturnState.IN_PROGRESS: ReturnStatus.RETURN_IN_PROGRESS,
    ReturnState.RETURNED: ReturnStatus.RETURNED,
}


@dataclass(frozen=True)
class PaymentFacts:
    """What the transactions of an order add up to, in minor units.

    `authorized` is what was authorized and not voided; `captures` the part of it captured
    (sales are paid without an authorization, so `captured` may exceed it); `voided` tells
    whether any void was recorded.
    """

    total: int
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    voided: bool = False
    captures: int = 0
    auth_expires_at: datetime | None = None
    payment_due_at: datetime | None = None

    @property
    def uncaptured(self):
        """What is authorized, not voided and not yet captured."""
        return max(self.authorized - self.captures, 0)

    @property
    def outstanding(self):
        """What is not paid yet: what a sale may still take."""
        return max(self.total - self.captured, 0)

    @property
    def refundable(self):
        """What was paid and not yet refunded."""
        return self.captured - self.refunded

    def auth_expired(self, now):
        """Tell whether the authorization has passed its `expires_at`."""
        return self.auth_expires_at is not None and self.auth_expires_at <= now


def payment_facts_from(transactions, total, payment_due_at=None):
    """Sum transactions (each with `kind`, `amount_minor`, `expires_at`), oldest first, into PaymentFacts."""
    authorized = captured = captures = refunded = voided = 0
    expiries = []
    for tx in transactions:
        if tx.kind == TransactionKind.AUTHORIZATION:
            authorized += tx.amount_minor
            expiries.append(tx.expires_at)
        elif tx.kind in (TransactionKind.CAPTURE, TransactionKind.SALE):
            captured += tx.amount_minor
            if tx.kind == TransactionKind.CAPTURE:
                captures += tx.amount_minor
        elif tx.kind == TransactionKind.REFUND:
            refunded += tx.amount_minor
        elif tx.kind == TransactionKind.VOID:
            voided += tx.amount_minor
    # An authorization without an end date never expires, so neither does the set.
    auth_expires_at = max(expiries) if expiries and None not in expiries else None
    return PaymentFacts(
        total=total,
        authorized=authorized - voided,
        captured=captured,
        refunded=refunded,
        voided=voided > 0,
        captures=captures,
        auth_expires_at=auth_expires_at,
        payment_due_at=payment_due_at,
    )


def order_status_of(archived, cancelled):
    """Return `order_status`: `open` or `archived`, plus `cancelled`."""
    status = [OrderStatus.ARCHIVED if archived else OrderStatus.OPEN]
    if cancelled:
        status.append(OrderStatus.CANCELLED)
    return status


def payment_state_of(facts):
    """Return the payment status before the clock is consulted (SPEC 2.2 precedence).

    `voided` needs the whole authorization voided: a partial void leaves the rest authorized.
    """
    if facts.voided and facts.captured == 0 and facts.authorized == 0:
        return PaymentStatus.VOIDED
    if facts.captured > 0 and facts.refunded >= facts.captured:
        return PaymentStatus.REFUNDED
    if 0 < facts.refunded < facts.captured:
        return PaymentStatus.PARTIALLY_REFUNDED
    if facts.captured >= facts.total:
        return PaymentStatus.PAID
    if facts.captured > 0:
        return PaymentStatus.PARTIALLY_PAID
    if facts.authorized > 0:
        return PaymentStatus.AUTHORIZED
    return PaymentStatus.PENDING


def payment_status_of(state, auth_expires_at, payment_due_at, now):
    """Finish a payment state for `now`: authorizations expire, payment terms fall due."""
    if state == PaymentStatus.AUTHORIZED and auth_expires_at is not None and auth_expires_at <= now:
        return PaymentStatus.EXPIRED
    if state == PaymentStatus.PENDING and payment_due_at is not None and payment_due_at <= now:
        return PaymentStatus.OVERDUE
    return state


def payment_markers_of(status, auth_expires_at, now, expiring_days):
    """Return `payment_markers`: `expiring` when a valid authorization ends soon."""
    if (
        status == PaymentStatus.AUTHORIZED
        and auth_expires_at is not None
        and auth_expires_at <= now + timedelta(days=expiring_days)
    ):
        return [PaymentMarker.EXPIRING]
    return []


def effective_fo_status(status, fulfill_at, now):
    """Read a scheduled FO as `open` once its `fulfill_at` has passed."""
    if status == FOStatus.SCHEDULED and (fulfill_at is None or fulfill_at <= now):
        return FOStatus.OPEN
    return status


@dataclass(frozen=True)
class FulfillmentFacts:
    """Per line (ordered, fulfilled) and per FO (stored status, fulfill_at, remaining)."""

    lines: tuple  # of (quantity, fulfilled_quantity)
    fulfillment_orders: tuple  # of (status, fulfill_at, remaining_quantity)


def fulfillment_state_of(facts):
    """Return (state, scheduled_until): the SPEC 2.4 status with FOs read as stored.

    `scheduled_until` is the earliest `fulfill_at` among the scheduled FOs when the
    state is `scheduled`: from then on one of them reads as `open`.
    """
    if facts.lines and all(fulfilled >= quantity for quantity, fulfilled in facts.lines):
        return FulfillmentStatus.FULFILLED, None
    if any(fulfilled > 0 for _, fulfilled in facts.lines):
        return FulfillmentStatus.PARTIALLY_FULFILLED, None
    waiting = [(status, at) for status, at, remaining in facts.fulfillment_orders if remaining > 0]
    if waiting and all(status == FOStatus.ON_HOLD for status, _ in waiting):
        return FulfillmentStatus.ON_HOLD, None
    if waiting and all(status == FOStatus.SCHEDULED for status, _ in waiting):
        return FulfillmentStatus.SCHEDULED, min((at for _, at in waiting if at is not None), default=None)
    if any(status == FOStatus.IN_PROGRESS for status, _, _ in facts.fulfillment_orders):
        return FulfillmentStatus.IN_PROGRESS, None
    return FulfillmentStatus.UNFULFILLED, None


def fulfillment_status_of(state, scheduled_until, now):
    """Finish a fulfillment state for `now`: a schedule that has come reads as unfulfilled."""
    if state == FulfillmentStatus.SCHEDULED and (scheduled_until is None or scheduled_until <= now):
        return FulfillmentStatus.UNFULFILLED
    return state


def return_status_of(return_statuses):
    """Return the most important open task across returns, or None (SPEC 2.5)."""
    present = {RETURN_STATUS_BY_RETURN.get(status) for status in return_statuses}
    for status in ReturnStatus:
        if status in present:
            return status
    return None


def fulfilled_by_line(fo_lines):
    """Sum what FO lines (`line_item_id`, `fulfilled_quantity`) fulfilled, per order line."""
    fulfilled = {}
    for fo_line in fo_lines:
        line_id = fo_line.line_item_id
        fulfilled[line_id] = fulfilled.get(line_id, 0) + fo_line.fulfilled_quantity
    return fulfilled


def returned_by_line(return_lines):
    """Sum the quantities of return lines (`line_item_id`, `quantity`) per order line.

    Pass the lines of the returns that count: declined returns give nothing back.
    """
    returned = {}
    for line in return_lines:
        returned[line.line_item_id] = returned.get(line.line_item_id, 0) + line.quantity
    return returned


def returnable_of(fulfilled, returned):
    """Return {line_item_id: units fulfilled and not yet returned} for the lines with any."""
    available = {line_id: quantity - returned.get(line_id, 0) for line_id, quantity in fulfilled.items()}
    return {line_id: quantity for line_id, quantity in available.items() if quantity > 0}

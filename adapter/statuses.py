"""Derived statuses (SPEC 2): pure functions of stored facts and `now`.

Each clock-dependent status is split in two: a `*_state_of` function that needs
no clock (stored on the order for indexing) and a `*_status_of` function that
finishes the job for a given `now`. Queries mirror the second half in SQL.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

UNPAID = ("authorized", "pending", "overdue", "expired", "partially_paid")
FO_STATUSES = ("open", "scheduled", "on_hold", "in_progress", "incomplete", "closed", "cancelled")
REQUEST_STATUSES = (
    "unsubmitted",
    "submitted",
    "accepted",
    "rejected",
    "cancellation_requested",
    "cancellation_accepted",
    "cancellation_rejected",
    "closed",
)
RETURN_PRIORITY = ("return_requested", "inspection_complete", "return_in_progress", "returned")
RETURN_STATUS_BY_RETURN = {
    "requested": "return_requested",
    "inspection_complete": "inspection_complete",
    "in_progress": "return_in_progress",
    "returned": "returned",
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


def order_status_of(archived, cancelled):
    """Return `order_status`: `open` or `archived`, plus `cancelled`."""
    status = ["archived" if archived else "open"]
    if cancelled:
        status.append("cancelled")
    return status


def payment_state_of(facts):
    """Return the payment status before the clock is consulted (SPEC 2.2 precedence).

    `voided` needs the whole authorization voided: a partial void leaves the rest authorized.
    """
    if facts.voided and facts.captured == 0 and facts.authorized == 0:
        return "voided"
    if facts.captured > 0 and facts.refunded >= facts.captured:
        return "refunded"
    if 0 < facts.refunded < facts.captured:
        return "partially_refunded"
    if facts.captured >= facts.total:
        return "paid"
    if facts.captured > 0:
        return "partially_paid"
    if facts.authorized > 0:
        return "authorized"
    return "pending"


def payment_status_of(state, auth_expires_at, payment_due_at, now):
    """Finish a payment state for `now`: authorizations expire, payment terms fall due."""
    if state == "authorized" and auth_expires_at is not None and auth_expires_at <= now:
        return "expired"
    if state == "pending" and payment_due_at is not None and payment_due_at <= now:
        return "overdue"
    return state


def payment_markers_of(status, auth_expires_at, now, expiring_days):
    """Return `payment_markers`: `expiring` when a valid authorization ends soon."""
    if (
        status == "authorized"
        and auth_expires_at is not None
        and auth_expires_at <= now + timedelta(days=expiring_days)
    ):
        return ["expiring"]
    return []


def effective_fo_status(status, fulfill_at, now):
    """Read a scheduled FO as `open` once its `fulfill_at` has passed."""
    if status == "scheduled" and (fulfill_at is None or fulfill_at <= now):
        return "open"
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
        return "fulfilled", None
    if any(fulfilled > 0 for _, fulfilled in facts.lines):
        return "partially_fulfilled", None
    waiting = [(status, at) for status, at, remaining in facts.fulfillment_orders if remaining > 0]
    if waiting and all(status == "on_hold" for status, _ in waiting):
        return "on_hold", None
    if waiting and all(status == "scheduled" for status, _ in waiting):
        return "scheduled", min((at for _, at in waiting if at is not None), default=None)
    if any(status == "in_progress" for status, _, _ in facts.fulfillment_orders):
        return "in_progress", None
    return "unfulfilled", None


def fulfillment_status_of(state, scheduled_until, now):
    """Finish a fulfillment state for `now`: a schedule that has come reads as unfulfilled."""
    if state == "scheduled" and (scheduled_until is None or scheduled_until <= now):
        return "unfulfilled"
    return state


def return_status_of(return_statuses):
    """Return the most important open task across returns, or None (SPEC 2.5)."""
    present = {RETURN_STATUS_BY_RETURN.get(status) for status in return_statuses}
    for status in RETURN_PRIORITY:
        if status in present:
            return status
    return None

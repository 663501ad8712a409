"""The order's audit history: one event per state change, written in the change's transaction."""

from . import prepared
from .models import TimelineEvent


def record(order, kind, now, *, actor, fulfillment_order=None, message=None, data=None):
    """Append an event to the order's timeline."""
    prepared.insert(
        TimelineEvent,
        order=order,
        at=now,
        actor=actor,
        kind=kind,
        fulfillment_order_id=fulfillment_order.id if fulfillment_order is not None else None,
        message=message,
        data=data or {},
    )


def events_of(order_id):
    """Return the order's events, oldest first."""
    return list(
        TimelineEvent.select()
        .where(TimelineEvent.order == order_id)
        .order_by(TimelineEvent.at, TimelineEvent.id)
    )

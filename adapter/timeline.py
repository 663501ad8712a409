"""The order's audit history: one event per state change, written in the change's transaction.

A merchant event names the merchant token that acted (`actor_name`). The handlers say who is
acting once per request (`acting_as`), so the operations in between need not pass it along.
"""

import contextlib
import contextvars
from collections import namedtuple

from . import prepared, store
from .locks import locked_order
from .models import TimelineEvent
from .selects import RowsByIds
from .vocabulary import Actor, TimelineKind

_acting = contextvars.ContextVar("acting_merchant_name", default=None)


@contextlib.contextmanager
def acting_as(name):
    """Record merchant events written inside the block as done by the token named `name` (or none)."""
    token = _acting.set(name)
    try:
        yield
    finally:
        _acting.reset(token)


def begin_acting_as(name):
    """Start naming merchant events after `name` until `stop_acting(token)`; return the token."""
    return _acting.set(name)


def stop_acting(token):
    """Stop what `begin_acting_as` started."""
    _acting.reset(token)


def _event(order, kind, now, actor, fulfillment_order, message, data):
    return {
        "order": order,
        "at": now,
        "actor": actor,
        # Only the merchant's own events name the token: what a service, a customer or the
        # adapter did in the same request was not done by that person.
        "actor_name": _acting.get() if actor == Actor.MERCHANT else None,
        "kind": kind,
        "fulfillment_order_id": fulfillment_order.id if fulfillment_order is not None else None,
        "message": message,
        "data": data or {},
    }


def record(order, kind, now, *, actor, fulfillment_order=None, message=None, data=None):
    """Append an event to the order's timeline."""
    prepared.insert_later(
        TimelineEvent, **_event(order, kind, now, actor, fulfillment_order, message, data)
    )


def add_comment(order_id, message, now):
    """Add a staff comment to the order's timeline, in any state of the order; return the event."""
    with store.transaction():
        order = locked_order(order_id)
        event = _event(order, TimelineKind.COMMENT, now, Actor.MERCHANT, None, message, None)
        return TimelineEvent(id=prepared.insert_returning_id(TimelineEvent, **event), **event)


# A page reads hundreds of events: their SQL is built once and their rows converted in one pass.
EventRow = namedtuple(
    "EventRow", "id order_id at actor actor_name kind fulfillment_order_id message data"
)
_EVENTS = RowsByIds(EventRow, TimelineEvent.order, order_by=(TimelineEvent.at, TimelineEvent.id))


def events_of(order_id):
    """Return the order's events, oldest first, as `EventRow`s."""
    return _EVENTS.rows([order_id])

"""Listing orders: every filter of `GET /orders` as indexed conditions, keyset pagination.

A status filter value is an equality on a stored column that has an index on (column, id),
narrowed for some values by the clock or by cancellation; a filter is the OR of its values,
several filters the AND of theirs.

A page costs the same whatever the size of the store when it is read by walking a (column, id)
index newest first and stopping after `limit + 1` rows. So the most selective filter given
leads: each of its stored values is a walk, a branch of a UNION ALL merged by `ORDER BY id DESC
LIMIT n+1`, and the branches, disjoint, never list an order twice. (As one OR, SQLite would read
every match of every value and sort them all.) The other filters, `service` among them (an
EXISTS probe per order), are checked on the rows walked; SQLite, which keeps no statistics, is
kept from walking their indexes instead by a unary `+` on their columns. `expiring` is the
exception: a window of expiry times holds few orders however old the store, so they are read
from the (payment_state, auth_expires_at) index and sorted. So is a search (`q`): the orders
it names are found through the indexes of its keys (name, external_id, email and phone keys,
tracking number), few however large the store, and every filter is checked on them.
"""

from datetime import timedelta
from functools import reduce
from operator import add, and_, or_

from peewee import SQL, NodeList, fn

from . import search_keys, store
from .models import Fulfillment, FulfillmentOrder, Order
from .vocabulary import UNPAID, UNPAID_STATUSES, FulfillmentStatus, OrderStatus, PaymentMarker
from .vocabulary import PaymentStatus as P

# Filter values that read only the part of a stored value where a condition holds.
PAYMENT_PARTS = {
    P.EXPIRED: [(P.AUTHORIZED, "expired")],
    P.AUTHORIZED: [(P.AUTHORIZED, "unexpired")],
    PaymentMarker.EXPIRING: [(P.AUTHORIZED, "expiring")],
    P.OVERDUE: [(P.PENDING, "due")],
    P.PENDING: [(P.PENDING, "not_due")],
}
FULFILLMENT_PARTS = {
    FulfillmentStatus.SCHEDULED: [(FulfillmentStatus.SCHEDULED, "waiting")],
    FulfillmentStatus.UNFULFILLED: [
        (FulfillmentStatus.UNFULFILLED, None), (FulfillmentStatus.SCHEDULED, "come")
    ],
}
ORDER_STATUS_PARTS = {
    OrderStatus.OPEN: [(False, None)],
    OrderStatus.ARCHIVED: [(True, None)],
    OrderStatus.CANCELLED: [(False, "cancelled"), (True, "cancelled")],
}
# Parts that together make up the whole stored value.
WHOLE = {
    P.AUTHORIZED: {"expired", "unexpired"},
    P.PENDING: {"due", "not_due"},
    FulfillmentStatus.SCHEDULED: {"waiting", "come"},
}


def _unindexed(column):
    """`column` for a condition checked on the rows walked: on SQLite, `+column`, no index."""
    return column if store.is_postgres() else NodeList((SQL("+"), column), glue="")


def _part_conditions(now, expiring_days):
    expires = _unindexed(Order.auth_expires_at)
    due = _unindexed(Order.payment_due_at)
    until = _unindexed(Order.scheduled_until)
    window = Order.auth_expires_at  # indexed: see the module's docstring
    return {
        "expired": expires <= now,
        "unexpired": expires.is_null() | (expires > now),
        "expiring": (window > now) & (window <= now + timedelta(days=expiring_days)),
        "due": due <= now,
        "not_due": due.is_null() | (due > now),
        "waiting": until > now,
        "come": until.is_null() | (until <= now),
        "cancelled": _unindexed(Order.cancelled_at).is_null(False),
    }


def _state_filters(filters):
    """Each given filter but `service` as (column, [(stored value, part or None)]).

    Most selective first: returns and attention are rare, fulfillment and payment states
    have several values, `archived` two, and most orders do not need attention.
    """
    found = []
    if filters.get("return_status"):
        found.append((Order.return_state, [(value, None) for value in filters["return_status"]]))
    if filters.get("needs_attention"):
        found.append((Order.needs_attention, [(True, None)]))
    if filters.get("fulfillment_status"):
        found.append((Order.fulfillment_state, [
            part for value in filters["fulfillment_status"]
            for part in FULFILLMENT_PARTS.get(value, [(value, None)])
        ]))
    if filters.get("payment_status"):
        values = [v for value in filters["payment_status"]
                  for v in (UNPAID_STATUSES if value == UNPAID else [value])]
        found.append((Order.payment_state, [
            part for value in values for part in PAYMENT_PARTS.get(value, [(value, None)])
        ]))
    if filters.get("order_status"):
        found.append((Order.archived, [
            part for value in filters["order_status"] for part in ORDER_STATUS_PARTS[value]
        ]))
    if filters.get("needs_attention") is False:
        found.append((Order.needs_attention, [(False, None)]))
    return found


def _alternatives(column, parts, conditions):
    """One (condition, windowed) per stored value: `column = value`, narrowed unless all of it
    is wanted; windowed when the condition is the `expiring` window alone."""
    by_value = {}
    for value, part in parts:
        by_value.setdefault(value, set()).add(part)
    alternatives = []
    for value, names in by_value.items():
        alternative = column == value
        if None not in names and not (value in WHOLE and WHOLE[value] <= names):
            alternative &= reduce(or_, (conditions[name] for name in sorted(names)))
        alternatives.append((alternative, names == {"expiring"}))
    return alternatives


def _with_service(services):
    """An order with an FO of one of `services`: one probe per order walked, stopping early."""
    return fn.EXISTS(
        FulfillmentOrder.select(FulfillmentOrder.id).where(
            (FulfillmentOrder.order == Order.id) & FulfillmentOrder.service.in_(services)
        )
    )


def _found_by(text):
    """The orders `q` names, each term an index lookup (one OR: an order may match twice)."""
    text = text.strip()
    names = [text, f"#{text}"] if text.isdigit() else [text]
    found = Order.name.in_(names) | (Order.external_id == text) | Order.id.in_(
        # Carriers print tracking numbers in capitals; people type them in any case.
        Fulfillment.select(Fulfillment.order).where(
            Fulfillment.tracking_number.in_(list(dict.fromkeys([text, text.upper()])))
        )
    )
    if email := search_keys.email_key(text):
        found |= Order.email_key == email
    if phone := search_keys.phone_key(text):
        found |= Order.phone_key == phone
    return found


def list_query(filters, limit, after_id, now, expiring_days):
    """Return the query `list_orders` runs: up to `limit + 1` orders, newest first."""
    conditions = _part_conditions(now, expiring_days)
    state_filters = _state_filters(filters)
    others = []
    if filters.get("q"):
        # A search names few orders: read them all (a window, see the docstring), check the rest.
        branches, others = [(_found_by(filters["q"]), True)], state_filters
    elif state_filters:
        column, parts = state_filters[0]
        branches, others = _alternatives(column, parts, conditions), state_filters[1:]
    else:
        branches = [(None, False)]
    checked = [
        reduce(or_, (alternative for alternative, _ in
                     _alternatives(_unindexed(column), parts, conditions)))
        for column, parts in others
    ]
    if filters.get("service"):
        checked.append(_with_service(filters["service"]))

    def walk(branch, windowed):
        where = checked if branch is None else [branch, *checked]
        if after_id is not None:
            # The window is read whole, not from the cursor down the (payment_state, id) index.
            where = [*where, (_unindexed(Order.id) if windowed else Order.id) < after_id]
        query = Order.select().where(reduce(and_, where)) if where else Order.select()
        # SQLite merges the walks in order as they go and reads no row it does not return;
        # PostgreSQL merges them in order (Merge Append) only when each has its own LIMIT.
        return query.order_by(Order.id.desc()).limit(limit + 1) if store.is_postgres() else query

    query = reduce(add, [walk(branch, windowed) for branch, windowed in branches])
    return query.order_by(Order.id.desc()).limit(limit + 1)


def list_orders(filters, limit, after_id, now, expiring_days):
    """Return up to `limit` orders, newest first, after `after_id`, and whether more follow.

    The orders are named tuples of their columns: a page is read to be rendered, not changed.
    """
    orders = list(list_query(filters, limit, after_id, now, expiring_days).namedtuples())
    return orders[:limit], len(orders) > limit

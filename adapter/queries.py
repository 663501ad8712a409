"""Listing orders: every filter of `GET /orders` as indexed conditions, keyset pagination."""

from datetime import timedelta
from functools import reduce
from operator import or_

from .models import FulfillmentOrder, Order
from .statuses import UNPAID


def _any_of(conditions):
    return reduce(or_, conditions)


def _payment_condition(value, now, expiring_days):
    state, expires, due = Order.payment_state, Order.auth_expires_at, Order.payment_due_at
    if value == "expired":
        return (state == "authorized") & (expires <= now)
    if value == "authorized":
        return (state == "authorized") & (expires.is_null() | (expires > now))
    if value == "expiring":
        soon = now + timedelta(days=expiring_days)
        return (state == "authorized") & (expires > now) & (expires <= soon)
    if value == "overdue":
        return (state == "pending") & (due <= now)
    if value == "pending":
        return (state == "pending") & (due.is_null() | (due > now))
    return state == value


def _fulfillment_condition(value, now):
    state, until = Order.fulfillment_state, Order.scheduled_until
    if value == "scheduled":
        return (state == "scheduled") & (until > now)
    if value == "unfulfilled":
        return (state == "unfulfilled") | ((state == "scheduled") & (until.is_null() | (until <= now)))
    return state == value


ORDER_STATUS_CONDITIONS = {
    "open": lambda: Order.archived == False,  # noqa: E712 - peewee builds SQL from ==
    "archived": lambda: Order.archived == True,  # noqa: E712
    "cancelled": lambda: Order.cancelled_at.is_null(False),
}


def list_orders(filters, limit, after_id, now, expiring_days):
    """Return up to `limit` orders, newest first, after `after_id`, and whether more follow."""
    query = Order.select()
    conditions = []
    if filters.get("order_status"):
        conditions.append(_any_of(ORDER_STATUS_CONDITIONS[v]() for v in filters["order_status"]))
    if filters.get("payment_status"):
        values = []
        for value in filters["payment_status"]:
            values.extend(UNPAID if value == "unpaid" else [value])
        conditions.append(_any_of(_payment_condition(v, now, expiring_days) for v in values))
    if filters.get("fulfillment_status"):
        conditions.append(
            _any_of(_fulfillment_condition(v, now) for v in filters["fulfillment_status"])
        )
    if filters.get("return_status"):
        conditions.append(Order.return_state.in_(filters["return_status"]))
    if filters.get("needs_attention") is not None:
        conditions.append(Order.needs_attention == filters["needs_attention"])
    if filters.get("service"):
        conditions.append(
            Order.id.in_(
                FulfillmentOrder.select(FulfillmentOrder.order).where(
                    FulfillmentOrder.service.in_(filters["service"])
                )
            )
        )
    if after_id is not None:
        conditions.append(Order.id < after_id)
    if conditions:
        query = query.where(reduce(lambda a, b: a & b, conditions))
    orders = list(query.order_by(Order.id.desc()).limit(limit + 1))
    return orders[:limit], len(orders) > limit

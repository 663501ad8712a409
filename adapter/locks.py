"""Row locks, and the order action table's refusals every order operation checks first."""

from . import prepared, store, transitions
from .errors import NotFound
from .models import FulfillmentOrder, FulfillmentOrderLine, Order
from .vocabulary import FOStatus


def get_order(order_id):
    """Return the order or raise NotFound."""
    order = Order.get_or_none(Order.id == order_id)
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.")
    return order


def locked_order(order_id):
    """Return the order locked until the transaction ends, or raise NotFound.

    Every operation on an order or its parts takes this lock first, so two
    operations on one order run one after the other. On SQLite the write lock
    taken by BEGIN IMMEDIATE already serialises them.
    """
    query = Order.select().where(Order.id == order_id)
    if store.is_postgres():
        query = query.for_update()
    order = query.get_or_none()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.")
    return order


def locked_row(model, missing, beside=None, children=None, **equals):
    """Lock the order of the row whose fields equal `equals`; return (order, row) or raise NotFound.

    `beside=(other, link)` also returns the `other` row the row links to through `link`, and
    `children=(child, link)` the list of `child` rows linking to the row. The rows are read
    under the lock: a read before it could predate a concurrent change.
    """
    found = prepared.locked_with_parent(Order, model, "order", beside, children, **equals)
    if None in found:
        raise NotFound(missing)
    return found


def locked_fulfillment_order(fo_id, service=None, with_lines=False):
    """Lock the FO's order and return (order, FO); with `service`, another service's FO is unknown.

    `with_lines` also returns the FO's lines, read with it (one round trip on PostgreSQL).
    """
    children = (FulfillmentOrderLine, "fulfillment_order") if with_lines else None
    if service is None:
        return locked_row(
            FulfillmentOrder, f"Fulfillment order {fo_id} does not exist.", children=children, id=fo_id
        )
    return locked_row(
        FulfillmentOrder,
        f"Fulfillment order {fo_id} does not exist for service {service}.",
        children=children,
        id=fo_id,
        service=service,
    )


def in_progress_fulfillment_order(order):
    """Return the order's first FO whose request is in progress with its service, or None."""
    return (
        FulfillmentOrder.select()
        .where(
            (FulfillmentOrder.order == order.id) & (FulfillmentOrder.status == FOStatus.IN_PROGRESS)
        )
        .order_by(FulfillmentOrder.id)
        .first()
    )


def check_order_action(order, action):
    """Raise the 409 of the order action table (cancelled, or locked by an FO) unless `action` may run."""
    rule = transitions.ORDER_ACTIONS[action]
    busy = in_progress_fulfillment_order(order) if rule.locks else None
    refusal = transitions.order_refusal(action, order.cancelled_at is not None, busy)
    if refusal is not None:
        raise refusal

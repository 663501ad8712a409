"""Row locks and the rules every operation checks before changing an order."""

from . import store
from .errors import NotFound, OrderLocked
from .models import FulfillmentOrder, Order


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


def locked_row(model, condition, missing):
    """Lock the order a row belongs to and return (order, row), or raise NotFound(missing)."""
    row = model.get_or_none(condition)
    if row is None:
        raise NotFound(missing)
    order = locked_order(row.order_id)
    if store.is_postgres():
        # Read again under the lock: the first read may predate a concurrent change.
        # (On SQLite the transaction has held the write lock since BEGIN IMMEDIATE.)
        row = model.get_by_id(row.id)
    return order, row


def locked_fulfillment_order(fo_id, service=None):
    """Lock the FO's order and return (order, FO); with `service`, another service's FO is unknown."""
    if service is None:
        return locked_row(
            FulfillmentOrder, FulfillmentOrder.id == fo_id, f"Fulfillment order {fo_id} does not exist."
        )
    return locked_row(
        FulfillmentOrder,
        (FulfillmentOrder.id == fo_id) & (FulfillmentOrder.service == service),
        f"Fulfillment order {fo_id} does not exist for service {service}.",
    )


def ensure_not_in_progress(order, doing):
    """Raise OrderLocked naming the FO while any FO of the order is with a service."""
    busy = (
        FulfillmentOrder.select()
        .where((FulfillmentOrder.order == order.id) & (FulfillmentOrder.status == "in_progress"))
        .order_by(FulfillmentOrder.id)
        .first()
    )
    if busy is not None:
        raise OrderLocked(
            f"Cannot {doing} while fulfillment order {busy.id} is in progress with "
            f"{busy.service}; withdraw or cancel its request first.",
            fulfillment_order_id=busy.id,
        )

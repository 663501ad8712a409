"""Order intake, edits, cancellation and archiving."""

from dataclasses import dataclass, field

import peewee

from . import derived, payments, settings, shipments, store, timeline, transitions
from .errors import ValidationFailed
from .fulfillment_orders import fulfillment_order_row, new_fulfillment_order
from .locks import check_order_action, locked_order
from .models import FulfillmentOrder, FulfillmentOrderLine, LineItem, Order
from .money import checked_total, parse_amount
from .statuses import FulfillmentFacts, PaymentFacts, fulfillment_state_of, payment_state_of
from .times import rfc3339, to_naive_utc
from .vocabulary import Actor, FOStatus, OrderAction, RequestStatus, TimelineKind


def _check_services(lines, field):
    errors = {}
    for index, line in enumerate(lines):
        key = line.get("fulfillment_service")
        if key is not None and settings.service(key) is None:
            errors[f"{field}.{index}.fulfillment_service"] = [f"Unknown fulfillment service {key!r}."]
    if errors:
        raise ValidationFailed(errors)


def _prices(lines, currency, field):
    errors, prices = {}, []
    for index, line in enumerate(lines):
        try:
            prices.append(parse_amount(line["price"], currency))
        except ValueError as exc:
            errors[f"{field}.{index}.price"] = [str(exc)]
    if errors:
        raise ValidationFailed(errors)
    checked_total(
        ((f"{field}.{index}.quantity", price, line["quantity"]) for index, (price, line)
         in enumerate(zip(prices, lines, strict=True))),
        currency,
    )
    return prices


@dataclass(frozen=True)
class Written:
    """The rows an import wrote, as model instances: enough to render the new order."""

    line_items: list
    fulfillment_orders: list
    fo_lines: list
    transactions: list = field(default_factory=list)


@dataclass(frozen=True)
class Imported:
    """What `import_order` did: the order, whether it is new, and the rows it wrote.

    `written` is None when the answer has to be read from the store: the order was known
    already, or auto-fulfillment changed its FOs after they were written.
    """

    order: Order
    created: bool
    written: Written | None = None


def import_order(payload, now):
    """Import an order; return what was done as `Imported`. A known `external_id` returns the stored order."""
    external_id = payload.get("external_id")
    if external_id is not None:
        existing = Order.get_or_none(Order.external_id == external_id)
        if existing is not None:
            return Imported(existing, created=False)
    currency = payload["currency"]
    lines = payload["line_items"]
    _check_services(lines, "line_items")
    prices = _prices(lines, currency, "line_items")
    fulfill_at = to_naive_utc(payload.get("fulfill_at"))
    hold = payload.get("hold")
    if hold and fulfill_at and fulfill_at > now:
        raise ValidationFailed({"hold": ["An order scheduled for later cannot also be on hold."]})
    transactions = payload.get("transactions") or []
    try:
        with store.transaction():
            order, written = _insert_order(payload, lines, prices, fulfill_at, hold, now)
            for index, tx in enumerate(transactions):
                written.transactions.append(
                    payments.apply_transaction(order, tx, now, field=f"transactions.{index}")
                )
            timeline.record(
                order,
                TimelineKind.ORDER_CREATED,
                now,
                actor=Actor.MERCHANT,
                message=hold.get("note") if hold else None,
                data={
                    "line_items": len(lines),
                    "fulfillment_orders": [fo.id for fo in written.fulfillment_orders],
                    "hold": hold,
                    "fulfill_at": rfc3339(payload.get("fulfill_at")),
                    "transactions": len(transactions),
                },
            )
            if transactions:
                derived.refresh(order, now, {derived.PAYMENT})
            elif order.dirty_fields:
                order.save()
            if payments.after_payment_change(order, was_paid=False, now=now):
                written = None
    except peewee.IntegrityError:
        # Another request imported the same external_id a moment earlier.
        existing = Order.get_or_none(Order.external_id == external_id) if external_id else None
        if existing is None:
            raise
        return Imported(existing, created=False)
    return Imported(order, created=True, written=written)


def _insert_order(payload, lines, prices, fulfill_at, hold, now):
    """Write the order, its FOs, lines and FO lines: one INSERT per table.

    The derived columns are computed from the input (nothing is fulfilled, returned or
    flagged yet; the payment columns are refreshed afterwards if transactions came along).
    """
    if hold:
        status = FOStatus.ON_HOLD
    elif fulfill_at and fulfill_at > now:
        status = FOStatus.SCHEDULED
    else:
        status = FOStatus.OPEN
    services = list(dict.fromkeys(line.get("fulfillment_service") for line in lines))
    remaining = {service: 0 for service in services}
    for line in lines:
        remaining[line.get("fulfillment_service")] += line["quantity"]
    total = sum(price * line["quantity"] for price, line in zip(prices, lines, strict=True))
    fulfillment_state, scheduled_until = fulfillment_state_of(
        FulfillmentFacts(
            lines=tuple((line["quantity"], 0) for line in lines),
            fulfillment_orders=tuple((status, fulfill_at, remaining[s]) for s in services),
        )
    )
    order = Order.create(
        name=payload.get("name") or "#",
        external_id=payload.get("external_id"),
        email=payload.get("email"),
        currency=payload["currency"],
        shipping_address=payload.get("shipping_address"),
        payment_due_at=to_naive_utc(payload.get("payment_due_at")),
        created_at=now,
        updated_at=now,
        total_minor=total,
        payment_state=payment_state_of(PaymentFacts(total=total)),
        fulfillment_state=fulfillment_state,
        scheduled_until=scheduled_until,
    )
    if not payload.get("name"):
        order.name = f"#{1000 + order.id}"
    fos = _insert_all(
        FulfillmentOrder, [fulfillment_order_row(order, s, now, status, fulfill_at, hold) for s in services]
    )
    fo_of = dict(zip(services, fos, strict=True))
    items = _insert_all(
        LineItem, [_line_row(order, line, price) for price, line in zip(prices, lines, strict=True)]
    )
    fo_lines = _insert_all(
        FulfillmentOrderLine,
        [
            {
                "fulfillment_order": fo_of[line.get("fulfillment_service")].id,
                "line_item": item.id,
                "quantity": line["quantity"],
            }
            for item, line in zip(items, lines, strict=True)
        ],
    )
    return order, Written(line_items=items, fulfillment_orders=fos, fo_lines=fo_lines)


def _insert_all(model, rows):
    """INSERT `rows` (field values) in one statement; return them as instances with their ids."""
    returned = model.insert_many(rows).returning(model.id).tuples().execute()
    # One statement numbers its rows in the order of its VALUES on both stores.
    ids = sorted(row_id for (row_id,) in returned)
    return [model(id=row_id, **row) for row_id, row in zip(ids, rows, strict=True)]


def _line_row(order, line, price):
    return {
        "order": order.id,
        "sku": line.get("sku"),
        "title": line["title"],
        "quantity": line["quantity"],
        "price_minor": price,
        "fulfillment_service": line.get("fulfillment_service"),
    }


def _create_line(order, line, price):
    return LineItem.create(**_line_row(order, line, price))


def _open_unsubmitted_fo(order, service, now):
    # A scheduled FO whose `fulfill_at` has passed reads as open, so it is one.
    opened = (FulfillmentOrder.status == FOStatus.OPEN) | (
        (FulfillmentOrder.status == FOStatus.SCHEDULED)
        & (FulfillmentOrder.fulfill_at.is_null() | (FulfillmentOrder.fulfill_at <= now))
    )
    fo = (
        FulfillmentOrder.select()
        .where(
            (FulfillmentOrder.order == order.id)
            & (FulfillmentOrder.service.is_null() if service is None else
               FulfillmentOrder.service == service)
            & opened
            & (FulfillmentOrder.request_status == RequestStatus.UNSUBMITTED)
        )
        .order_by(FulfillmentOrder.id)
        .first()
    )
    return fo or new_fulfillment_order(order, service, now)


def _add_quantity(order, item, quantity, now):
    fo = _open_unsubmitted_fo(order, item.fulfillment_service, now)
    fo_line = FulfillmentOrderLine.get_or_none(
        (FulfillmentOrderLine.fulfillment_order == fo) & (FulfillmentOrderLine.line_item == item)
    )
    if fo_line is None:
        FulfillmentOrderLine.create(fulfillment_order=fo, line_item=item, quantity=quantity)
    else:
        fo_line.quantity += quantity
        fo_line.save()


# The FOs whose quantities an edit may change: those not with a service, not done.
EDITABLE = (FOStatus.OPEN, FOStatus.SCHEDULED, FOStatus.ON_HOLD, FOStatus.INCOMPLETE)


def _remove_quantity(item, quantity, now):
    """Take unfulfilled quantity off the FOs that are not with a service."""
    fo_lines = (
        FulfillmentOrderLine.select(FulfillmentOrderLine, FulfillmentOrder)
        .join(FulfillmentOrder)
        .where((FulfillmentOrderLine.line_item == item) & FulfillmentOrder.status.in_(EDITABLE))
        .order_by(FulfillmentOrderLine.id.desc())
    )
    for fo_line in fo_lines:
        if quantity == 0:
            break
        taken = min(quantity, fo_line.remaining_quantity)
        fo_line.quantity -= taken
        quantity -= taken
        if fo_line.quantity == 0:
            fo_line.delete_instance()
        else:
            fo_line.save()
        # Nothing left to ship here: the FO is done, as if its last unit had shipped.
        fo = fo_line.fulfillment_order
        transitions.finish_if_done(fo, shipments.remaining_of(fo), now)


def edit_order(order_id, changes, now):
    """Edit contact details, line quantities and add lines; return the order.

    An edit that changes nothing records nothing and leaves `updated_at` as it was.
    """
    with store.transaction():
        order = locked_order(order_id)
        check_order_action(order, OrderAction.EDIT)
        record = {}
        for key in ("email", "shipping_address"):
            if key in changes and changes[key] != getattr(order, key):
                setattr(order, key, changes[key])
                record[key] = changes[key]
        _edit_quantities(
            order, changes.get("line_items") or [], bool(changes.get("add_line_items")), now, record
        )
        _add_lines(order, changes.get("add_line_items") or [], now, record)
        if not record:
            return order
        order.total_minor = checked_total(_priced_lines(order, changes, record), order.currency)
        timeline.record(order, TimelineKind.ORDER_EDITED, now, actor=Actor.MERCHANT, data=record)
        derived.refresh(order, now)
    return order


def _priced_lines(order, changes, record):
    """Yield `(field, price, quantity)` of the order's lines, naming those this edit grew or added."""
    grown = {int(key) for key, (old, new) in record.get("quantities", {}).items() if new > old}
    named = {
        edit["id"]: f"line_items.{index}.quantity"
        for index, edit in enumerate(changes.get("line_items") or [])
        if edit["id"] in grown
    }
    for index, item_id in enumerate(record.get("added_line_items", [])):
        named[item_id] = f"add_line_items.{index}.quantity"
    for line in LineItem.select().where(LineItem.order == order.id):
        yield named.get(line.id), line.price_minor, line.quantity


def _edit_quantities(order, edits, adding, now, record):
    items = {item.id: item for item in LineItem.select().where(LineItem.order == order.id)}
    fulfilled = derived.fulfilled_of(order)
    errors = {}
    seen = set()
    for index, edit in enumerate(edits):
        item = items.get(edit["id"])
        if item is None:
            errors[f"line_items.{index}.id"] = ["No such line item on this order."]
        elif item.id in seen:
            errors[f"line_items.{index}.id"] = ["Line item listed twice."]
        elif edit["quantity"] < fulfilled.get(item.id, 0):
            errors[f"line_items.{index}.quantity"] = [
                f"Must be at least {fulfilled[item.id]}, the quantity already fulfilled."
            ]
        seen.add(edit["id"])
    if errors:
        raise ValidationFailed(errors)
    quantities = {item.id: item.quantity for item in items.values()}
    quantities.update({edit["id"]: edit["quantity"] for edit in edits})
    if edits and not adding and not any(quantity >= 1 for quantity in quantities.values()):
        raise ValidationFailed({"line_items": [
            "An order keeps at least one line with a quantity of 1 or more; "
            "cancel the order instead."
        ]})
    for edit in edits:
        item = items[edit["id"]]
        delta = edit["quantity"] - item.quantity
        if delta > 0:
            _add_quantity(order, item, delta, now)
        elif delta < 0:
            _remove_quantity(item, -delta, now)
        if delta:
            record.setdefault("quantities", {})[str(item.id)] = [item.quantity, edit["quantity"]]
            item.quantity = edit["quantity"]
            item.save()


def _add_lines(order, lines, now, record):
    if not lines:
        return
    _check_services(lines, "add_line_items")
    prices = _prices(lines, order.currency, "add_line_items")
    added = []
    for price, line in zip(prices, lines, strict=True):
        item = _create_line(order, line, price)
        _add_quantity(order, item, line["quantity"], now)
        added.append(item.id)
    record["added_line_items"] = added


def cancel_order(order_id, reason, refund, now):
    """Cancel: void an open authorization, refund if asked, cancel what remains to ship."""
    with store.transaction():
        order = locked_order(order_id)
        check_order_action(order, OrderAction.CANCEL)
        money = payments.settle_for_cancel(order, refund, now)
        cancelled = []
        for fo in FulfillmentOrder.select().where(FulfillmentOrder.order == order.id):
            remaining = sum(line.remaining_quantity for line in fo.lines)
            if remaining > 0 and transitions.is_allowed(fo, "cancel_with_order", now):
                transitions.perform(fo, "cancel_with_order", now)
                cancelled.append(fo.id)
        order.cancelled_at = now
        order.cancel_reason = reason
        timeline.record(
            order,
            TimelineKind.ORDER_CANCELLED,
            now,
            actor=Actor.MERCHANT,
            message=reason,
            data={"fulfillment_orders_cancelled": cancelled, **money},
        )
        derived.refresh(order, now)
    return order


def set_archived(order_id, archived, now):
    """Archive or unarchive; doing it twice changes nothing and records nothing."""
    with store.transaction():
        order = locked_order(order_id)
        if order.archived != archived:
            order.archived = archived
            kind = TimelineKind.ORDER_ARCHIVED if archived else TimelineKind.ORDER_UNARCHIVED
            timeline.record(order, kind, now, actor=Actor.MERCHANT)
            derived.refresh(order, now, changed=())
    return order

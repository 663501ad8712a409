"""Shipments: fulfillments with their lines, tracking and delivery events, and the customer's notice."""

from . import outbox, prepared, settings
from .errors import OverFulfillment, ValidationFailed
from .models import Fulfillment, FulfillmentLine, FulfillmentOrderLine, ShipmentEvent
from .vocabulary import MessageType, ShipmentStatus

# Later statuses win over earlier ones reported at the same instant: the enum's order.
RANK = {status: rank for rank, status in enumerate(ShipmentStatus)}


def lines_of(fo):
    """Return the FO's lines, in order."""
    return list(
        FulfillmentOrderLine.select()
        .where(FulfillmentOrderLine.fulfillment_order == fo.id)
        .order_by(FulfillmentOrderLine.id)
    )


def select_lines(fo, requested, *, over_is_conflict, lines=None):
    """Turn `[{id, quantity}]` (FO line ids) into [(fo_line, quantity)]; None means all remaining.

    `lines` are the FO's lines when already read. Asking for more than remains is an
    over-fulfillment (409) for shipments and a validation error (422) for requests.
    """
    lines = {line.id: line for line in (lines_of(fo) if lines is None else lines)}
    if requested is None:
        return [(line, line.remaining_quantity) for line in lines.values() if line.remaining_quantity]
    errors, chosen, seen = {}, [], set()
    for index, item in enumerate(requested):
        line = lines.get(item["id"])
        if line is None:
            errors[f"line_items.{index}.id"] = [f"No line {item['id']} on fulfillment order {fo.id}."]
        elif line.id in seen:
            errors[f"line_items.{index}.id"] = ["Line listed twice."]
        elif item["quantity"] > line.remaining_quantity:
            if over_is_conflict:
                raise OverFulfillment(
                    f"Line {line.id} has only {line.remaining_quantity} left to fulfill, "
                    f"not {item['quantity']}.",
                    fulfillment_order_id=fo.id,
                )
            errors[f"line_items.{index}.quantity"] = [
                f"Only {line.remaining_quantity} left to fulfill on this line."
            ]
        else:
            chosen.append((line, item["quantity"]))
        seen.add(item["id"])
    if errors:
        raise ValidationFailed(errors)
    return [(line, quantity) for line, quantity in chosen if quantity > 0]


def record_fulfillment(order, fo, chosen, now, *, created_by, tracking=None):
    """Store a shipment of the chosen lines and count it against the FO; return it."""
    check_something_chosen(fo, chosen)
    fulfillment = new_fulfillment(order, fo, now, created_by=created_by, tracking=tracking)
    count_shipped(fulfillment, chosen)
    return fulfillment


def check_something_chosen(fo, chosen):
    """Refuse a shipment of nothing: an over-fulfillment (409)."""
    if not chosen:
        raise OverFulfillment(
            "Nothing remains to be fulfilled on this fulfillment order.",
            fulfillment_order_id=fo.id,
        )


def new_fulfillment(order, fo, now, *, created_by, external_id=None, tracking=None):
    """Store a shipment of the FO, its lines not yet counted (`count_shipped`); return it, or
    None when the FO's service already has a shipment of that `external_id`."""
    tracking = tracking or {}
    fulfillment = Fulfillment(
        order=order,
        fulfillment_order=fo,
        service=fo.service,
        external_id=external_id,
        created_by=created_by,
        tracking_number=tracking.get("number"),
        tracking_company=tracking.get("company"),
        tracking_url=tracking.get("url"),
        created_at=now,
    )
    values = {name: value for name, value in fulfillment.__data__.items() if name != "id"}
    fulfillment.id = prepared.insert_returning_id(
        Fulfillment, conflict_on=("service", "external_id"), **values
    )
    fulfillment._dirty.clear()
    return fulfillment if fulfillment.id is not None else None


def count_shipped(fulfillment, chosen):
    """Record the shipment's lines and count them against the FO's lines (in memory too)."""
    for fo_line, quantity in chosen:
        prepared.insert_later(
            FulfillmentLine, fulfillment=fulfillment.id, line_item=fo_line.line_item_id,
            quantity=quantity,
        )
        fo_line.fulfilled_quantity += quantity
        fo_line.save()


def remaining_of(fo, lines=None):
    """Return the FO's total unfulfilled quantity; `lines`, its lines when already read."""
    return sum(line.remaining_quantity for line in (lines_of(fo) if lines is None else lines))


def notify_customer(order, fulfillment, now):
    """Queue a shipping confirmation; return what the timeline should say about it."""
    if settings.current().notifications_url is None:
        return "not_configured"
    lines = [
        {
            "line_item_id": line.line_item_id,
            "sku": line.line_item.sku,
            "title": line.line_item.title,
            "quantity": line.quantity,
        }
        for line in fulfillment.lines
    ]
    outbox.enqueue(
        outbox.NOTIFICATIONS,
        MessageType.SHIPPING_CONFIRMATION,
        {
            "order": {
                "id": order.id,
                "name": order.name,
                "email": order.email,
                "shipping_address": order.shipping_address,
            },
            "fulfillment_id": fulfillment.id,
            "line_items": lines,
            "tracking": tracking_of(fulfillment),
        },
        now,
        order_id=order.id,
    )
    return "queued"


def tracking_of(fulfillment):
    """Return the fulfillment's tracking as `{number, company, url}`."""
    return {
        "number": fulfillment.tracking_number,
        "company": fulfillment.tracking_company,
        "url": fulfillment.tracking_url,
    }


def update_tracking(fulfillment, tracking):
    """Replace the given tracking fields; return the tracking before the change."""
    before = tracking_of(fulfillment)
    for key in ("number", "company", "url"):
        if key in tracking:
            setattr(fulfillment, f"tracking_{key}", tracking[key])
    fulfillment.save()
    return before


def add_event(fulfillment, event, now):
    """Keep a delivery event; move `shipment_status` only if it is the latest by `happened_at`.

    Returns whether it moved the status. The event's row is written with the transaction's
    next statement (`prepared.insert_later`); nothing here needs its id.
    """
    prepared.insert_later(
        ShipmentEvent,
        fulfillment=fulfillment.id,
        status=event["status"],
        happened_at=event["happened_at"],
        message=event.get("message"),
        estimated_delivery_at=event.get("estimated_delivery_at"),
        location=event.get("location"),
        received_at=now,
    )
    current_at = fulfillment.shipment_status_at
    newer = current_at is None or event["happened_at"] > current_at or (
        event["happened_at"] == current_at
        and RANK[event["status"]] >= RANK[fulfillment.shipment_status]
    )
    if newer:
        fulfillment.shipment_status = event["status"]
        fulfillment.shipment_status_at = event["happened_at"]
        if event.get("estimated_delivery_at") is not None:
            fulfillment.estimated_delivery_at = event["estimated_delivery_at"]
        fulfillment.save()
    return newer

"""What a fulfillment service reports (SPEC 4.2), applied to its own fulfillment orders only."""

from . import derived, shipments, store, timeline, transitions
from .errors import IdempotencyConflict, InvalidTransition
from .fulfillment_orders import apply, current_request
from .locks import locked_fulfillment_order, locked_row
from .models import Fulfillment, FulfillmentOrder
from .statuses import effective_fo_status
from .times import rfc3339


def _locked_fulfillment(service, external_id):
    return locked_row(
        Fulfillment,
        f"Fulfillment {external_id!r} does not exist for service {service}.",
        service=service,
        external_id=external_id,
    )


def _check_request_id(fo, data, now):
    request_id = data.get("request_id")
    if request_id is not None and request_id != fo.current_request_id:
        raise InvalidTransition(
            f"Request {request_id} is not the current request of fulfillment order {fo.id}.",
            **transitions.state_of(fo, effective_fo_status(fo.status, fo.fulfill_at, now)),
        )


def _answer(fo, kind, status, data, now, answering=("submitted",)):
    request = current_request(fo, kind)
    if request is not None and request.status in answering:
        request.status = status
        request.answered_at = now
        request.answer_message = data.get("message")
        request.save()
    return request


def _accept(order, fo, data, now, implicit=False):
    transitions.check(fo, "accept", now)
    apply(fo, "accept", now)
    request = _answer(fo, "fulfillment_request", "accepted", data if not implicit else {}, now)
    timeline.record(
        order,
        "fulfillment_request.accepted",
        now,
        actor="service",
        fulfillment_order=fo,
        message=None if implicit else data.get("message"),
        data={
            "request_id": request.id if request else None,
            "estimated_shipped_at": rfc3339(data.get("estimated_shipped_at")),
            "implicit": implicit,
        },
    )


def _answering(action, kind, answer_status, event):
    """Build the handler of a service's answer to a request."""

    def handle(service, data, now):
        with store.transaction():
            order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
            if kind == "fulfillment_request":
                _check_request_id(fo, data, now)
            if action == "accept":
                _accept(order, fo, data, now)
            else:
                transitions.check(fo, action, now)
                apply(fo, action, now)
                request = _answer(fo, kind, answer_status, data, now)
                if action == "accept_cancellation":
                    cancelled = current_request(fo, "fulfillment_request")
                    if cancelled is not None and cancelled.status == "accepted":
                        cancelled.status = "cancelled"
                        cancelled.save()
                timeline.record(
                    order,
                    event,
                    now,
                    actor="service",
                    fulfillment_order=fo,
                    message=data.get("message"),
                    data={
                        "request_id": request.id if request else None,
                        "reason": data.get("reason"),
                    },
                )
            derived.refresh(order, now, {derived.FULFILLMENT})
        return fo, None

    return handle


def report_shipment(service, data, now):
    """Record a shipment; the same `external_id` twice records one. Never drop a late shipment."""
    with store.transaction():
        order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
        known = Fulfillment.get_or_none(
            (Fulfillment.service == service) & (Fulfillment.external_id == data["external_id"])
        )
        if known is not None:
            if known.fulfillment_order_id != fo.id:
                raise IdempotencyConflict(
                    f"external_id {data['external_id']!r} already records a shipment of "
                    f"fulfillment order {known.fulfillment_order_id}, not {fo.id}."
                )
            return fo, known
        late = not transitions.is_allowed(fo, "ship", now)
        # A late shipment is explained by the state it arrived in, before it closes the FO.
        before = f"{effective_fo_status(fo.status, fo.fulfill_at, now)} / {fo.request_status}"
        chosen = shipments.select_lines(fo, data.get("line_items"), over_is_conflict=True)
        if fo.request_status == "submitted" and not late:
            _accept(order, fo, {}, now, implicit=True)
        fulfillment = shipments.record_fulfillment(
            order,
            fo,
            chosen,
            now,
            created_by="service",
            external_id=data["external_id"],
            tracking=data.get("tracking"),
        )
        if shipments.remaining_of(fo) == 0:
            fo.status = "closed"
        if late:
            fo.needs_attention = True
        fo.updated_at = now
        fo.save()
        notification = (
            shipments.notify_customer(order, fulfillment, now)
            if data.get("notify_customer")
            else None
        )
        timeline.record(
            order,
            "fulfillment.created",
            now,
            actor="service",
            fulfillment_order=fo,
            message=data.get("message"),
            data={
                "fulfillment_id": fulfillment.id,
                "external_id": fulfillment.external_id,
                "line_items": [
                    {"line_item_id": line.line_item_id, "quantity": quantity}
                    for line, quantity in chosen
                ],
                "tracking": shipments.tracking_of(fulfillment),
                "customer_notification": notification,
                "needs_attention": (
                    f"The service reported this shipment while the fulfillment order was "
                    f"{before}; it was recorded so nothing is lost. Check it, then acknowledge."
                )
                if late
                else None,
            },
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo, fulfillment


def update_tracking(service, data, now):
    """Replace a shipment's tracking details."""
    with store.transaction():
        order, fulfillment = _locked_fulfillment(service, data["external_id"])
        before = shipments.update_tracking(fulfillment, data["tracking"])
        notification = None
        if data.get("notify_customer"):
            notification = shipments.notify_customer(order, fulfillment, now)
        fo = FulfillmentOrder.get_by_id(fulfillment.fulfillment_order_id)
        timeline.record(
            order,
            "fulfillment.tracking_updated",
            now,
            actor="service",
            fulfillment_order=fo,
            data={
                "fulfillment_id": fulfillment.id,
                "before": before,
                "tracking": shipments.tracking_of(fulfillment),
                "customer_notification": notification,
            },
        )
        derived.refresh(order, now, changed=())
    return fo, fulfillment


def report_event(service, data, now):
    """Add a delivery event; an older one arriving late is kept without moving the status back."""
    with store.transaction():
        order, fulfillment = _locked_fulfillment(service, data["external_id"])
        moved = shipments.add_event(fulfillment, data, now)
        fo = FulfillmentOrder.get_by_id(fulfillment.fulfillment_order_id)
        timeline.record(
            order,
            "fulfillment.event",
            now,
            actor="service",
            fulfillment_order=fo,
            message=data.get("message"),
            data={
                "fulfillment_id": fulfillment.id,
                "status": data["status"],
                "happened_at": rfc3339(data["happened_at"]),
                "shipment_status": fulfillment.shipment_status,
                "moved_status": moved,
            },
        )
        derived.refresh(order, now, changed=())
    return fo, fulfillment


def close(service, data, now):
    """The service gives up on the rest of an FO: it becomes incomplete."""
    with store.transaction():
        order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
        transitions.check(fo, "close", now)
        apply(fo, "close", now)
        _answer(fo, "fulfillment_request", "closed", data, now, answering=("accepted",))
        timeline.record(
            order,
            "fulfillment_order.closed",
            now,
            actor="service",
            fulfillment_order=fo,
            message=data.get("message"),
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo, None


def message(service, data, now):
    """Put the service's message on the timeline."""
    with store.transaction():
        order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
        timeline.record(
            order,
            "fulfillment_order.message",
            now,
            actor="service",
            fulfillment_order=fo,
            message=data["message"],
        )
    return fo, None


HANDLERS = {
    "fulfillment_request.accepted": _answering(
        "accept", "fulfillment_request", "accepted", "fulfillment_request.accepted"
    ),
    "fulfillment_request.rejected": _answering(
        "reject", "fulfillment_request", "rejected", "fulfillment_request.rejected"
    ),
    "cancellation_request.accepted": _answering(
        "accept_cancellation", "cancellation_request", "accepted", "cancellation_request.accepted"
    ),
    "cancellation_request.rejected": _answering(
        "reject_cancellation", "cancellation_request", "rejected", "cancellation_request.rejected"
    ),
    "fulfillment.created": report_shipment,
    "fulfillment.tracking_updated": update_tracking,
    "fulfillment.event": report_event,
    "fulfillment_order.closed": close,
    "fulfillment_order.message": message,
}

"""What a fulfillment service reports (SPEC 4.2), applied to its own fulfillment orders only."""

from typing import NamedTuple

from . import derived, prepared, rendering, shipments, store, timeline, transitions
from .errors import IdempotencyConflict, InvalidTransition
from .fulfillment_orders import current_request
from .locks import locked_fulfillment_order, locked_row
from .models import Fulfillment, FulfillmentOrder, MerchantRequest
from .statuses import effective_fo_status
from .times import rfc3339
from .vocabulary import Actor, MerchantRequestKind, MerchantRequestStatus, RequestStatus, TimelineKind


class Applied(NamedTuple):
    """What a delivery changed, for its answer: the FO, the fulfillment involved, whether it
    recorded a shipment event (the answer reads it back: the fulfillment's latest), and the
    answer's rows when they were read with the order's facts (`rendering.applied_reads`)."""

    fulfillment_order: FulfillmentOrder
    fulfillment: Fulfillment | None = None
    recorded_event: bool = False
    rows: list | None = None


def _refreshed(order, applied, now):
    """Refresh the order's fulfillment facts, reading the answer's rows in the same statement."""
    reads = rendering.applied_reads(applied)
    return applied._replace(rows=derived.refresh_fulfillment_reading(order, now, reads))


def _locked_fulfillment(service, external_id):
    """Lock the shipment's order; return (order, fulfillment, its FO)."""
    return locked_row(
        Fulfillment,
        f"Fulfillment {external_id!r} does not exist for service {service}.",
        beside=(FulfillmentOrder, "fulfillment_order"),
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


def _answer(fo, kind, status, data, now, answering=MerchantRequestStatus.SUBMITTED):
    """Answer the FO's current request of `kind` if it is still `answering`; return its id or None.

    Every fulfillment request is its FO's current one when made (`submit`), so that one is
    answered without being read: the update changes it only while it is `answering`.
    """
    if kind == MerchantRequestKind.FULFILLMENT:
        request_id = fo.current_request_id
    else:
        request = current_request(fo, kind)
        request_id = request.id if request is not None else None
    if request_id is not None:
        prepared.update_later(
            MerchantRequest,
            {"id": request_id, "status": answering},
            status=status,
            answered_at=now,
            answer_message=data.get("message"),
        )
    return request_id


def _accept(order, fo, data, now, implicit=False):
    transitions.perform(fo, "accept", now)
    request_id = _answer(
        fo, MerchantRequestKind.FULFILLMENT, MerchantRequestStatus.ACCEPTED,
        data if not implicit else {}, now,
    )
    timeline.record(
        order,
        TimelineKind.FULFILLMENT_REQUEST_ACCEPTED,
        now,
        actor=Actor.SERVICE,
        fulfillment_order=fo,
        message=None if implicit else data.get("message"),
        data={
            "request_id": request_id,
            "estimated_shipped_at": rfc3339(data.get("estimated_shipped_at")),
            "implicit": implicit,
        },
    )


def _answering(action, kind, answer_status, event):
    """Build the handler of a service's answer to a request."""

    def handle(service, data, now):
        with store.transaction():
            order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
            if kind == MerchantRequestKind.FULFILLMENT:
                _check_request_id(fo, data, now)
            if action == "accept":
                _accept(order, fo, data, now)
            else:
                transitions.perform(fo, action, now)
                request_id = _answer(fo, kind, answer_status, data, now)
                if action == "accept_cancellation" and fo.current_request_id is not None:
                    prepared.update_later(
                        MerchantRequest,
                        {"id": fo.current_request_id, "status": MerchantRequestStatus.ACCEPTED},
                        status=MerchantRequestStatus.CANCELLED,
                    )
                timeline.record(
                    order,
                    event,
                    now,
                    actor=Actor.SERVICE,
                    fulfillment_order=fo,
                    message=data.get("message"),
                    data={
                        "request_id": request_id,
                        "reason": data.get("reason"),
                    },
                )
            return _refreshed(order, Applied(fo), now)

    return handle


def _known_shipment(service, external_id, fo):
    """Return the shipment `external_id` already names: the same one again, unless another FO's."""
    known = Fulfillment.get((Fulfillment.service == service) & (Fulfillment.external_id == external_id))
    if known.fulfillment_order_id != fo.id:
        raise IdempotencyConflict(
            f"external_id {external_id!r} already records a shipment of "
            f"fulfillment order {known.fulfillment_order_id}, not {fo.id}."
        )
    return known


def report_shipment(service, data, now):
    """Record a shipment; the same `external_id` twice records one. Never drop a late shipment."""
    with store.transaction():
        order, fo, lines = locked_fulfillment_order(
            data["fulfillment_order_id"], service, with_lines=True
        )
        # Stored first: a shipment already reported is answered as it is, its lines unchecked.
        fulfillment = shipments.new_fulfillment(
            order,
            fo,
            now,
            created_by=Actor.SERVICE,
            external_id=data["external_id"],
            tracking=data.get("tracking"),
        )
        if fulfillment is None:
            return Applied(fo, _known_shipment(service, data["external_id"], fo))
        late = not transitions.is_allowed(fo, "ship", now)
        # A late shipment is explained by the state it arrived in, before it closes the FO.
        before = f"{effective_fo_status(fo.status, fo.fulfill_at, now)} / {fo.request_status}"
        chosen = shipments.select_lines(
            fo, data.get("line_items"), over_is_conflict=True, lines=lines
        )
        shipments.check_something_chosen(fo, chosen)
        if fo.request_status == RequestStatus.SUBMITTED and not late:
            _accept(order, fo, {}, now, implicit=True)
        shipments.count_shipped(fulfillment, chosen)
        if late:
            fo.needs_attention = True
        fo.updated_at = now
        if not transitions.finish_if_done(fo, shipments.remaining_of(fo, lines), now):
            fo.save()
        notification = (
            shipments.notify_customer(order, fulfillment, now)
            if data.get("notify_customer")
            else None
        )
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_CREATED,
            now,
            actor=Actor.SERVICE,
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
        return _refreshed(order, Applied(fo, fulfillment), now)


def update_tracking(service, data, now):
    """Replace a shipment's tracking details."""
    with store.transaction():
        order, fulfillment, fo = _locked_fulfillment(service, data["external_id"])
        before = shipments.update_tracking(fulfillment, data["tracking"])
        notification = None
        if data.get("notify_customer"):
            notification = shipments.notify_customer(order, fulfillment, now)
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_TRACKING_UPDATED,
            now,
            actor=Actor.SERVICE,
            fulfillment_order=fo,
            data={
                "fulfillment_id": fulfillment.id,
                "before": before,
                "tracking": shipments.tracking_of(fulfillment),
                "customer_notification": notification,
            },
        )
        derived.refresh(order, now, changed=())
    return Applied(fo, fulfillment)


def report_event(service, data, now):
    """Add a delivery event; an older one arriving late is kept without moving the status back."""
    with store.transaction():
        order, fulfillment, fo = _locked_fulfillment(service, data["external_id"])
        moved = shipments.add_event(fulfillment, data, now)
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_EVENT,
            now,
            actor=Actor.SERVICE,
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
    return Applied(fo, fulfillment, recorded_event=True)


def close(service, data, now):
    """The service gives up on the rest of an FO: it becomes incomplete."""
    with store.transaction():
        order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
        transitions.perform(fo, "close", now)
        _answer(
            fo, MerchantRequestKind.FULFILLMENT, MerchantRequestStatus.CLOSED, data, now,
            answering=MerchantRequestStatus.ACCEPTED,
        )
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_ORDER_CLOSED,
            now,
            actor=Actor.SERVICE,
            fulfillment_order=fo,
            message=data.get("message"),
        )
        return _refreshed(order, Applied(fo), now)


def message(service, data, now):
    """Put the service's message on the timeline."""
    with store.transaction():
        order, fo = locked_fulfillment_order(data["fulfillment_order_id"], service)
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_ORDER_MESSAGE,
            now,
            actor=Actor.SERVICE,
            fulfillment_order=fo,
            message=data["message"],
        )
    return Applied(fo)


K, RK, RS = TimelineKind, MerchantRequestKind, MerchantRequestStatus
HANDLERS = {
    K.FULFILLMENT_REQUEST_ACCEPTED: _answering(
        "accept", RK.FULFILLMENT, RS.ACCEPTED, K.FULFILLMENT_REQUEST_ACCEPTED
    ),
    K.FULFILLMENT_REQUEST_REJECTED: _answering(
        "reject", RK.FULFILLMENT, RS.REJECTED, K.FULFILLMENT_REQUEST_REJECTED
    ),
    K.CANCELLATION_REQUEST_ACCEPTED: _answering(
        "accept_cancellation", RK.CANCELLATION, RS.ACCEPTED, K.CANCELLATION_REQUEST_ACCEPTED
    ),
    K.CANCELLATION_REQUEST_REJECTED: _answering(
        "reject_cancellation", RK.CANCELLATION, RS.REJECTED, K.CANCELLATION_REQUEST_REJECTED
    ),
    # The service's message types are recorded on the timeline under the same names.
    K.FULFILLMENT_CREATED: report_shipment,
    K.FULFILLMENT_TRACKING_UPDATED: update_tracking,
    K.FULFILLMENT_EVENT: report_event,
    K.FULFILLMENT_ORDER_CLOSED: close,
    K.FULFILLMENT_ORDER_MESSAGE: message,
}

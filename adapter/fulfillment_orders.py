"""Merchant actions on fulfillment orders (SPEC 2.3), each one transaction with its event and message."""

from . import derived, outbox, settings, shipments, store, timeline, transitions
from .errors import InvalidTransition, ValidationFailed
from .locks import locked_fulfillment_order, locked_order
from .models import FulfillmentOrder, FulfillmentOrderLine, LineItem, MerchantRequest, TimelineEvent
from .statuses import effective_fo_status
from .vocabulary import (
    Actor,
    FOAction,
    FOStatus,
    MerchantRequestKind,
    MerchantRequestStatus,
    MessageType,
    PaymentStatus,
    RequestStatus,
    TimelineKind,
)

INVENTORY_WARNING = (
    "Check inventory counts: the fulfillment service may already have picked, restocked or "
    "shipped some of these items."
)


def new_fulfillment_order(order, service, now, status=FOStatus.OPEN, fulfill_at=None, hold=None):
    """Create an empty FO of `service` (None = merchant-managed) for the order."""
    return FulfillmentOrder.create(**fulfillment_order_row(order, service, now, status, fulfill_at, hold))


def fulfillment_order_row(order, service, now, status=FOStatus.OPEN, fulfill_at=None, hold=None):
    """The field values of a new, empty FO of `service` for the order."""
    config = settings.service(service) if service else None
    return {
        "order": order.id,
        "service": service,
        "workflow": config.workflow if config else None,
        "status": status,
        "request_status": RequestStatus.UNSUBMITTED,
        "fulfill_at": fulfill_at,
        "hold_reason": hold["reason"] if hold else None,
        "hold_note": hold.get("note") if hold else None,
        "created_at": now,
        "updated_at": now,
    }


def move_to_new_fo(order, fo, moves, now):
    """Move [(fo_line, quantity)] of `fo` onto a new open, unsubmitted FO; return it or None."""
    moves = [(line, quantity) for line, quantity in moves if quantity > 0]
    if not moves:
        return None
    new_fo = new_fulfillment_order(order, fo.service, now)
    for line, quantity in moves:
        FulfillmentOrderLine.create(
            fulfillment_order=new_fo, line_item=line.line_item_id, quantity=quantity
        )
        line.quantity -= quantity
        if line.quantity == 0:
            line.delete_instance()
        else:
            line.save()
    return new_fo


def tell_service(order, fo, message_type, data, now, *, actor=Actor.MERCHANT, message=None,
                 request=None, event_data=None):
    """Queue a message to the FO's service and record the event of the same name."""
    outbox.enqueue(
        fo.service,
        message_type,
        data,
        now,
        order_id=order.id,
        fulfillment_order_id=fo.id,
        request_id=request.id if request else None,
    )
    timeline.record(
        order,
        message_type,
        now,
        actor=actor,
        fulfillment_order=fo,
        message=message,
        data=event_data if event_data is not None else (
            {"request_id": request.id} if request else {}
        ),
    )


def _request_lines(fo):
    lines = (
        FulfillmentOrderLine.select(FulfillmentOrderLine, LineItem)
        .join(LineItem)
        .where(FulfillmentOrderLine.fulfillment_order == fo.id)
        .order_by(FulfillmentOrderLine.id)
    )
    return [
        {
            "id": line.id,
            "line_item_id": line.line_item_id,
            "sku": line.line_item.sku,
            "title": line.line_item.title,
            "quantity": line.remaining_quantity,
        }
        for line in lines
        if line.remaining_quantity > 0
    ]


def submit(order, fo, now, *, message=None, notify_customer=False, actor=Actor.MERCHANT, rest=None):
    """Send the FO's remaining lines to its service as a new fulfillment request.

    `rest` is the FO the unrequested lines of a partial request moved to, if any.
    """
    lines = _request_lines(fo)
    request = MerchantRequest.create(
        fulfillment_order=fo,
        kind=MerchantRequestKind.FULFILLMENT,
        message=message,
        status=MerchantRequestStatus.SUBMITTED,
        sent_at=now,
        line_items=lines,
    )
    fo.current_request_id = request.id
    transitions.perform(fo, FOAction.REQUEST_FULFILLMENT, now)
    tell_service(
        order,
        fo,
        MessageType.FULFILLMENT_REQUEST_SUBMITTED,
        {
            "request_id": request.id,
            "fulfillment_order": {
                "id": fo.id,
                "order_id": order.id,
                "order_name": order.name,
                "destination": order.shipping_address,
                "line_items": lines,
            },
            "message": message,
            "notify_customer": bool(notify_customer),
        },
        now,
        actor=actor,
        message=message,
        request=request,
        event_data={
            "request_id": request.id,
            "service": fo.service,
            "line_items": lines,
            "unsubmitted_fulfillment_order_id": rest.id if rest else None,
        },
    )
    return request


def request_fulfillment(fo_id, payload, now):
    """Ask the FO's service to fulfill it, or part of it; return (submitted FO, remainder FO)."""
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        remaining = shipments.remaining_of(fo)
        transitions.check(fo, FOAction.REQUEST_FULFILLMENT, now, remaining)
        unsubmitted = None
        if payload.get("line_items") is not None:
            chosen = shipments.select_lines(fo, payload["line_items"], over_is_conflict=False)
            if not chosen:
                raise ValidationFailed({"line_items": ["Request at least one unit."]})
            asked = {line.id: quantity for line, quantity in chosen}
            moves = [
                (line, line.remaining_quantity - asked.get(line.id, 0))
                for line in FulfillmentOrderLine.select().where(
                    FulfillmentOrderLine.fulfillment_order == fo.id
                )
            ]
            unsubmitted = move_to_new_fo(order, fo, moves, now)
        submit(
            order,
            fo,
            now,
            message=payload.get("message"),
            notify_customer=payload.get("notify_customer", False),
            rest=unsubmitted,
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo, unsubmitted


def _fulfills_automatically(order, fo, now):
    """Tell whether SPEC 2.3 has `fo` requested automatically now, its split-off origin aside.

    The order is paid and not cancelled, the FO's service has `auto_fulfill`, and the FO is
    open / unsubmitted with something to ship and was never requested: a request that was
    rejected, withdrawn, reverted, cancelled or undelivered leaves the FO to the merchant.
    """
    config = settings.service(fo.service) if fo.service else None
    return (
        config is not None
        and config.auto_fulfill
        and order.payment_state == PaymentStatus.PAID
        and order.cancelled_at is None
        and effective_fo_status(fo.status, fo.fulfill_at, now) == FOStatus.OPEN
        and fo.request_status == RequestStatus.UNSUBMITTED
        and fo.current_request_id is None
        and shipments.remaining_of(fo) > 0
    )


def _split_off(order):
    """Return the ids of the order's FOs that a partial request or a revert split off.

    What the merchant left out of a request, or took back from one, is theirs to decide.
    """
    events = TimelineEvent.select(TimelineEvent.data).where(
        (TimelineEvent.order == order.id)
        & TimelineEvent.kind.in_(
            (TimelineKind.FULFILLMENT_REQUEST_SUBMITTED, TimelineKind.FULFILLMENT_ORDER_REVERTED)
        )
    )
    return {
        event.data[key]
        for event in events
        for key in ("unsubmitted_fulfillment_order_id", "reverted_to_fulfillment_order_id")
        if event.data and event.data.get(key) is not None
    }


def auto_fulfill(order, now, fos=None):
    """Request the FOs of `fos` (default: all the order's) that SPEC 2.3 requests automatically.

    Call when the order has just become paid or an FO of a paid order has just become
    open / unsubmitted. Return whether any request was sent.
    """
    if fos is None:
        fos = FulfillmentOrder.select().where(FulfillmentOrder.order == order.id)
    chosen = [fo for fo in fos if _fulfills_automatically(order, fo, now)]
    if chosen:
        split_off = _split_off(order)
        chosen = [fo for fo in chosen if fo.id not in split_off]
    for fo in chosen:
        submit(order, fo, now, actor=Actor.SYSTEM)
    if chosen:
        derived.refresh(order, now, {derived.FULFILLMENT})
    return bool(chosen)


SWEEP_BATCH = 100


def open_due_fulfillment_orders(now, batch=SWEEP_BATCH):
    """Store as open the scheduled FOs whose `fulfill_at` has passed; request those SPEC 2.3
    requests automatically. Return how many were requested.

    Reads show such an FO open already, so storing it changes nothing anyone sees (no event,
    no `updated_at`); it keeps the indexed range this sweep reads down to the FOs that came due
    since the last one. Each FO is read again under its order's lock, so workers sweeping at
    the same time never request one FO twice.
    """
    requested = 0
    while True:
        due = list(
            FulfillmentOrder.select(FulfillmentOrder.id, FulfillmentOrder.order)
            .where(
                (FulfillmentOrder.status == FOStatus.SCHEDULED) & (FulfillmentOrder.fulfill_at <= now)
            )
            .order_by(FulfillmentOrder.fulfill_at)
            .limit(batch)
            .tuples()
        )
        for fo_id, order_id in due:
            with store.transaction():
                order = locked_order(order_id)
                fo = FulfillmentOrder.get_or_none(FulfillmentOrder.id == fo_id)
                if fo is None or fo.status != FOStatus.SCHEDULED or fo.fulfill_at > now:
                    continue
                # Not the `open` row: no one opened it, and reads showed it open already.
                fo.status = FOStatus.OPEN
                fo.save()
                derived.refresh(order, now, {derived.FULFILLMENT}, touch=False)
                requested += auto_fulfill(order, now, [fo])
        if len(due) < batch:
            return requested


def current_request(fo, kind):
    """Return the FO's latest merchant request of `kind`, or None."""
    return (
        MerchantRequest.select()
        .where((MerchantRequest.fulfillment_order == fo.id) & (MerchantRequest.kind == kind))
        .order_by(MerchantRequest.id.desc())
        .first()
    )


def _close_request(request, status, now, answer=None):
    if request is not None:
        request.status = status
        request.answered_at = now
        request.answer_message = answer
        request.save()


def cancel_request(fo_id, payload, now):
    """Withdraw a request the service has not accepted yet; tell the service."""
    message = payload.get("message")
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        transitions.perform(fo, FOAction.CANCEL_FULFILLMENT_REQUEST, now)
        request = current_request(fo, MerchantRequestKind.FULFILLMENT)
        request.status = MerchantRequestStatus.WITHDRAWN
        request.save()
        tell_service(
            order,
            fo,
            MessageType.FULFILLMENT_REQUEST_WITHDRAWN,
            {"request_id": request.id, "fulfillment_order_id": fo.id, "message": message},
            now,
            message=message,
            request=request,
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo


def request_cancellation(fo_id, payload, now):
    """Ask the service to cancel an accepted request."""
    message = payload.get("message")
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        transitions.perform(fo, FOAction.REQUEST_CANCELLATION, now)
        request = MerchantRequest.create(
            fulfillment_order=fo,
            kind=MerchantRequestKind.CANCELLATION,
            message=message,
            status=MerchantRequestStatus.SUBMITTED,
            sent_at=now,
        )
        tell_service(
            order,
            fo,
            MessageType.CANCELLATION_REQUEST_SUBMITTED,
            {"request_id": request.id, "fulfillment_order_id": fo.id, "message": message},
            now,
            message=message,
            request=request,
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo


def revert(fo_id, payload, now):
    """Take back an FO whose cancellation the service could not report; return (FO, kept FO)."""
    message = payload.get("message")
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        transitions.check(fo, FOAction.REVERT_TO_UNFULFILLED, now)
        kept = None
        if payload.get("line_items") is not None:
            chosen = shipments.select_lines(fo, payload["line_items"], over_is_conflict=False)
            if not chosen:
                raise ValidationFailed({"line_items": ["Revert at least one unit."]})
            if sum(quantity for _, quantity in chosen) < shipments.remaining_of(fo):
                kept, fo = fo, move_to_new_fo(order, fo, chosen, now)
        if kept is None:
            reverted = MerchantRequestStatus.REVERTED
            _close_request(current_request(fo, MerchantRequestKind.CANCELLATION), reverted, now)
            _close_request(current_request(fo, MerchantRequestKind.FULFILLMENT), reverted, now)
            transitions.perform(fo, FOAction.REVERT_TO_UNFULFILLED, now)
        tell_service(
            order,
            kept or fo,
            MessageType.FULFILLMENT_ORDER_REVERTED,
            {
                "fulfillment_order_id": (kept or fo).id,
                "message": message,
                "line_items": None
                if kept is None
                else [
                    {"line_item_id": line.line_item_id, "quantity": line.quantity}
                    for line in fo.lines
                ],
            },
            now,
            message=message,
            event_data={
                "warnings": [INVENTORY_WARNING],
                "reverted_to_fulfillment_order_id": fo.id,
            },
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo, kept, [INVENTORY_WARNING]


def mark_fulfilled(fo_id, payload, now):
    """Record a shipment the merchant made; return (fulfillment, FO)."""
    with store.transaction():
        order, fo, lines = locked_fulfillment_order(fo_id, with_lines=True)
        transitions.perform(fo, FOAction.MARK_AS_FULFILLED, now, shipments.remaining_of(fo, lines))
        chosen = shipments.select_lines(
            fo, payload.get("line_items"), over_is_conflict=True, lines=lines
        )
        fulfillment = shipments.record_fulfillment(
            order, fo, chosen, now, created_by=Actor.MERCHANT, tracking=payload.get("tracking")
        )
        fo.updated_at = now
        if not transitions.finish_if_done(fo, shipments.remaining_of(fo, lines), now):
            fo.save()
        notification = (
            shipments.notify_customer(order, fulfillment, now)
            if payload.get("notify_customer")
            else None
        )
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_CREATED,
            now,
            actor=Actor.MERCHANT,
            fulfillment_order=fo,
            data={
                "fulfillment_id": fulfillment.id,
                "line_items": [
                    {"line_item_id": line.line_item_id, "quantity": quantity}
                    for line, quantity in chosen
                ],
                "tracking": shipments.tracking_of(fulfillment),
                "customer_notification": notification,
            },
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fulfillment, fo


def hold(fo_id, payload, now):
    """Put an FO on hold with a reason and note."""
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        # Written by the row's save, or dropped with the transaction if the row refuses.
        fo.hold_reason = payload["reason"]
        fo.hold_note = payload.get("note")
        transitions.perform(fo, FOAction.HOLD, now, shipments.remaining_of(fo))
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_ORDER_HELD,
            now,
            actor=Actor.MERCHANT,
            fulfillment_order=fo,
            message=fo.hold_note,
            data={"reason": fo.hold_reason},
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
    return fo


def release_hold(fo_id, now):
    """Release an FO's hold."""
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        reason = fo.hold_reason
        fo.hold_reason = fo.hold_note = None
        transitions.perform(fo, FOAction.RELEASE_HOLD, now)
        timeline.record(
            order,
            TimelineKind.FULFILLMENT_ORDER_HOLD_RELEASED,
            now,
            actor=Actor.MERCHANT,
            fulfillment_order=fo,
            data={"reason": reason},
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
        auto_fulfill(order, now, [fo])
    return fo


def open_early(fo_id, now):
    """Open a scheduled FO before its `fulfill_at` ("fulfill now")."""
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        transitions.perform(fo, FOAction.OPEN, now)
        timeline.record(
            order, TimelineKind.FULFILLMENT_ORDER_OPENED, now, actor=Actor.MERCHANT,
            fulfillment_order=fo,
        )
        derived.refresh(order, now, {derived.FULFILLMENT})
        auto_fulfill(order, now, [fo])
    return fo


def send_message(fo_id, payload, now):
    """Send a note to the FO's service (never to the customer)."""
    message = payload["message"]
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        transitions.perform(fo, FOAction.SEND_MESSAGE, now)
        tell_service(
            order,
            fo,
            MessageType.MERCHANT_MESSAGE,
            {"fulfillment_order_id": fo.id, "message": message},
            now,
            message=message,
        )
    return fo


def acknowledge(fo_id, now):
    """Clear `needs_attention` once the merchant has looked; doing it twice changes nothing."""
    with store.transaction():
        order, fo = locked_fulfillment_order(fo_id)
        if fo.needs_attention:
            fo.needs_attention = False
            fo.updated_at = now
            fo.save()
            timeline.record(
                order, TimelineKind.FULFILLMENT_ORDER_ACKNOWLEDGED, now, actor=Actor.MERCHANT,
                fulfillment_order=fo,
            )
            derived.refresh(order, now, {derived.FULFILLMENT})
    return fo


# What the timeline calls an undelivered message; a request's failure names the request.
FAILED_EVENT = {
    MessageType.FULFILLMENT_REQUEST_SUBMITTED: TimelineKind.FULFILLMENT_REQUEST_FAILED,
    MessageType.CANCELLATION_REQUEST_SUBMITTED: TimelineKind.CANCELLATION_REQUEST_FAILED,
}


def message_failed(message, answer, now):
    """Undo what a message that could not be delivered promised, and say so on the timeline."""
    with store.transaction():
        order = locked_order(message.order_id)
        fo = FulfillmentOrder.get_or_none(FulfillmentOrder.id == message.fulfillment_order_id)
        request = MerchantRequest.get_or_none(MerchantRequest.id == message.request_id)
        undone = None
        if (
            message.type == MessageType.FULFILLMENT_REQUEST_SUBMITTED
            and fo is not None
            and fo.current_request_id == message.request_id
            and transitions.is_allowed(fo, "fail_request", now)
        ):
            transitions.perform(fo, "fail_request", now)
            _close_request(request, MerchantRequestStatus.FAILED, now, answer)
            undone = "fulfillment_order back to open / unsubmitted"
        elif (
            message.type == MessageType.CANCELLATION_REQUEST_SUBMITTED
            and fo is not None
            and transitions.is_allowed(fo, "fail_cancellation_request", now)
        ):
            transitions.perform(fo, "fail_cancellation_request", now)
            _close_request(request, MerchantRequestStatus.FAILED, now, answer)
            undone = "fulfillment_order back to accepted"
        timeline.record(
            order,
            FAILED_EVENT.get(message.type, TimelineKind.MESSAGE_FAILED),
            now,
            actor=Actor.SYSTEM,
            fulfillment_order=fo,
            message=answer,
            data={
                "message_id": message.message_id,
                "type": message.type,
                "target": message.target,
                "status_code": message.last_status_code,
                "attempts": message.attempts,
                "undone": undone,
            },
        )
        derived.refresh(order, now, {derived.FULFILLMENT})


# A failed request, sent again: (the row that restores its FO, its request kind, the event).
RESUBMITTED_BY = {
    MessageType.FULFILLMENT_REQUEST_SUBMITTED: (
        "resubmit_request",
        MerchantRequestKind.FULFILLMENT,
        TimelineKind.FULFILLMENT_REQUEST_RESUBMITTED,
    ),
    MessageType.CANCELLATION_REQUEST_SUBMITTED: (
        "resubmit_cancellation_request",
        MerchantRequestKind.CANCELLATION,
        TimelineKind.CANCELLATION_REQUEST_RESUBMITTED,
    ),
}


def message_retried(message, now):
    """Put back what a failed message's failure undid, so it can be sent again.

    Call inside the transaction that re-queues the message. A request whose FO
    has moved on since (requested again, cancelled, shipped) cannot be resent:
    InvalidTransition says so and nothing changes.
    """
    if message.type not in RESUBMITTED_BY or message.order_id is None:
        return
    action, kind, event = RESUBMITTED_BY[message.type]
    order = locked_order(message.order_id)
    fo = FulfillmentOrder.get_or_none(FulfillmentOrder.id == message.fulfillment_order_id)
    request = MerchantRequest.get_or_none(MerchantRequest.id == message.request_id)
    current = current_request(fo, kind) if fo is not None else None
    if (
        fo is None
        or request is None
        or current is None
        or current.id != request.id
        or request.status != MerchantRequestStatus.FAILED
        or not transitions.is_allowed(fo, action, now)
    ):
        raise InvalidTransition(
            f"Message {message.message_id} cannot be sent again: its fulfillment order has "
            "moved on since it failed. Send a new request instead."
        )
    transitions.perform(fo, action, now)
    request.status = MerchantRequestStatus.SUBMITTED
    request.answered_at = request.answer_message = None
    request.save()
    timeline.record(
        order,
        event,
        now,
        actor=Actor.SYSTEM,
        fulfillment_order=fo,
        data={"message_id": message.message_id, "request_id": request.id},
    )
    derived.refresh(order, now, {derived.FULFILLMENT})

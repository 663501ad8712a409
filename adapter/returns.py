"""Returns: requested by the customer or created by the merchant, then inspected and closed."""

from . import derived, store, timeline, transitions
from .errors import NotFound, ValidationFailed
from .locks import check_order_action, locked_order
from .models import LineItem, Return, ReturnLine
from .statuses import returnable_of, returned_by_line
from .vocabulary import Actor, OrderAction, Requester, ReturnAction, ReturnState, TimelineKind

# The event each return action records; its result comes from transitions.RETURN_TRANSITIONS.
EVENTS = {
    ReturnAction.APPROVE: TimelineKind.RETURN_APPROVED,
    ReturnAction.DECLINE: TimelineKind.RETURN_DECLINED,
    ReturnAction.COMPLETE_INSPECTION: TimelineKind.RETURN_INSPECTION_COMPLETED,
    ReturnAction.CLOSE: TimelineKind.RETURN_CLOSED,
}


def returned_of(order):
    """Return {line_item_id: quantity} in the order's returns that count (not declined)."""
    return returned_by_line(
        ReturnLine.select(ReturnLine.line_item, ReturnLine.quantity)
        .join(Return)
        .where((Return.order == order.id) & (Return.status != ReturnState.DECLINED))
    )


def create_return(order_id, payload, now):
    """Open a return of fulfilled, not yet returned quantities."""
    with store.transaction():
        order = locked_order(order_id)
        check_order_action(order, OrderAction.CREATE_RETURN)
        items = {item.id for item in LineItem.select(LineItem.id).where(LineItem.order == order.id)}
        returnable = returnable_of(derived.fulfilled_of(order), returned_of(order))
        errors, asked = {}, {}
        for index, line in enumerate(payload["line_items"]):
            item_id = line["line_item_id"]
            asked[item_id] = asked.get(item_id, 0) + line["quantity"]
            if item_id not in items:
                errors[f"line_items.{index}.line_item_id"] = ["No such line item on this order."]
            elif asked[item_id] > returnable.get(item_id, 0):
                errors[f"line_items.{index}.quantity"] = [
                    f"Only {returnable.get(item_id, 0)} of this line are fulfilled and not yet "
                    "returned."
                ]
        if errors:
            raise ValidationFailed(errors)
        by_customer = payload["requested_by"] == Requester.CUSTOMER
        return_ = Return.create(
            order=order,
            status=ReturnState.REQUESTED if by_customer else ReturnState.IN_PROGRESS,
            requested_by=payload["requested_by"],
            created_at=now,
            updated_at=now,
        )
        for line in payload["line_items"]:
            ReturnLine.create(
                return_=return_,
                line_item=line["line_item_id"],
                quantity=line["quantity"],
                reason=line["reason"],
            )
        timeline.record(
            order,
            TimelineKind.RETURN_REQUESTED if by_customer else TimelineKind.RETURN_CREATED,
            now,
            actor=payload["requested_by"],
            data={"return_id": return_.id, "line_items": payload["line_items"]},
        )
        derived.refresh(order, now, {derived.RETURNS})
    return return_


def advance_return(return_id, action, now):
    """Move a return along its lifecycle."""
    with store.transaction():
        return_ = Return.get_or_none(Return.id == return_id)
        if return_ is None:
            raise NotFound(f"Return {return_id} does not exist.")
        order = locked_order(return_.order_id)
        return_ = Return.get_by_id(return_id)
        transitions.perform_on_return(return_, action, now)
        timeline.record(
            order, EVENTS[action], now, actor=Actor.MERCHANT, data={"return_id": return_.id}
        )
        derived.refresh(order, now, {derived.RETURNS})
    return return_

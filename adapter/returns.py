"""Returns: requested by the customer or created by the merchant, then inspected and closed."""

from . import derived, store, timeline
from .errors import InvalidTransition, NotFound, ValidationFailed
from .locks import locked_order
from .models import LineItem, Return, ReturnLine
from .orders import derived_fulfilled

# action: (allowed from, result, timeline kind)
RETURN_TRANSITIONS = {
    "approve": ({"requested"}, "in_progress", "return.approved"),
    "decline": ({"requested"}, "declined", "return.declined"),
    "complete_inspection": ({"in_progress"}, "inspection_complete", "return.inspection_completed"),
    "close": ({"in_progress", "inspection_complete"}, "returned", "return.closed"),
}
# action: how a refusal names it ("Cannot … a return that is declined.")
REFUSED = {
    "approve": "approve",
    "decline": "decline",
    "complete_inspection": "complete the inspection of",
    "close": "close",
}


def _returned(order):
    returned = {}
    query = (
        ReturnLine.select(ReturnLine.line_item, ReturnLine.quantity)
        .join(Return)
        .where((Return.order == order.id) & (Return.status != "declined"))
    )
    for line in query:
        returned[line.line_item_id] = returned.get(line.line_item_id, 0) + line.quantity
    return returned


def create_return(order_id, payload, now):
    """Open a return of fulfilled, not yet returned quantities."""
    with store.transaction():
        order = locked_order(order_id)
        items = {item.id for item in LineItem.select(LineItem.id).where(LineItem.order == order.id)}
        fulfilled, returned = derived_fulfilled(order), _returned(order)
        errors, asked = {}, {}
        for index, line in enumerate(payload["line_items"]):
            item_id = line["line_item_id"]
            asked[item_id] = asked.get(item_id, 0) + line["quantity"]
            if item_id not in items:
                errors[f"line_items.{index}.line_item_id"] = ["No such line item on this order."]
            elif asked[item_id] > fulfilled.get(item_id, 0) - returned.get(item_id, 0):
                available = fulfilled.get(item_id, 0) - returned.get(item_id, 0)
                errors[f"line_items.{index}.quantity"] = [
                    f"Only {available} of this line are fulfilled and not yet returned."
                ]
        if errors:
            raise ValidationFailed(errors)
        by_customer = payload["requested_by"] == "customer"
        return_ = Return.create(
            order=order,
            status="requested" if by_customer else "in_progress",
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
            "return.requested" if by_customer else "return.created",
            now,
            actor=payload["requested_by"],
            data={"return_id": return_.id, "line_items": payload["line_items"]},
        )
        derived.refresh(order, now, {derived.RETURNS})
    return return_


def advance_return(return_id, action, now):
    """Move a return along its lifecycle."""
    allowed, result, kind = RETURN_TRANSITIONS[action]
    with store.transaction():
        return_ = Return.get_or_none(Return.id == return_id)
        if return_ is None:
            raise NotFound(f"Return {return_id} does not exist.")
        order = locked_order(return_.order_id)
        return_ = Return.get_by_id(return_id)
        if return_.status not in allowed:
            raise InvalidTransition(
                f"Cannot {REFUSED[action]} a return that is {return_.status}.",
                current_status=return_.status,
            )
        return_.status = result
        return_.updated_at = now
        return_.save()
        timeline.record(order, kind, now, actor="merchant", data={"return_id": return_.id})
        derived.refresh(order, now, {derived.RETURNS})
    return return_

"""What the pages call each word of the vocabulary, in the page's language, and its badge tone."""

from flask import g
from flask_babel import lazy_gettext as _l

from adapter.vocabulary import (
    UNPAID,
    Actor,
    FOStatus,
    FulfillmentStatus,
    HoldReason,
    OrderStatus,
    PaymentMarker,
    PaymentStatus,
    RejectReason,
    RequestStatus,
    ReturnReason,
    ReturnState,
    ReturnStatus,
    ShipmentStatus,
    TransactionKind,
)

ORDER_STATUS = {
    OrderStatus.OPEN: _l("Open"),
    OrderStatus.ARCHIVED: _l("Archived"),
    OrderStatus.CANCELLED: _l("Cancelled"),
}
PAYMENT_STATUS = {
    PaymentStatus.PENDING: _l("Pending"),
    PaymentStatus.AUTHORIZED: _l("Authorized"),
    PaymentStatus.OVERDUE: _l("Overdue"),
    PaymentStatus.EXPIRED: _l("Expired"),
    PaymentStatus.PAID: _l("Paid"),
    PaymentStatus.REFUNDED: _l("Refunded"),
    PaymentStatus.PARTIALLY_REFUNDED: _l("Partially refunded"),
    PaymentStatus.PARTIALLY_PAID: _l("Partially paid"),
    PaymentStatus.VOIDED: _l("Voided"),
    PaymentMarker.EXPIRING: _l("Expiring"),
    UNPAID: _l("Unpaid"),
}
FULFILLMENT_STATUS = {
    FulfillmentStatus.FULFILLED: _l("Fulfilled"),
    FulfillmentStatus.UNFULFILLED: _l("Unfulfilled"),
    FulfillmentStatus.PARTIALLY_FULFILLED: _l("Partially fulfilled"),
    FulfillmentStatus.SCHEDULED: _l("Scheduled"),
    FulfillmentStatus.ON_HOLD: _l("On hold"),
    FulfillmentStatus.IN_PROGRESS: _l("In progress"),
}
RETURN_STATUS = {
    ReturnStatus.RETURN_REQUESTED: _l("Return requested"),
    ReturnStatus.RETURN_IN_PROGRESS: _l("Return in progress"),
    ReturnStatus.INSPECTION_COMPLETE: _l("Inspection complete"),
    ReturnStatus.RETURNED: _l("Returned"),
}
FO_STATUS = {
    FOStatus.OPEN: _l("Open"),
    FOStatus.SCHEDULED: _l("Scheduled"),
    FOStatus.ON_HOLD: _l("On hold"),
    FOStatus.IN_PROGRESS: _l("In progress"),
    FOStatus.INCOMPLETE: _l("Incomplete"),
    FOStatus.CLOSED: _l("Closed"),
    FOStatus.CANCELLED: _l("Cancelled"),
}
REQUEST_STATUS = {
    RequestStatus.UNSUBMITTED: _l("Unsubmitted"),
    RequestStatus.SUBMITTED: _l("Submitted"),
    RequestStatus.ACCEPTED: _l("Accepted"),
    RequestStatus.REJECTED: _l("Rejected"),
    RequestStatus.CANCELLATION_REQUESTED: _l("Cancellation requested"),
    RequestStatus.CANCELLATION_ACCEPTED: _l("Cancellation accepted"),
    RequestStatus.CANCELLATION_REJECTED: _l("Cancellation rejected"),
    RequestStatus.CLOSED: _l("Closed"),
}
RETURN_STATE = {
    ReturnState.REQUESTED: _l("Return requested"),
    ReturnState.IN_PROGRESS: _l("Return in progress"),
    ReturnState.INSPECTION_COMPLETE: _l("Inspection complete"),
    ReturnState.RETURNED: _l("Returned"),
    ReturnState.DECLINED: _l("Declined"),
}
SHIPMENT_STATUS = {
    ShipmentStatus.LABEL_PURCHASED: _l("Label purchased"),
    ShipmentStatus.LABEL_PRINTED: _l("Label printed"),
    ShipmentStatus.CONFIRMED: _l("Confirmed"),
    ShipmentStatus.READY_FOR_PICKUP: _l("Ready for pickup"),
    ShipmentStatus.CARRIER_PICKED_UP: _l("Picked up by carrier"),
    ShipmentStatus.PICKED_UP: _l("Picked up"),
    ShipmentStatus.IN_TRANSIT: _l("In transit"),
    ShipmentStatus.OUT_FOR_DELIVERY: _l("Out for delivery"),
    ShipmentStatus.ATTEMPTED_DELIVERY: _l("Delivery attempted"),
    ShipmentStatus.DELAYED: _l("Delayed"),
    ShipmentStatus.DELIVERED: _l("Delivered"),
    ShipmentStatus.FAILURE: _l("Delivery failed"),
}
HOLD_REASON = {
    HoldReason.AWAITING_PAYMENT: _l("Awaiting payment"),
    HoldReason.HIGH_RISK_OF_FRAUD: _l("High risk of fraud"),
    HoldReason.INCORRECT_ADDRESS: _l("Incorrect address"),
    HoldReason.INVENTORY_OUT_OF_STOCK: _l("Inventory out of stock"),
    HoldReason.UNKNOWN_DELIVERY_DATE: _l("Unknown delivery date"),
    HoldReason.ONLINE_STORE_POST_PURCHASE_CROSS_SELL: _l("Post-purchase offer"),
    HoldReason.AWAITING_RETURN_ITEMS: _l("Awaiting returned items"),
    HoldReason.OTHER: _l("Other"),
}
REJECT_REASON = {
    RejectReason.INCORRECT_ADDRESS: _l("Incorrect address"),
    RejectReason.INVENTORY_OUT_OF_STOCK: _l("Inventory out of stock"),
    RejectReason.INELIGIBLE_PRODUCT: _l("Ineligible product"),
    RejectReason.UNDELIVERABLE_DESTINATION: _l("Undeliverable destination"),
    RejectReason.INVALID_SKU: _l("Invalid SKU"),
    RejectReason.ORDER_TOO_LARGE: _l("Order too large"),
    RejectReason.OTHER: _l("Other"),
}
RETURN_REASON = {
    ReturnReason.COLOR: _l("Color"),
    ReturnReason.DEFECTIVE: _l("Defective"),
    ReturnReason.NOT_AS_DESCRIBED: _l("Not as described"),
    ReturnReason.SIZE_TOO_LARGE: _l("Size too large"),
    ReturnReason.SIZE_TOO_SMALL: _l("Size too small"),
    ReturnReason.STYLE: _l("Style"),
    ReturnReason.UNWANTED: _l("Unwanted"),
    ReturnReason.WRONG_ITEM: _l("Wrong item"),
    ReturnReason.UNKNOWN: _l("Unknown"),
    ReturnReason.OTHER: _l("Other"),
}
TRANSACTION_KIND = {
    TransactionKind.AUTHORIZATION: _l("Authorization"),
    TransactionKind.CAPTURE: _l("Capture"),
    TransactionKind.SALE: _l("Sale"),
    TransactionKind.REFUND: _l("Refund"),
    TransactionKind.VOID: _l("Void"),
}
ACTOR = {
    Actor.MERCHANT: _l("Merchant"),
    Actor.SERVICE: _l("Fulfillment service"),
    Actor.SYSTEM: _l("System"),
    Actor.CUSTOMER: _l("Customer"),
}
# Timeline events by `kind`; the core writes these names (an unknown one is shown as it is).
EVENT_KIND = {
    "order.created": _l("Order imported"),
    "order.edited": _l("Order edited"),
    "order.cancelled": _l("Order cancelled"),
    "order.archived": _l("Order archived"),
    "order.unarchived": _l("Order unarchived"),
    "comment": _l("Comment"),
    "transaction.authorization": _l("Payment authorized"),
    "transaction.capture": _l("Payment captured"),
    "transaction.sale": _l("Payment received"),
    "transaction.refund": _l("Payment refunded"),
    "transaction.void": _l("Authorization voided"),
    "return.requested": _l("Customer requested a return"),
    "return.created": _l("Return created"),
    "return.approved": _l("Return approved"),
    "return.declined": _l("Return declined"),
    "return.inspection_completed": _l("Return inspection completed"),
    "return.closed": _l("Return closed"),
    "fulfillment_request.submitted": _l("Fulfillment requested"),
    "fulfillment_request.withdrawn": _l("Fulfillment request withdrawn"),
    "fulfillment_request.accepted": _l("Service accepted the request"),
    "fulfillment_request.rejected": _l("Service rejected the request"),
    "fulfillment_request.failed": _l("Fulfillment request not delivered"),
    "fulfillment_request.resubmitted": _l("Fulfillment request sent again"),
    "cancellation_request.submitted": _l("Cancellation requested"),
    "cancellation_request.accepted": _l("Cancellation accepted"),
    "cancellation_request.rejected": _l("Cancellation rejected"),
    "cancellation_request.failed": _l("Cancellation request not delivered"),
    "cancellation_request.resubmitted": _l("Cancellation request sent again"),
    "fulfillment_order.reverted": _l("Reverted to unfulfilled"),
    "merchant.message": _l("Message to the service"),
    "message.failed": _l("Message not delivered"),
    "fulfillment.created": _l("Items fulfilled"),
    "fulfillment.tracking_updated": _l("Tracking updated"),
    "fulfillment.event": _l("Shipment update"),
    "fulfillment_order.closed": _l("Service stopped fulfilling"),
    "fulfillment_order.message": _l("Message from the service"),
    "fulfillment_order.held": _l("Fulfillment held"),
    "fulfillment_order.hold_released": _l("Hold released"),
    "fulfillment_order.opened": _l("Fulfillment opened early"),
    "fulfillment_order.acknowledged": _l("Acknowledged"),
}
MERCHANT_MANAGED = _l("Merchant-managed")

# Badge tones: "success" done, "attention" waiting on the merchant, "critical" gone wrong,
# "info" under way; anything else is plain.
TONES = {
    OrderStatus.ARCHIVED: "plain",
    OrderStatus.CANCELLED: "critical",
    PaymentStatus.PENDING: "attention",
    PaymentStatus.AUTHORIZED: "attention",
    PaymentStatus.OVERDUE: "critical",
    PaymentStatus.EXPIRED: "critical",
    PaymentStatus.PAID: "success",
    PaymentStatus.PARTIALLY_PAID: "attention",
    PaymentMarker.EXPIRING: "attention",
    FulfillmentStatus.FULFILLED: "success",
    FulfillmentStatus.UNFULFILLED: "attention",
    FulfillmentStatus.PARTIALLY_FULFILLED: "attention",
    FulfillmentStatus.ON_HOLD: "critical",
    FulfillmentStatus.IN_PROGRESS: "info",
    ReturnStatus.RETURN_REQUESTED: "attention",
    ReturnStatus.RETURN_IN_PROGRESS: "info",
    RequestStatus.SUBMITTED: "info",
    RequestStatus.ACCEPTED: "info",
    RequestStatus.REJECTED: "critical",
    RequestStatus.CANCELLATION_REQUESTED: "attention",
    FOStatus.INCOMPLETE: "critical",
    ShipmentStatus.DELIVERED: "success",
    ShipmentStatus.FAILURE: "critical",
    ShipmentStatus.DELAYED: "attention",
}

GROUPS = {
    "order_status": ORDER_STATUS,
    "payment_status": PAYMENT_STATUS,
    "fulfillment_status": FULFILLMENT_STATUS,
    "return_status": RETURN_STATUS,
    "fo_status": FO_STATUS,
    "request_status": REQUEST_STATUS,
    "return_state": RETURN_STATE,
    "shipment_status": SHIPMENT_STATUS,
    "hold_reason": HOLD_REASON,
    "reject_reason": REJECT_REASON,
    "return_reason": RETURN_REASON,
    "transaction_kind": TRANSACTION_KIND,
    "actor": ACTOR,
    "event_kind": EVENT_KIND,
}


def label(group, value):
    """Return the page's word for `value` of `group`; a value the pages do not know, as it is.

    Translated once per request (one language per request): a page says the same few words
    hundreds of times.
    """
    said = g.setdefault("labels", {})
    key = (group, value)
    if key not in said:
        said[key] = str(GROUPS[group].get(value, value))
    return said[key]


def tone(value):
    """Return the badge tone of a status value."""
    return TONES.get(value, "plain")

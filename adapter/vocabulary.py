"""The adapter's words, named once: statuses, reasons, actions, message types and timeline kinds.

Values equal the text stored and sent, so a member compares equal to its string. The
transition table, the status rules, the list queries, the schemas (and with them the OpenAPI
enums) and the pages read them from here: a new status is added in one place.
"""

from enum import StrEnum


class FOStatus(StrEnum):
    """A fulfillment order's `status` (SPEC 2.3)."""

    OPEN = "open"
    SCHEDULED = "scheduled"
    ON_HOLD = "on_hold"
    IN_PROGRESS = "in_progress"
    INCOMPLETE = "incomplete"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class RequestStatus(StrEnum):
    """A fulfillment order's `request_status`: where its latest request stands (SPEC 2.3)."""

    UNSUBMITTED = "unsubmitted"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLATION_REQUESTED = "cancellation_requested"
    CANCELLATION_ACCEPTED = "cancellation_accepted"
    CANCELLATION_REJECTED = "cancellation_rejected"
    CLOSED = "closed"


class MerchantRequestKind(StrEnum):
    """What a merchant request asked the service."""

    FULFILLMENT = "fulfillment_request"
    CANCELLATION = "cancellation_request"


class MerchantRequestStatus(StrEnum):
    """The outcome of one merchant request (`merchant_requests[].status`)."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # the merchant took it back before an answer
    REVERTED = "reverted"  # the merchant reverted the FO to unfulfilled
    CANCELLED = "cancelled"  # an accepted request whose cancellation the service accepted
    CLOSED = "closed"  # the service gave up on the rest
    FAILED = "failed"  # the message could not be delivered


class Workflow(StrEnum):
    """How a fulfillment service works with requests; merchant-managed FOs have none."""

    NEW = "new"
    LEGACY = "legacy"
    MERCHANT_MANAGED = "merchant_managed"


class OrderStatus(StrEnum):
    """The values of an order's `order_status` list (SPEC 2.1)."""

    OPEN = "open"
    ARCHIVED = "archived"
    CANCELLED = "cancelled"


class PaymentStatus(StrEnum):
    """An order's `payment_status`, in SPEC 2.2's order of precedence."""

    VOIDED = "voided"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    PAID = "paid"
    PARTIALLY_PAID = "partially_paid"
    EXPIRED = "expired"
    AUTHORIZED = "authorized"
    OVERDUE = "overdue"
    PENDING = "pending"


class PaymentMarker(StrEnum):
    """A value of `payment_markers`."""

    EXPIRING = "expiring"


UNPAID = "unpaid"  # the payment filter that means any of UNPAID_STATUSES
UNPAID_STATUSES = (
    PaymentStatus.AUTHORIZED,
    PaymentStatus.PENDING,
    PaymentStatus.OVERDUE,
    PaymentStatus.EXPIRED,
    PaymentStatus.PARTIALLY_PAID,
)


class FulfillmentStatus(StrEnum):
    """An order's `fulfillment_status`, first match wins (SPEC 2.4)."""

    FULFILLED = "fulfilled"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    ON_HOLD = "on_hold"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    UNFULFILLED = "unfulfilled"


class ReturnStatus(StrEnum):
    """An order's `return_status`, most important open task first (SPEC 2.5)."""

    RETURN_REQUESTED = "return_requested"
    INSPECTION_COMPLETE = "inspection_complete"
    RETURN_IN_PROGRESS = "return_in_progress"
    RETURNED = "returned"


class ReturnState(StrEnum):
    """The `status` of one return."""

    REQUESTED = "requested"
    IN_PROGRESS = "in_progress"
    INSPECTION_COMPLETE = "inspection_complete"
    RETURNED = "returned"
    DECLINED = "declined"


class HoldReason(StrEnum):
    """Why a fulfillment order is on hold."""

    AWAITING_PAYMENT = "awaiting_payment"
    HIGH_RISK_OF_FRAUD = "high_risk_of_fraud"
    INCORRECT_ADDRESS = "incorrect_address"
    INVENTORY_OUT_OF_STOCK = "inventory_out_of_stock"
    UNKNOWN_DELIVERY_DATE = "unknown_delivery_date"
    ONLINE_STORE_POST_PURCHASE_CROSS_SELL = "online_store_post_purchase_cross_sell"
    AWAITING_RETURN_ITEMS = "awaiting_return_items"
    OTHER = "other"


class RejectReason(StrEnum):
    """Why a service rejected a fulfillment request."""

    INCORRECT_ADDRESS = "incorrect_address"
    INVENTORY_OUT_OF_STOCK = "inventory_out_of_stock"
    INELIGIBLE_PRODUCT = "ineligible_product"
    UNDELIVERABLE_DESTINATION = "undeliverable_destination"
    INVALID_SKU = "invalid_sku"
    ORDER_TOO_LARGE = "order_too_large"
    OTHER = "other"


class ReturnReason(StrEnum):
    """Why a customer returns a line."""

    COLOR = "color"
    DEFECTIVE = "defective"
    NOT_AS_DESCRIBED = "not_as_described"
    SIZE_TOO_LARGE = "size_too_large"
    SIZE_TOO_SMALL = "size_too_small"
    STYLE = "style"
    UNWANTED = "unwanted"
    WRONG_ITEM = "wrong_item"
    UNKNOWN = "unknown"
    OTHER = "other"


class ShipmentStatus(StrEnum):
    """A delivery event's `status`; later members win over earlier ones reported at the same instant."""

    LABEL_PURCHASED = "label_purchased"
    LABEL_PRINTED = "label_printed"
    CONFIRMED = "confirmed"
    READY_FOR_PICKUP = "ready_for_pickup"
    CARRIER_PICKED_UP = "carrier_picked_up"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPTED_DELIVERY = "attempted_delivery"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    FAILURE = "failure"


class TransactionKind(StrEnum):
    """What a payment transaction does."""

    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    SALE = "sale"
    REFUND = "refund"
    VOID = "void"


class Requester(StrEnum):
    """Who opened a return (`requested_by`)."""

    CUSTOMER = "customer"
    MERCHANT = "merchant"


class FOAction(StrEnum):
    """A merchant action on a fulfillment order, as `supported_actions` lists it (SPEC 2.3)."""

    REQUEST_FULFILLMENT = "request_fulfillment"
    CANCEL_FULFILLMENT_REQUEST = "cancel_fulfillment_request"
    REQUEST_CANCELLATION = "request_cancellation"
    REVERT_TO_UNFULFILLED = "revert_to_unfulfilled"
    MARK_AS_FULFILLED = "mark_as_fulfilled"
    HOLD = "hold"
    RELEASE_HOLD = "release_hold"
    OPEN = "open"
    SEND_MESSAGE = "send_message"


class OrderAction(StrEnum):
    """A merchant action on an order, as its `supported_actions` lists it (SPEC 3.1)."""

    EDIT = "edit"
    CANCEL = "cancel"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    MARK_AS_PAID = "mark_as_paid"
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"
    CREATE_RETURN = "create_return"
    ADD_COMMENT = "add_comment"


class ReturnAction(StrEnum):
    """A merchant action on a return, as its `supported_actions` lists it (SPEC 3.1)."""

    APPROVE = "approve"
    DECLINE = "decline"
    COMPLETE_INSPECTION = "complete_inspection"
    CLOSE = "close"


class MessageType(StrEnum):
    """The `type` of a message the adapter sends through the outbox."""

    FULFILLMENT_REQUEST_SUBMITTED = "fulfillment_request.submitted"
    FULFILLMENT_REQUEST_WITHDRAWN = "fulfillment_request.withdrawn"
    CANCELLATION_REQUEST_SUBMITTED = "cancellation_request.submitted"
    FULFILLMENT_ORDER_REVERTED = "fulfillment_order.reverted"
    MERCHANT_MESSAGE = "merchant.message"
    SHIPPING_CONFIRMATION = "shipping_confirmation"


class TimelineKind(StrEnum):
    """The `kind` of a timeline event (SPEC 6): every kind the adapter writes."""

    ORDER_CREATED = "order.created"
    ORDER_EDITED = "order.edited"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_ARCHIVED = "order.archived"
    ORDER_UNARCHIVED = "order.unarchived"
    COMMENT = "comment"
    TRANSACTION_AUTHORIZATION = "transaction.authorization"
    TRANSACTION_CAPTURE = "transaction.capture"
    TRANSACTION_SALE = "transaction.sale"
    TRANSACTION_REFUND = "transaction.refund"
    TRANSACTION_VOID = "transaction.void"
    RETURN_REQUESTED = "return.requested"
    RETURN_CREATED = "return.created"
    RETURN_APPROVED = "return.approved"
    RETURN_DECLINED = "return.declined"
    RETURN_INSPECTION_COMPLETED = "return.inspection_completed"
    RETURN_CLOSED = "return.closed"
    # A message sent to a service is recorded under its own type.
    FULFILLMENT_REQUEST_SUBMITTED = MessageType.FULFILLMENT_REQUEST_SUBMITTED.value
    FULFILLMENT_REQUEST_WITHDRAWN = MessageType.FULFILLMENT_REQUEST_WITHDRAWN.value
    FULFILLMENT_REQUEST_ACCEPTED = "fulfillment_request.accepted"
    FULFILLMENT_REQUEST_REJECTED = "fulfillment_request.rejected"
    FULFILLMENT_REQUEST_FAILED = "fulfillment_request.failed"
    FULFILLMENT_REQUEST_RESUBMITTED = "fulfillment_request.resubmitted"
    CANCELLATION_REQUEST_SUBMITTED = MessageType.CANCELLATION_REQUEST_SUBMITTED.value
    CANCELLATION_REQUEST_ACCEPTED = "cancellation_request.accepted"
    CANCELLATION_REQUEST_REJECTED = "cancellation_request.rejected"
    CANCELLATION_REQUEST_FAILED = "cancellation_request.failed"
    CANCELLATION_REQUEST_RESUBMITTED = "cancellation_request.resubmitted"
    FULFILLMENT_ORDER_REVERTED = MessageType.FULFILLMENT_ORDER_REVERTED.value
    MERCHANT_MESSAGE = MessageType.MERCHANT_MESSAGE.value
    MESSAGE_FAILED = "message.failed"
    FULFILLMENT_CREATED = "fulfillment.created"
    FULFILLMENT_TRACKING_UPDATED = "fulfillment.tracking_updated"
    FULFILLMENT_EVENT = "fulfillment.event"
    FULFILLMENT_ORDER_CLOSED = "fulfillment_order.closed"
    FULFILLMENT_ORDER_MESSAGE = "fulfillment_order.message"
    FULFILLMENT_ORDER_HELD = "fulfillment_order.held"
    FULFILLMENT_ORDER_HOLD_RELEASED = "fulfillment_order.hold_released"
    FULFILLMENT_ORDER_OPENED = "fulfillment_order.opened"
    FULFILLMENT_ORDER_ACKNOWLEDGED = "fulfillment_order.acknowledged"


class Actor(StrEnum):
    """Who caused a timeline event."""

    MERCHANT = "merchant"
    SERVICE = "service"
    SYSTEM = "system"
    CUSTOMER = "customer"

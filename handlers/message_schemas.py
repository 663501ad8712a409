"""Marshmallow schemas of the messages the adapter sends (SPEC 4.1): they document the outbox.

Each schema has the fields of the dict the core puts in the message's `data`
(adapter/fulfillment_orders.py and adapter/shipments.py), no more, so an unknown field is an
error and a test of what is actually enqueued notices any drift.
"""

from marshmallow import fields

from .schemas import AddressSchema, Id, Quantity, StrictSchema


def Sent(field, **kwargs):  # noqa: N802 - reads like a field class
    """Return `field`, always present in the message (its value may be null if `allow_none`)."""
    return field(required=True, **kwargs)


def Note(description):  # noqa: N802
    """Return the merchant's free-text note, always present, null when none was given."""
    return fields.String(required=True, allow_none=True, metadata={"description": description})


class RequestedLineSchema(StrictSchema):
    id = Id(required=True, metadata={"description": "The FO line id; a shipment names it."})
    line_item_id = Id(required=True)
    sku = Sent(fields.String, allow_none=True)
    title = Sent(fields.String)
    quantity = Quantity(required=True, metadata={"description": "What remains to ship of the line."})


class RequestedFulfillmentOrderSchema(StrictSchema):
    id = Id(required=True)
    order_id = Id(required=True)
    order_name = Sent(fields.String)
    destination = fields.Nested(
        AddressSchema, required=True, allow_none=True,
        metadata={"description": "The order's shipping address, as the merchant gave it."},
    )
    line_items = fields.List(fields.Nested(RequestedLineSchema), required=True)


class FulfillmentRequestSubmittedDataSchema(StrictSchema):
    request_id = Id(required=True, metadata={"description": "Name it in the answer (`request_id`)."})
    fulfillment_order = fields.Nested(RequestedFulfillmentOrderSchema, required=True)
    message = Note("The merchant's note to the service; never shown to the customer.")
    notify_customer = Sent(fields.Boolean)


class RequestNoteDataSchema(StrictSchema):
    request_id = Id(required=True)
    fulfillment_order_id = Id(required=True)
    message = Note("The merchant's note to the service.")


class RevertedLineSchema(StrictSchema):
    line_item_id = Id(required=True)
    quantity = Quantity(required=True)


class FulfillmentOrderRevertedDataSchema(StrictSchema):
    fulfillment_order_id = Id(required=True, metadata={"description": "The FO the service still holds."})
    message = Note("The merchant's note to the service.")
    line_items = fields.List(
        fields.Nested(RevertedLineSchema), required=True, allow_none=True,
        metadata={"description": "The quantities taken back; null when the whole FO was."},
    )


class MerchantMessageDataSchema(StrictSchema):
    fulfillment_order_id = Id(required=True)
    message = Sent(fields.String)


class NotifiedOrderSchema(StrictSchema):
    id = Id(required=True)
    name = Sent(fields.String)
    email = Sent(fields.String, allow_none=True)
    shipping_address = fields.Nested(AddressSchema, required=True, allow_none=True)


class ShippedLineSchema(StrictSchema):
    line_item_id = Id(required=True)
    sku = Sent(fields.String, allow_none=True)
    title = Sent(fields.String)
    quantity = Quantity(required=True)


class SentTrackingSchema(StrictSchema):
    number = Sent(fields.String, allow_none=True)
    company = Sent(fields.String, allow_none=True)
    url = Sent(fields.String, allow_none=True)


class ShippingConfirmationDataSchema(StrictSchema):
    order = fields.Nested(NotifiedOrderSchema, required=True)
    fulfillment_id = Id(required=True)
    line_items = fields.List(fields.Nested(ShippedLineSchema), required=True)
    tracking = fields.Nested(SentTrackingSchema, required=True)


SERVICE = "service"
NOTIFICATIONS = "notifications"

# type: (where it goes, data schema, what it means)
MESSAGES = {
    "fulfillment_request.submitted": (
        SERVICE, FulfillmentRequestSubmittedDataSchema(),
        "The merchant asks the service to fulfill these lines of an FO.",
    ),
    "fulfillment_request.withdrawn": (
        SERVICE, RequestNoteDataSchema(),
        "The merchant withdrew a request the service had not accepted yet.",
    ),
    "cancellation_request.submitted": (
        SERVICE, RequestNoteDataSchema(),
        "The merchant asks the service to cancel an accepted request; answer with"
        " `cancellation_request.accepted` or `.rejected`.",
    ),
    "fulfillment_order.reverted": (
        SERVICE, FulfillmentOrderRevertedDataSchema(),
        "The merchant took the FO (or some of its quantities) back: the service no longer ships them.",
    ),
    "merchant.message": (
        SERVICE, MerchantMessageDataSchema(),
        "A note from the merchant about an FO the service has seen.",
    ),
    "shipping_confirmation": (
        NOTIFICATIONS, ShippingConfirmationDataSchema(),
        "Sent to `notifications.url` when a shipment is recorded with `notify_customer`: tell the"
        " customer.",
    ),
}

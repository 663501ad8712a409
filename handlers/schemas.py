"""Marshmallow schemas: they validate what comes in, shape what goes out and document both."""

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from adapter.money import MAX_INTEGER_DIGITS
from adapter.times import parse_rfc3339
from adapter.vocabulary import (
    UNPAID,
    Actor,
    FOAction,
    FOStatus,
    FulfillmentStatus,
    HoldReason,
    MerchantRequestKind,
    MerchantRequestStatus,
    OrderAction,
    OrderStatus,
    PaymentMarker,
    PaymentStatus,
    RejectReason,
    Requester,
    RequestStatus,
    ReturnAction,
    ReturnReason,
    ReturnState,
    ReturnStatus,
    ShipmentStatus,
    TimelineKind,
    TransactionKind,
    Workflow,
)


def values(*vocabularies):
    """Return the text of every word of the given vocabularies (StrEnums or words), in order."""
    return tuple(str(word) for vocabulary in vocabularies for word in (
        vocabulary if isinstance(vocabulary, type) else [vocabulary]))


REJECT_REASONS = values(RejectReason)
MAX_TEXT = 5000
AMOUNT = rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,3}})?$"
AMOUNT_ERROR = (
    f'Must be a decimal string such as "12.50", with at most {MAX_INTEGER_DIGITS} digits before'
    " the point."
)
# Matched from the start of the text, as marshmallow does, and searched, as JSON Schema does.
NOT_BLANK = r"[\s\S]*\S"
BLANK_ERROR = "Must not be empty or blank."
MAX_JSON_ID = 2**53  # ids above this lose precision in JavaScript numbers


class UTCDateTime(fields.DateTime):
    """RFC 3339 out (`...Z`); in, RFC 3339 with an offset only, stored as naive UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        text = value.replace(tzinfo=None).isoformat(timespec="microseconds")
        return text.removesuffix(".000000") + "Z"

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class JSONBoolean(fields.Boolean):
    """A JSON `true` or `false`: never `1`, `"true"`, `"yes"` or `"on"`."""

    default_error_messages = {"invalid": "Must be true or false."}

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value


class QueryBoolean(fields.Boolean):
    """A query-string flag: exactly `true` or `false`."""

    default_error_messages = {"invalid": "Must be true or false."}

    def _deserialize(self, value, attr, data, **kwargs):
        if value not in ("true", "false"):
            raise self.make_error("invalid")
        return value == "true"


def Text(max=MAX_TEXT, **kwargs):  # noqa: N802 - reads like a field class
    """Return a string field with a sane length limit."""
    return fields.String(validate=validate.Length(max=max), **kwargs)


def NonBlank(max=MAX_TEXT, **kwargs):  # noqa: N802
    """Return a string field that must hold something besides whitespace (a key, a name)."""
    return fields.String(
        validate=[validate.Length(max=max), validate.Regexp(NOT_BLANK, error=BLANK_ERROR)], **kwargs
    )


def Amount(**kwargs):  # noqa: N802
    """Return a decimal-string amount field."""
    return fields.String(validate=validate.Regexp(AMOUNT, error=AMOUNT_ERROR), **kwargs)


def Id(**kwargs):  # noqa: N802
    """Return an integer id field."""
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_JSON_ID), **kwargs)


def Quantity(**kwargs):  # noqa: N802
    """Return a positive quantity field."""
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=1_000_000), **kwargs)


class StrictSchema(Schema):
    """Unknown fields are errors: a typo never silently loses data."""

    class Meta:
        unknown = RAISE


# ---- input --------------------------------------------------------------------------------


class AddressSchema(StrictSchema):
    name = Text(max=255, allow_none=True)
    company = Text(max=255, allow_none=True)
    address1 = Text(max=255, allow_none=True)
    address2 = Text(max=255, allow_none=True)
    city = Text(max=255, allow_none=True)
    province = Text(max=255, allow_none=True)
    province_code = Text(max=16, allow_none=True)
    zip = Text(max=32, allow_none=True)
    country = Text(max=255, allow_none=True)
    country_code = Text(max=2, allow_none=True)
    phone = Text(max=64, allow_none=True)


class NewLineItemSchema(StrictSchema):
    sku = Text(max=255, allow_none=True)
    title = NonBlank(max=1000, required=True)
    quantity = Quantity(required=True)
    price = Amount(required=True)
    fulfillment_service = NonBlank(max=64, allow_none=True, load_default=None)


class HoldSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.OneOf(values(HoldReason)))
    note = Text(allow_none=True)


class TransactionInSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(values(TransactionKind)))
    amount = Amount(allow_none=True)
    expires_at = UTCDateTime(allow_none=True)
    return_id = Id(allow_none=True)


class OrderInSchema(StrictSchema):
    name = NonBlank(max=255, allow_none=True)
    external_id = NonBlank(max=255, allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    currency = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="Must be an ISO 4217 code.")
    )
    shipping_address = fields.Nested(AddressSchema, allow_none=True)
    line_items = fields.List(
        fields.Nested(NewLineItemSchema), required=True, validate=validate.Length(min=1, max=500)
    )
    payment_due_at = UTCDateTime(allow_none=True)
    fulfill_at = UTCDateTime(allow_none=True)
    hold = fields.Nested(HoldSchema, allow_none=True)
    transactions = fields.List(fields.Nested(TransactionInSchema), validate=validate.Length(max=100))


class LineQuantitySchema(StrictSchema):
    id = Id(required=True)
    quantity = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=1_000_000))


class OrderEditSchema(StrictSchema):
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    shipping_address = fields.Nested(AddressSchema, allow_none=True)
    line_items = fields.List(fields.Nested(LineQuantitySchema), validate=validate.Length(max=500))
    add_line_items = fields.List(fields.Nested(NewLineItemSchema), validate=validate.Length(max=500))


class CancelOrderSchema(StrictSchema):
    reason = Text(allow_none=True)
    refund = JSONBoolean(load_default=False)


class ReturnLineInSchema(StrictSchema):
    line_item_id = Id(required=True)
    quantity = Quantity(required=True)
    reason = fields.String(
        load_default=str(ReturnReason.UNKNOWN), validate=validate.OneOf(values(ReturnReason))
    )


class ReturnInSchema(StrictSchema):
    requested_by = fields.String(required=True, validate=validate.OneOf(values(Requester)))
    line_items = fields.List(
        fields.Nested(ReturnLineInSchema), required=True, validate=validate.Length(min=1, max=500)
    )


class FOLineSchema(StrictSchema):
    id = Id(required=True, metadata={"description": "The FO line id."})
    quantity = Quantity(required=True)


class TrackingSchema(StrictSchema):
    number = NonBlank(max=255, allow_none=True)
    company = Text(max=255, allow_none=True)
    url = fields.URL(allow_none=True, schemes={"http", "https"}, validate=validate.Length(max=2000))


class FulfillmentRequestSchema(StrictSchema):
    message = Text(allow_none=True)
    notify_customer = JSONBoolean(load_default=False)
    line_items = fields.List(fields.Nested(FOLineSchema), allow_none=True)


class MessageOptionalSchema(StrictSchema):
    message = Text(allow_none=True)


class RevertSchema(StrictSchema):
    message = Text(allow_none=True)
    line_items = fields.List(fields.Nested(FOLineSchema), allow_none=True)


class MarkFulfilledSchema(StrictSchema):
    line_items = fields.List(fields.Nested(FOLineSchema), allow_none=True)
    tracking = fields.Nested(TrackingSchema, allow_none=True)
    notify_customer = JSONBoolean(load_default=False)


class HoldInSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.OneOf(values(HoldReason)))
    note = Text(allow_none=True)


class EmptySchema(StrictSchema):
    """No fields."""


class MessageSchema(StrictSchema):
    message = NonBlank(required=True)


class CommentInSchema(StrictSchema):
    message = NonBlank(required=True, metadata={"description": "The comment, kept verbatim."})


class CommaList(fields.List):
    """A query parameter holding comma-separated values (`a,b` = a or b)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Must be comma-separated values.")
        items = list(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
        if not items:
            raise ValidationError("Give at least one value.")
        if len(items) > 50:
            raise ValidationError("Give at most 50 values.")
        return super()._deserialize(items, attr, data, **kwargs)


def _comma_list(choices):
    return CommaList(fields.String(validate=validate.OneOf(choices)))


class OrderQuerySchema(StrictSchema):
    order_status = _comma_list(values(OrderStatus))
    payment_status = _comma_list(values(PaymentStatus, UNPAID, PaymentMarker))
    fulfillment_status = _comma_list(values(FulfillmentStatus))
    return_status = _comma_list(values(ReturnStatus))
    service = CommaList(fields.String(validate=validate.Length(min=1, max=64)))
    needs_attention = QueryBoolean()
    q = NonBlank(max=320, metadata={
        "description": "Exact order name (`#1001` or `1001`), external_id, email (any case),"
                       " shipping phone (digits only compared) or tracking number."})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=250))
    cursor = fields.String(validate=validate.Length(max=200))


# ---- webhooks from services -----------------------------------------------------------------


class EnvelopeSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.Length(max=100))
    timestamp = UTCDateTime(required=True)
    data = fields.Dict(required=True)


class WebhookSchema(StrictSchema):
    """Data fields may grow: services can send fields we do not know yet."""

    class Meta:
        unknown = "exclude"


class AcceptedSchema(WebhookSchema):
    fulfillment_order_id = Id(required=True)
    request_id = Id(allow_none=True)
    message = Text(allow_none=True)
    estimated_shipped_at = UTCDateTime(allow_none=True)


class RejectedSchema(WebhookSchema):
    fulfillment_order_id = Id(required=True)
    request_id = Id(allow_none=True)
    reason = fields.String(required=True, validate=validate.OneOf(REJECT_REASONS))
    message = Text(allow_none=True)


class FOMessageOptionalSchema(WebhookSchema):
    fulfillment_order_id = Id(required=True)
    message = Text(allow_none=True)


class FOMessageSchema(WebhookSchema):
    fulfillment_order_id = Id(required=True)
    message = NonBlank(required=True)


class ShipmentLineSchema(WebhookSchema):
    id = Id(required=True)
    quantity = Quantity(required=True)


class FulfillmentCreatedSchema(WebhookSchema):
    fulfillment_order_id = Id(required=True)
    external_id = NonBlank(max=255, required=True)
    line_items = fields.List(fields.Nested(ShipmentLineSchema), allow_none=True)
    tracking = fields.Nested(TrackingSchema, allow_none=True)
    notify_customer = JSONBoolean(load_default=False)
    message = Text(allow_none=True)


class TrackingUpdatedSchema(WebhookSchema):
    external_id = NonBlank(max=255, required=True)
    tracking = fields.Nested(TrackingSchema, required=True)
    notify_customer = JSONBoolean(load_default=False)


class ShipmentEventSchema(WebhookSchema):
    external_id = NonBlank(max=255, required=True)
    status = fields.String(required=True, validate=validate.OneOf(values(ShipmentStatus)))
    happened_at = UTCDateTime(required=True)
    message = Text(allow_none=True)
    estimated_delivery_at = UTCDateTime(allow_none=True)
    location = fields.Dict(allow_none=True)


WEBHOOK_DATA_SCHEMAS = {
    "fulfillment_request.accepted": AcceptedSchema(),
    "fulfillment_request.rejected": RejectedSchema(),
    "cancellation_request.accepted": FOMessageOptionalSchema(),
    "cancellation_request.rejected": FOMessageOptionalSchema(),
    "fulfillment.created": FulfillmentCreatedSchema(),
    "fulfillment.tracking_updated": TrackingUpdatedSchema(),
    "fulfillment.event": ShipmentEventSchema(),
    "fulfillment_order.closed": FOMessageOptionalSchema(),
    "fulfillment_order.message": FOMessageSchema(),
}


# ---- output -------------------------------------------------------------------------------


def OneOfString(*choices, **kwargs):  # noqa: N802 - reads like a field class
    """Return an output string field that the OpenAPI document lists as an enum of `choices`.

    `choices` are vocabularies or words, as `values` takes them.
    """
    return fields.String(validate=validate.OneOf(values(*choices)), **kwargs)


class HoldOutSchema(Schema):
    reason = OneOfString(HoldReason)
    note = fields.String(allow_none=True)


class FOLineOutSchema(Schema):
    id = fields.Integer()
    line_item_id = fields.Integer()
    sku = fields.String(allow_none=True)
    title = fields.String()
    quantity = fields.Integer()
    remaining_quantity = fields.Integer()


class RequestDeliveryOutSchema(Schema):
    """The message that carried a merchant request to the service (SPEC 9)."""

    status = fields.String(validate=validate.OneOf(("pending", "delivered", "failed")))
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    next_attempt_at = UTCDateTime(allow_none=True)


class MerchantRequestOutSchema(Schema):
    id = fields.Integer()
    kind = OneOfString(MerchantRequestKind)
    message = fields.String(allow_none=True)
    status = OneOfString(MerchantRequestStatus)
    sent_at = UTCDateTime()
    answered_at = UTCDateTime(allow_none=True)
    answer_message = fields.String(allow_none=True)
    delivery = fields.Nested(RequestDeliveryOutSchema, allow_none=True)


class FulfillmentOrderOutSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    service = fields.String(allow_none=True)
    workflow = OneOfString(Workflow.NEW, Workflow.LEGACY, allow_none=True)
    status = OneOfString(FOStatus)
    request_status = OneOfString(RequestStatus)
    fulfill_at = UTCDateTime(allow_none=True)
    hold = fields.Nested(HoldOutSchema, allow_none=True)
    needs_attention = fields.Boolean()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    line_items = fields.List(fields.Nested(FOLineOutSchema))
    supported_actions = fields.List(OneOfString(FOAction))
    merchant_requests = fields.List(fields.Nested(MerchantRequestOutSchema))


class TrackingOutSchema(Schema):
    number = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    url = fields.String(allow_none=True)


class FulfillmentLineOutSchema(Schema):
    line_item_id = fields.Integer()
    quantity = fields.Integer()


class ShipmentEventOutSchema(Schema):
    status = OneOfString(ShipmentStatus)
    happened_at = UTCDateTime()
    message = fields.String(allow_none=True)
    estimated_delivery_at = UTCDateTime(allow_none=True)
    location = fields.Dict(allow_none=True)


class FulfillmentOutSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    fulfillment_order_id = fields.Integer()
    external_id = fields.String(allow_none=True)
    created_by = OneOfString(Actor.SERVICE, Actor.MERCHANT)
    status = fields.String()
    shipment_status = OneOfString(ShipmentStatus, allow_none=True)
    estimated_delivery_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    tracking = fields.Nested(TrackingOutSchema)
    line_items = fields.List(fields.Nested(FulfillmentLineOutSchema))
    events = fields.List(fields.Nested(ShipmentEventOutSchema))


class TransactionOutSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    kind = OneOfString(TransactionKind)
    amount = fields.String()
    expires_at = UTCDateTime(allow_none=True)
    return_id = fields.Integer(allow_none=True)
    created_at = UTCDateTime()


class ReturnLineOutSchema(Schema):
    id = fields.Integer()
    line_item_id = fields.Integer()
    quantity = fields.Integer()
    reason = OneOfString(ReturnReason)


class ReturnOutSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    status = OneOfString(ReturnState)
    requested_by = OneOfString(Requester)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    line_items = fields.List(fields.Nested(ReturnLineOutSchema))
    supported_actions = fields.List(OneOfString(ReturnAction))


class LineItemOutSchema(Schema):
    id = fields.Integer()
    sku = fields.String(allow_none=True)
    title = fields.String()
    quantity = fields.Integer()
    price = fields.String()
    fulfillment_service = fields.String(allow_none=True)
    fulfilled_quantity = fields.Integer()


class OrderOutSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    external_id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    currency = fields.String()
    shipping_address = fields.Dict(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    cancelled_at = UTCDateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    order_status = fields.List(OneOfString(OrderStatus))
    payment_status = OneOfString(PaymentStatus)
    payment_markers = fields.List(OneOfString(PaymentMarker))
    fulfillment_status = OneOfString(FulfillmentStatus)
    return_status = OneOfString(ReturnStatus, allow_none=True)
    needs_attention = fields.Boolean()
    total_price = fields.String()
    amount_authorized = fields.String()
    amount_captured = fields.String()
    amount_refunded = fields.String()
    payment_due_at = UTCDateTime(allow_none=True)
    line_items = fields.List(fields.Nested(LineItemOutSchema))
    fulfillment_orders = fields.List(fields.Nested(FulfillmentOrderOutSchema))
    fulfillments = fields.List(fields.Nested(FulfillmentOutSchema))
    transactions = fields.List(fields.Nested(TransactionOutSchema))
    returns = fields.List(fields.Nested(ReturnOutSchema))
    supported_actions = fields.List(OneOfString(OrderAction))
    locked_by_fulfillment_order_id = fields.Integer(
        allow_none=True,
        metadata={"description": "The FO whose request in progress blocks edits, refunds and "
                  "cancellation."},
    )


class OrderListSchema(Schema):
    orders = fields.List(fields.Nested(OrderOutSchema))
    next_cursor = fields.String(allow_none=True)


class TimelineEventOutSchema(Schema):
    id = fields.Integer()
    at = UTCDateTime()
    actor = OneOfString(Actor)
    actor_name = fields.String(allow_none=True)
    kind = OneOfString(TimelineKind)
    fulfillment_order_id = fields.Integer(allow_none=True)
    message = fields.String(allow_none=True)
    data = fields.Dict()


class FulfillmentRequestResultSchema(Schema):
    submitted_fulfillment_order = fields.Nested(FulfillmentOrderOutSchema)
    unsubmitted_fulfillment_order = fields.Nested(FulfillmentOrderOutSchema, allow_none=True)


class MarkFulfilledResultSchema(Schema):
    fulfillment = fields.Nested(FulfillmentOutSchema)
    fulfillment_order = fields.Nested(FulfillmentOrderOutSchema)


class RevertResultSchema(Schema):
    fulfillment_order = fields.Nested(FulfillmentOrderOutSchema)
    unchanged_fulfillment_order = fields.Nested(FulfillmentOrderOutSchema, allow_none=True)
    warnings = fields.List(fields.String())


class WebhookResultSchema(Schema):
    status = fields.String()
    fulfillment_order = fields.Nested(FulfillmentOrderOutSchema)
    fulfillment = fields.Nested(FulfillmentOutSchema)


class FOStateSchema(Schema):
    id = fields.Integer()
    status = OneOfString(FOStatus)
    request_status = OneOfString(RequestStatus)


class ProblemSchema(Schema):
    """RFC 9457 problem; a 409 also says which FO and in what state, a 500 its request id."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    fulfillment_order_id = fields.Integer()
    current_status = fields.String()
    request_status = fields.String()
    fulfillment_order = fields.Nested(FOStateSchema)
    request_id = fields.String()


class HealthSchema(Schema):
    status = fields.String()


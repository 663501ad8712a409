"""Marshmallow schemas of the operator API: outbox messages and received webhooks (SPEC 9)."""

from marshmallow import Schema, fields, validate

from adapter.operator import STATES

from .schemas import StrictSchema, UTCDateTime

SERVICE_KEY = validate.Length(min=1, max=64)


class MessageQuerySchema(StrictSchema):
    state = fields.String(validate=validate.OneOf(STATES))
    service = fields.String(validate=SERVICE_KEY)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=250))
    cursor = fields.String(validate=validate.Length(max=200))


class OutboxMessageOutSchema(Schema):
    id = fields.Integer(metadata={"description": "The id `flask outbox` shows and takes."})
    message_id = fields.String(metadata={"description": "The webhook-id every attempt sends."})
    service = fields.String(metadata={"description": "A service key, or `notifications`."})
    type = fields.String()
    state = fields.String(validate=validate.OneOf(STATES))
    attempts = fields.Integer()
    next_attempt_at = UTCDateTime(allow_none=True,
                                  metadata={"description": "When a pending message is sent next."})
    last_status_code = fields.Integer(allow_none=True)
    last_answer = fields.String(allow_none=True,
                                metadata={"description": "The last answer's first 500 characters,"
                                          " or why the last attempt could not reach the service."})
    created_at = UTCDateTime()
    finished_at = UTCDateTime(allow_none=True)
    order_id = fields.Integer(allow_none=True)
    fulfillment_order_id = fields.Integer(allow_none=True)
    merchant_request_id = fields.Integer(allow_none=True)


class OutboxMessageDetailSchema(OutboxMessageOutSchema):
    body = fields.String(metadata={"description": "The JSON body exactly as it is sent and signed."})


class OutboxMessagePageSchema(Schema):
    messages = fields.List(fields.Nested(OutboxMessageOutSchema))
    next_cursor = fields.String(allow_none=True)


class DeliveryQuerySchema(StrictSchema):
    service = fields.String(validate=SERVICE_KEY)
    outcome = fields.String(validate=validate.Length(min=1, max=64),
                            metadata={"description": "`applied`, `replayed` or a problem code."})
    since = UTCDateTime(metadata={"description": "Received at or after this time."})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=250))
    cursor = fields.String(validate=validate.Length(max=200))


class DeliveryOutcomeSchema(Schema):
    status = fields.Integer(allow_none=True)
    code = fields.String(allow_none=True)


class WebhookDeliveryOutSchema(Schema):
    id = fields.Integer()
    service = fields.String()
    webhook_id = fields.String()
    received_at = UTCDateTime()
    outcome = fields.Nested(DeliveryOutcomeSchema)


class WebhookDeliveryDetailSchema(WebhookDeliveryOutSchema):
    headers = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "As received, less credentials and signatures."})
    body = fields.String(allow_none=True,
                         metadata={"description": "The raw body, when it is UTF-8 text."})
    body_base64 = fields.String(metadata={"description": "The raw body in base64, when it is not"
                                          " UTF-8 (then `body` is null)."})


class WebhookDeliveryPageSchema(Schema):
    deliveries = fields.List(fields.Nested(WebhookDeliveryOutSchema))
    next_cursor = fields.String(allow_none=True)

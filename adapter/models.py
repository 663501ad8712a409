"""Stored facts: orders, lines, fulfillment orders, shipments, money, returns, timeline, messages.

Amounts are integers in the currency's minor unit; times are naive UTC.
Columns marked "derived" are copies of pure functions of other rows, kept for
indexing and recomputed in the same transaction as any change.
"""

import json

import peewee

from . import prepared, search_keys
from .store import database


class JSONField(peewee.TextField):
    """JSON kept as UTF-8 text, exactly as given."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
        # UPDATE only the columns an operation changed: shorter statements, and two
        # operations touching different columns of one row never undo each other.
        only_save_dirty = True

    def save(self, force_insert=False, only=None):
        """Insert a new row, or write a stored row's changed columns, with SQL built once per shape."""
        if only is not None:
            return super().save(force_insert=force_insert, only=only)
        if self.id is None:
            values = {name: value for name, value in self.__data__.items() if name != "id"}
            self.id = prepared.insert_returning_id(type(self), **values)
            rows = 1
        elif force_insert or not self._dirty:
            return super().save(force_insert=force_insert, only=only)
        else:
            # Nothing reads the count: on PostgreSQL the UPDATE travels with the next statement.
            changed = {name: self.__data__.get(name) for name in self._dirty}
            prepared.update_later(type(self), {"id": self.id}, **changed)
            rows = None
        self._dirty.clear()
        return rows


class SchemaVersion(BaseModel):
    version = peewee.IntegerField()


class Order(BaseModel):
    name = peewee.CharField(max_length=255)
    external_id = peewee.CharField(max_length=255, null=True, unique=True)
    email = peewee.CharField(max_length=320, null=True)
    currency = peewee.CharField(max_length=3)
    shipping_address = JSONField(null=True)
    payment_due_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()
    archived = peewee.BooleanField(default=False)
    cancelled_at = peewee.DateTimeField(null=True)
    cancel_reason = peewee.TextField(null=True)
    total_minor = peewee.BigIntegerField()
    # derived: payment facts summed from transactions
    authorized_minor = peewee.BigIntegerField(default=0)
    captured_minor = peewee.BigIntegerField(default=0)
    refunded_minor = peewee.BigIntegerField(default=0)
    voided = peewee.BooleanField(default=False)
    auth_expires_at = peewee.DateTimeField(null=True)
    # derived: statuses without their clock-dependent part (see order_list.py)
    payment_state = peewee.CharField(max_length=32)
    fulfillment_state = peewee.CharField(max_length=32)
    scheduled_until = peewee.DateTimeField(null=True)
    return_state = peewee.CharField(max_length=32, null=True)
    needs_attention = peewee.BooleanField(default=False)
    # derived: what `GET /orders?q=` looks up (see search_keys.py), kept by `save`
    email_key = peewee.CharField(max_length=320, null=True)
    phone_key = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "orders"
        indexes = (
            (("name",), False),
            (("email_key",), False),
            (("phone_key",), False),
            (("archived", "id"), False),
            (("payment_state", "id"), False),
            # `expiring` reads a window of expiry times: its orders, however old the store.
            (("payment_state", "auth_expires_at"), False),
            (("fulfillment_state", "id"), False),
            (("return_state", "id"), False),
            (("needs_attention", "id"), False),
        )

    def save(self, force_insert=False, only=None):
        """Save, recomputing the search keys of the contact details written."""
        if self.id is None or "email" in self._dirty:
            self.email_key = search_keys.email_key(self.email)
        if self.id is None or "shipping_address" in self._dirty:
            self.phone_key = search_keys.phone_key_of_address(self.shipping_address)
        return super().save(force_insert=force_insert, only=only)


class LineItem(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="line_items", on_delete="CASCADE")
    sku = peewee.CharField(max_length=255, null=True)
    title = peewee.TextField()
    quantity = peewee.IntegerField()
    price_minor = peewee.BigIntegerField()
    fulfillment_service = peewee.CharField(max_length=64, null=True)


class FulfillmentOrder(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="fulfillment_orders", on_delete="CASCADE")
    service = peewee.CharField(max_length=64, null=True)
    workflow = peewee.CharField(max_length=16, null=True)
    status = peewee.CharField(max_length=32)
    request_status = peewee.CharField(max_length=32)
    fulfill_at = peewee.DateTimeField(null=True)
    hold_reason = peewee.CharField(max_length=64, null=True)
    hold_note = peewee.TextField(null=True)
    needs_attention = peewee.BooleanField(default=False)
    current_request_id = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()

    class Meta:
        indexes = (
            (("service", "order"), False),
            # The dispatcher's sweep reads the scheduled FOs whose `fulfill_at` has passed.
            (("status", "fulfill_at"), False),
        )


class FulfillmentOrderLine(BaseModel):
    fulfillment_order = peewee.ForeignKeyField(
        FulfillmentOrder, backref="lines", on_delete="CASCADE"
    )
    line_item = peewee.ForeignKeyField(LineItem, backref="fo_lines", on_delete="CASCADE")
    quantity = peewee.IntegerField()
    fulfilled_quantity = peewee.IntegerField(default=0)

    @property
    def remaining_quantity(self):
        return self.quantity - self.fulfilled_quantity


class MerchantRequest(BaseModel):
    fulfillment_order = peewee.ForeignKeyField(
        FulfillmentOrder, backref="merchant_requests", on_delete="CASCADE"
    )
    kind = peewee.CharField(max_length=32)
    message = peewee.TextField(null=True)
    status = peewee.CharField(max_length=32)
    sent_at = peewee.DateTimeField()
    answered_at = peewee.DateTimeField(null=True)
    answer_message = peewee.TextField(null=True)
    line_items = JSONField(null=True)

    class Meta:
        # An FO's latest request without reading the others (webhook answers, SPEC 4.2).
        indexes = ((("fulfillment_order", "id"), False),)


class Fulfillment(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="fulfillments", on_delete="CASCADE")
    fulfillment_order = peewee.ForeignKeyField(
        FulfillmentOrder, backref="fulfillments", on_delete="CASCADE"
    )
    service = peewee.CharField(max_length=64, null=True)
    external_id = peewee.CharField(max_length=255, null=True)
    created_by = peewee.CharField(max_length=16)
    status = peewee.CharField(max_length=16, default="success")
    shipment_status = peewee.CharField(max_length=32, null=True)
    shipment_status_at = peewee.DateTimeField(null=True)
    estimated_delivery_at = peewee.DateTimeField(null=True)
    tracking_number = peewee.TextField(null=True)
    tracking_company = peewee.TextField(null=True)
    tracking_url = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()

    class Meta:
        indexes = (
            (("service", "external_id"), True),
            # `GET /orders?q=` finds an order by the tracking number of any of its shipments.
            (("tracking_number",), False),
        )


class FulfillmentLine(BaseModel):
    fulfillment = peewee.ForeignKeyField(Fulfillment, backref="lines", on_delete="CASCADE")
    line_item = peewee.ForeignKeyField(LineItem, on_delete="CASCADE")
    quantity = peewee.IntegerField()


class ShipmentEvent(BaseModel):
    fulfillment = peewee.ForeignKeyField(Fulfillment, backref="events", on_delete="CASCADE")
    status = peewee.CharField(max_length=32)
    happened_at = peewee.DateTimeField()
    message = peewee.TextField(null=True)
    estimated_delivery_at = peewee.DateTimeField(null=True)
    location = JSONField(null=True)
    received_at = peewee.DateTimeField()


class Return(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="returns", on_delete="CASCADE")
    status = peewee.CharField(max_length=32)
    requested_by = peewee.CharField(max_length=16)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()

    class Meta:
        table_name = "returns"


class ReturnLine(BaseModel):
    return_ = peewee.ForeignKeyField(
        Return, backref="lines", column_name="return_id", on_delete="CASCADE"
    )
    line_item = peewee.ForeignKeyField(LineItem, on_delete="CASCADE")
    quantity = peewee.IntegerField()
    reason = peewee.CharField(max_length=64)


class Transaction(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="transactions", on_delete="CASCADE")
    kind = peewee.CharField(max_length=16)
    amount_minor = peewee.BigIntegerField()
    expires_at = peewee.DateTimeField(null=True)
    return_ = peewee.ForeignKeyField(
        Return, null=True, column_name="return_id", on_delete="SET NULL"
    )
    created_at = peewee.DateTimeField()


class TimelineEvent(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="timeline", on_delete="CASCADE")
    at = peewee.DateTimeField()
    actor = peewee.CharField(max_length=16)
    # The name of the merchant token that acted (`[[merchant.tokens]]`), else null.
    actor_name = peewee.CharField(max_length=255, null=True)
    kind = peewee.CharField(max_length=64)
    fulfillment_order_id = peewee.IntegerField(null=True)
    message = peewee.TextField(null=True)
    data = JSONField(null=True)


class OutboxMessage(BaseModel):
    """A message to a service or the notifications endpoint, stored with the change that caused it."""

    message_id = peewee.CharField(max_length=64, unique=True)
    target = peewee.CharField(max_length=64)
    type = peewee.CharField(max_length=64)
    body = peewee.TextField()
    order_id = peewee.IntegerField(null=True)
    fulfillment_order_id = peewee.IntegerField(null=True)
    request_id = peewee.IntegerField(null=True)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField()
    lease_until = peewee.DateTimeField(null=True)
    lease_token = peewee.CharField(max_length=64, null=True)
    # Who claimed it (claims.this_process): a dispatcher on the same host takes over at once
    # from a claimer that is gone instead of waiting out the lease.
    lease_holder = peewee.CharField(max_length=200, null=True)
    last_status_code = peewee.IntegerField(null=True)
    last_answer = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("status", "target", "next_attempt_at"), False),
            # The claim's per-FO order check looks up earlier messages of the same FO.
            (("target", "fulfillment_order_id", "id"), False),
            # The message that carried a merchant request (an FO's requests as rendered).
            (("request_id", "type"), False),
        )


class WebhookDelivery(BaseModel):
    """Every verified inbound delivery, kept for audit, export and replay."""

    service = peewee.CharField(max_length=64)
    webhook_id = peewee.CharField(max_length=255)
    headers = JSONField()
    body = peewee.BlobField()
    received_at = peewee.DateTimeField()
    outcome_status = peewee.IntegerField(null=True)
    outcome_code = peewee.CharField(max_length=64, null=True)

    class Meta:
        indexes = ((("service", "received_at"), False),)


class WebhookReceipt(BaseModel):
    """An applied delivery remembered by its id, so a redelivery replays the answer."""

    service = peewee.CharField(max_length=64)
    webhook_id = peewee.CharField(max_length=255)
    body_sha256 = peewee.CharField(max_length=64)
    response_status = peewee.IntegerField()
    response_body = peewee.TextField()
    applied_at = peewee.DateTimeField()

    class Meta:
        indexes = ((("service", "webhook_id"), True),)


ALL_MODELS = [
    SchemaVersion,
    Order,
    LineItem,
    FulfillmentOrder,
    FulfillmentOrderLine,
    MerchantRequest,
    Return,
    ReturnLine,
    Transaction,
    Fulfillment,
    FulfillmentLine,
    ShipmentEvent,
    TimelineEvent,
    OutboxMessage,
    WebhookDelivery,
    WebhookReceipt,
]

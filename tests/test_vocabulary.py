"""The vocabulary's words are the SPEC's, written out here by hand, and the OpenAPI document lists them."""

import pytest

from adapter import vocabulary

# Each list is transcribed from the SPEC section named beside it, in its order.
SPEC_WORDS = {
    "FOStatus": ("open", "scheduled", "on_hold", "in_progress", "incomplete", "closed",
                 "cancelled"),  # 2.3
    "RequestStatus": ("unsubmitted", "submitted", "accepted", "rejected", "cancellation_requested",
                      "cancellation_accepted", "cancellation_rejected", "closed"),  # 2.3
    "OrderStatus": ("open", "archived", "cancelled"),  # 2.1
    "PaymentStatus": ("voided", "refunded", "partially_refunded", "paid", "partially_paid",
                      "expired", "authorized", "overdue", "pending"),  # 2.2, by precedence
    "PaymentMarker": ("expiring",),  # 2.2
    "FulfillmentStatus": ("fulfilled", "partially_fulfilled", "on_hold", "scheduled", "in_progress",
                          "unfulfilled"),  # 2.4, first match wins
    "ReturnStatus": ("return_requested", "inspection_complete", "return_in_progress",
                     "returned"),  # 2.5, most important first
    "ReturnState": ("requested", "in_progress", "inspection_complete", "returned", "declined"),
    "HoldReason": ("awaiting_payment", "high_risk_of_fraud", "incorrect_address",
                   "inventory_out_of_stock", "unknown_delivery_date",
                   "online_store_post_purchase_cross_sell", "awaiting_return_items", "other"),
    "ReturnReason": ("color", "defective", "not_as_described", "size_too_large", "size_too_small",
                     "style", "unwanted", "wrong_item", "unknown", "other"),  # 3
    "TransactionKind": ("authorization", "capture", "sale", "refund", "void"),  # 3
    "Requester": ("customer", "merchant"),  # 3
    "FOAction": ("request_fulfillment", "cancel_fulfillment_request", "request_cancellation",
                 "revert_to_unfulfilled", "mark_as_fulfilled", "hold", "release_hold", "open",
                 "send_message"),  # 2.3
    "OrderAction": ("edit", "cancel", "archive", "unarchive", "mark_as_paid", "capture", "refund",
                    "void", "create_return", "add_comment"),  # 3.1
    "ReturnAction": ("approve", "decline", "complete_inspection", "close"),  # 3.1
    "Workflow": ("new", "legacy", "merchant_managed"),
    "ShipmentStatus": ("label_purchased", "label_printed", "confirmed", "ready_for_pickup",
                       "carrier_picked_up", "picked_up", "in_transit", "out_for_delivery",
                       "attempted_delivery", "delayed", "delivered", "failure"),  # 4.2, later wins
    "RejectReason": ("incorrect_address", "inventory_out_of_stock", "ineligible_product",
                     "undeliverable_destination", "invalid_sku", "order_too_large", "other"),
    "Actor": ("merchant", "service", "system", "customer"),
    "MessageType": ("fulfillment_request.submitted", "fulfillment_request.withdrawn",
                    "cancellation_request.submitted", "fulfillment_order.reverted",
                    "merchant.message", "shipping_confirmation"),
    # every kind the adapter writes on the timeline (SPEC 6)
    "TimelineKind": (
        "order.created", "order.edited", "order.cancelled", "order.archived", "order.unarchived",
        "comment", "transaction.authorization", "transaction.capture", "transaction.sale",
        "transaction.refund", "transaction.void", "return.requested", "return.created",
        "return.approved", "return.declined", "return.inspection_completed", "return.closed",
        "fulfillment_request.submitted", "fulfillment_request.withdrawn",
        "fulfillment_request.accepted", "fulfillment_request.rejected",
        "fulfillment_request.failed", "fulfillment_request.resubmitted",
        "cancellation_request.submitted", "cancellation_request.accepted",
        "cancellation_request.rejected", "cancellation_request.failed",
        "cancellation_request.resubmitted", "fulfillment_order.reverted", "merchant.message",
        "message.failed", "fulfillment.created", "fulfillment.tracking_updated", "fulfillment.event",
        "fulfillment_order.closed", "fulfillment_order.message", "fulfillment_order.held",
        "fulfillment_order.hold_released", "fulfillment_order.opened",
        "fulfillment_order.acknowledged",
    ),
}


@pytest.mark.parametrize("name", list(SPEC_WORDS))
def test_each_vocabulary_holds_exactly_the_words_written_here_in_their_order(name):
    assert [str(word) for word in getattr(vocabulary, name)] == list(SPEC_WORDS[name])


def test_the_unpaid_filter_stands_for_the_spec_statuses():
    assert vocabulary.UNPAID == "unpaid"
    assert set(vocabulary.UNPAID_STATUSES) == {
        "authorized", "pending", "overdue", "expired", "partially_paid"}


# (schema, property, vocabulary) whose values the OpenAPI document must list.
DOCUMENTED = [
    ("Order", "payment_status", "PaymentStatus"),
    ("Order", "fulfillment_status", "FulfillmentStatus"),
    ("Order", "return_status", "ReturnStatus"),
    ("Order", "order_status", "OrderStatus"),
    ("Order", "supported_actions", "OrderAction"),
    ("FulfillmentOrder", "status", "FOStatus"),
    ("FulfillmentOrder", "request_status", "RequestStatus"),
    ("FulfillmentOrder", "supported_actions", "FOAction"),
    ("Return", "status", "ReturnState"),
    ("Return", "supported_actions", "ReturnAction"),
    ("TimelineEvent", "kind", "TimelineKind"),
]


@pytest.mark.parametrize(("schema", "prop", "name"), DOCUMENTED,
                         ids=[f"{s}.{p}" for s, p, _ in DOCUMENTED])
def test_the_openapi_document_lists_the_words_of_each_status_field(api, schema, prop, name):
    document = api.get("/openapi.json").body
    [found] = [body for key, body in document["components"]["schemas"].items()
               if key.removesuffix("Out") == schema]
    field = found["properties"][prop]
    enum = field.get("items", field)["enum"]
    assert [word for word in enum if word is not None] == list(SPEC_WORDS[name])

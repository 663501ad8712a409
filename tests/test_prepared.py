"""Prepared statements store and read values exactly as the models' own queries do."""

from datetime import datetime

import pytest

from adapter import prepared, store
from adapter.models import TimelineEvent, WebhookDelivery, WebhookReceipt


@pytest.fixture
def db(app):
    with store.database.connection_context():
        yield


def test_a_row_inserted_by_a_prepared_statement_reads_back_through_the_model(create_order):
    order_id = create_order()["id"]
    at = datetime(2026, 11, 22, 3, 4, 5, 123456)
    with store.database.connection_context():
        prepared.insert_returning_id(
            TimelineEvent, order=order_id, at=at, actor="service", kind="k", fulfillment_order_id=None,
            message="é ✓", data={"nested": [1, {"a": None}]},
        )
        event = TimelineEvent.select().where(TimelineEvent.kind == "k").get()
    assert (event.order_id, event.at, event.message, event.data) == (
        order_id, at, "é ✓", {"nested": [1, {"a": None}]},
    )


def test_bytes_and_json_round_trip_and_select_by_equality(db):
    body = bytes(range(256))
    prepared.insert_returning_id(
        WebhookDelivery, service="acme", webhook_id="msg_1", headers={"x": "1"}, body=body,
        received_at=datetime(2026, 1, 1), outcome_status=None, outcome_code=None,
    )
    kept = prepared.get_or_none(WebhookDelivery, service="acme", webhook_id="msg_1")
    assert (bytes(kept.body), kept.headers, kept.received_at) == (body, {"x": "1"}, datetime(2026, 1, 1))
    assert prepared.get_or_none(WebhookDelivery, service="acme", webhook_id="msg_2") is None
    assert prepared.get_or_none(WebhookDelivery, service="other", webhook_id="msg_1") is None


def test_an_ignored_conflict_inserts_nothing_and_update_changes_only_matching_rows(db):
    receipt = {"body_sha256": "0" * 64, "response_status": 0, "response_body": "",
               "applied_at": datetime(2026, 1, 1)}
    def insert(service):
        return prepared.insert_returning_id(
            WebhookReceipt, conflict_on=("service", "webhook_id"), service=service, webhook_id="w", **receipt
        )

    first = insert("a")
    assert first is not None
    assert insert("a") is None
    assert insert("b") not in (None, first)
    changed = prepared.update(
        WebhookReceipt, {"service": "a", "webhook_id": "w"}, response_status=200, response_body="{}"
    )
    assert changed == 1
    answers = {(r.service, r.response_status, r.response_body) for r in WebhookReceipt.select()}
    assert answers == {("a", 200, "{}"), ("b", 0, "")}


def test_save_writes_only_the_changed_columns(db):
    fields = {"body_sha256": "0" * 64, "response_status": 0, "response_body": "",
              "applied_at": datetime(2026, 1, 1)}
    WebhookReceipt.create(service="a", webhook_id="w", **fields)
    first = WebhookReceipt.get(WebhookReceipt.webhook_id == "w")
    second = prepared.get_or_none(WebhookReceipt, service="a", webhook_id="w")
    first.response_status = 201
    second.response_body = "{}"
    first.save()
    second.save()
    assert second.save() is False  # nothing changed since
    stored = WebhookReceipt.get(WebhookReceipt.webhook_id == "w")
    assert (stored.response_status, stored.response_body) == (201, "{}")

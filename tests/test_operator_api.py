"""Operator API and CLI (SPEC 9): outbox messages listed and sent again, received webhooks read,
and the delivery state of each merchant request."""

import base64
import json
from datetime import timedelta

import pytest
import responses
from conftest import SERVICE_URLS, fo_of

from adapter.models import FulfillmentOrder, OutboxMessage, WebhookDelivery
from adapter.times import utcnow
from handlers.outbox_cli import outbox_cli


def request_fulfillment(api, fo_id):
    response = api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {"message": "hi"})
    assert response.status_code == 200, response.body
    return response.body


@pytest.fixture
def requested(api, create_order):
    """Create `n` orders and request fulfillment of each acme FO; return the FO ids."""

    def make(n=1):
        ids = []
        for _ in range(n):
            fo = fo_of(create_order(), "acme")
            request_fulfillment(api, fo["id"])
            ids.append(fo["id"])
        return ids

    return make


def answer(outbound, status):
    body = "nope" if status >= 300 else ""
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=status, body=body)


# ---- listing messages ----------------------------------------------------------------------------


def test_messages_are_listed_in_queue_order_a_page_at_a_time(api, requested):
    requested(5)
    seen, cursor = [], None
    for _ in range(4):
        page = api.get("/outbox/messages?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.body
        seen.extend(page.body["messages"])
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    ids = [message["id"] for message in seen]
    assert ids == sorted(ids) and len(ids) == 5
    assert {message["state"] for message in seen} == {"pending"}
    first = seen[0]
    stored = OutboxMessage.get_by_id(first["id"])
    assert first["message_id"] == stored.message_id
    assert first["service"] == "acme" and first["type"] == "fulfillment_request.submitted"
    assert first["next_attempt_at"] is not None and first["merchant_request_id"] == stored.request_id
    assert "body" not in first


def test_messages_filter_by_state_and_service(api, requested, outbound, deliver):
    requested(3)
    answer(outbound, 400)
    deliver()
    requested(2)

    def ids(query):
        response = api.get(f"/outbox/messages?{query}")
        assert response.status_code == 200, response.body
        return [message["id"] for message in response.body["messages"]]

    assert len(ids("state=failed")) == 3
    assert len(ids("state=pending")) == 2
    assert ids("state=delivered") == []
    assert len(ids("service=acme")) == 5
    assert ids("service=oldco") == []
    assert len(ids("state=failed&service=acme")) == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=sent", "state"), ("limit=0", "limit"), ("limit=251", "limit"), ("cursor=bad!", "cursor"),
     (f"cursor={base64.urlsafe_b64encode(b'd:1').decode()}", "cursor"),
     (f"cursor={base64.urlsafe_b64encode(b'm:0').decode()}", "cursor"),
     (f"cursor={base64.urlsafe_b64encode(b'm:99999999999999999999').decode()}", "cursor"),
     ("service=" + "x" * 65, "service"), ("colour=red", "colour")],
)
def test_a_bad_message_query_is_a_422_naming_the_field(api, query, field):
    response = api.get(f"/outbox/messages?{query}")
    assert response.status_code == 422, response.body
    assert field in response.body["errors"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/outbox/messages"), ("GET", "/outbox/messages/1"), ("POST", "/outbox/messages/1/retry"),
     ("GET", "/webhook_deliveries"), ("GET", "/webhook_deliveries/1")],
)
def test_the_operator_api_needs_a_merchant_token(api, method, path):
    assert api.call(method, path, token=None).status_code == 401
    assert api.call(method, path, token="wrong").status_code == 401


def test_a_message_is_read_with_its_body(api, requested):
    requested()
    message = OutboxMessage.get()
    response = api.get(f"/outbox/messages/{message.id}")
    assert response.status_code == 200
    assert response.body["body"] == message.body
    assert api.get("/outbox/messages/999999").status_code == 404


# ---- sending again ---------------------------------------------------------------------------------


def test_a_failed_message_is_sent_again_unchanged(api, requested, outbound, deliver):
    (fo_id,) = requested()
    answer(outbound, 400)
    deliver()
    message = OutboxMessage.get()
    assert message.status == "failed"
    assert api.get(f"/fulfillment_orders/{fo_id}").body["request_status"] == "unsubmitted"
    retried = api.post(f"/outbox/messages/{message.id}/retry")
    assert retried.status_code == 200, retried.body
    assert (retried.body["state"], retried.body["attempts"]) == ("pending", 0)
    assert api.get(f"/fulfillment_orders/{fo_id}").body["request_status"] == "submitted"
    answer(outbound, 200)
    assert deliver() == 1
    first, second = outbound.calls[-2:]
    assert first.request.headers["webhook-id"] == second.request.headers["webhook-id"] == message.message_id
    assert first.request.body == second.request.body
    assert OutboxMessage.get_by_id(message.id).status == "delivered"


def test_a_pending_message_is_sent_now_instead_of_at_its_next_attempt(api, requested, outbound, deliver):
    requested()
    answer(outbound, 503)
    deliver()
    message = OutboxMessage.get()
    assert message.status == "pending" and message.next_attempt_at > utcnow()
    assert deliver() == 0
    retried = api.post(f"/outbox/messages/{message.id}/retry")
    assert retried.status_code == 200
    assert retried.body["attempts"] == 1
    answer(outbound, 200)
    assert deliver() == 1
    assert OutboxMessage.get_by_id(message.id).status == "delivered"


def test_a_delivered_message_is_not_sent_again(api, requested, deliver):
    requested()
    deliver()
    message = OutboxMessage.get()
    response = api.post(f"/outbox/messages/{message.id}/retry")
    assert response.status_code == 409
    assert response.body["code"] == "invalid_transition"
    assert "delivered" in response.body["detail"]


def test_a_failed_message_whose_fo_moved_on_is_a_409_and_changes_nothing(api, requested, outbound, deliver):
    (fo_id,) = requested()
    answer(outbound, 400)
    deliver()
    message = OutboxMessage.get()
    # The merchant asked again since: a new request, a new message.
    request_fulfillment(api, fo_id)
    response = api.post(f"/outbox/messages/{message.id}/retry")
    assert response.status_code == 409, response.body
    assert "moved on" in response.body["detail"]
    assert OutboxMessage.get_by_id(message.id).status == "failed"


def test_retrying_an_unknown_message_is_a_404(api):
    assert api.post("/outbox/messages/424242/retry").status_code == 404


@pytest.mark.parametrize("ref", ["id", "message_id"])
def test_cli_retry_now_sends_a_pending_message_now(app, requested, outbound, deliver, ref):
    requested()
    answer(outbound, 503)
    deliver()
    message = OutboxMessage.get()
    runner = app.test_cli_runner()
    refused = runner.invoke(outbox_cli, ["retry", str(getattr(message, ref))])
    assert refused.exit_code == 1 and "is pending, not failed" in refused.output
    result = runner.invoke(outbox_cli, ["retry", "--now", str(getattr(message, ref))])
    assert result.exit_code == 0, result.output
    assert OutboxMessage.get_by_id(message.id).next_attempt_at <= utcnow()


# ---- the delivery state of each merchant request ---------------------------------------------------------


def delivery_of(api, fo_id):
    (request,) = api.get(f"/fulfillment_orders/{fo_id}").body["merchant_requests"]
    return request["delivery"]


def test_each_merchant_request_shows_the_delivery_of_its_message(api, requested, outbound, deliver):
    (fo_id,) = requested()
    assert delivery_of(api, fo_id) == {"status": "pending", "attempts": 0, "last_error": None,
                                       "next_attempt_at": OutboxMessage.get().next_attempt_at
                                       .isoformat(timespec="microseconds").removesuffix(".000000") + "Z"}
    answer(outbound, 503)
    deliver()
    waiting = delivery_of(api, fo_id)
    assert (waiting["status"], waiting["attempts"], waiting["last_error"]) == ("pending", 1, "nope")
    assert waiting["next_attempt_at"] > utcnow().isoformat()
    answer(outbound, 200)
    deliver(utcnow() + timedelta(minutes=1))
    assert delivery_of(api, fo_id) == {"status": "delivered", "attempts": 2, "last_error": None,
                                       "next_attempt_at": None}


def test_a_failed_request_shows_why(api, requested, outbound, deliver):
    (fo_id,) = requested()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=400, body="")
    deliver()
    assert delivery_of(api, fo_id) == {"status": "failed", "attempts": 1, "last_error": "HTTP 400",
                                       "next_attempt_at": None}
    order = api.get(f"/orders/{FulfillmentOrder.get_by_id(fo_id).order_id}").body
    assert fo_of(order, "acme")["merchant_requests"][0]["delivery"]["status"] == "failed"


def test_a_withdrawal_does_not_stand_for_the_request_it_withdraws(api, requested, deliver):
    (fo_id,) = requested()
    deliver()
    assert api.post(f"/fulfillment_orders/{fo_id}/cancel", {}).status_code == 200
    requests = api.get(f"/fulfillment_orders/{fo_id}").body["merchant_requests"]
    assert [request["delivery"]["status"] for request in requests] == ["delivered"]


# ---- received webhooks -----------------------------------------------------------------------------------


@pytest.fixture
def received(api, create_order, service):
    """Receive webhooks from acme: two applied, one refused; return the FO id."""
    fo = fo_of(create_order(), "acme")
    request_fulfillment(api, fo["id"])
    assert service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo["id"]}
                        ).status_code == 200
    assert service.send("acme", "fulfillment_order.message", {"fulfillment_order_id": fo["id"],
                                                              "message": "ok"}).status_code == 200
    assert service.send("acme", "no.such_type", {}).status_code == 422
    return fo["id"]


def test_received_webhooks_are_listed_a_page_at_a_time_and_filtered(api, received):
    seen, cursor = [], None
    while True:
        page = api.get("/webhook_deliveries?limit=1" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.body
        seen.extend(page.body["deliveries"])
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert [d["outcome"]["code"] for d in seen] == ["applied", "applied", "validation_failed"]
    assert "headers" not in seen[0] and "body" not in seen[0]
    refused = api.get("/webhook_deliveries?outcome=validation_failed").body["deliveries"]
    assert [d["outcome"] for d in refused] == [{"status": 422, "code": "validation_failed"}]
    assert api.get("/webhook_deliveries?service=oldco").body["deliveries"] == []
    later = (utcnow() + timedelta(minutes=1)).isoformat() + "Z"
    assert api.get(f"/webhook_deliveries?since={later}").body["deliveries"] == []
    earlier = (utcnow() - timedelta(minutes=1)).isoformat() + "Z"
    assert len(api.get(f"/webhook_deliveries?service=acme&since={earlier}").body["deliveries"]) == 3


def test_a_received_webhook_is_read_with_its_headers_and_raw_body(api, received):
    delivery = WebhookDelivery.select().order_by(WebhookDelivery.id).first()
    response = api.get(f"/webhook_deliveries/{delivery.id}")
    assert response.status_code == 200
    assert response.body["body"] == bytes(delivery.body).decode()
    assert json.loads(response.body["body"])["type"] == "fulfillment_request.accepted"
    assert response.body["headers"]["webhook-id"] == delivery.webhook_id
    assert "webhook-signature" not in response.body["headers"]
    assert api.get("/webhook_deliveries/999999").status_code == 404


def test_a_body_that_is_not_utf8_is_given_in_base64(api, received):
    raw = b"\xff\xfe not utf-8"
    delivery = WebhookDelivery.create(service="acme", webhook_id="msg_raw", headers={}, body=raw,
                                      received_at=utcnow(), outcome_status=400, outcome_code="malformed_json")
    body = api.get(f"/webhook_deliveries/{delivery.id}").body
    assert body["body"] is None
    assert base64.b64decode(body["body_base64"]) == raw


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("since=2026-01-01T00:00:00", "since"), ("limit=1000", "limit"),
     (f"cursor={base64.urlsafe_b64encode(b'm:1').decode()}", "cursor"),
     (f"cursor={base64.urlsafe_b64encode(b'd:nonsense|1').decode()}", "cursor"),
     (f"cursor={base64.urlsafe_b64encode(b'd:2026-01-01T00:00:00Z|x').decode()}", "cursor"),
     ("outcome=" + "x" * 65, "outcome")],
)
def test_a_bad_delivery_query_is_a_422_naming_the_field(api, query, field):
    response = api.get(f"/webhook_deliveries?{query}")
    assert response.status_code == 422, response.body
    assert field in response.body["errors"]

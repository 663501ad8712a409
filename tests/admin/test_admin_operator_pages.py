"""The operator's pages: the outbox with Retry now and the received webhooks, in both languages."""

import base64
import re

import pytest
import responses
from conftest import SERVICE_URLS, fo_of

from adapter.models import OutboxMessage, WebhookDelivery
from adapter.times import utcnow

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def request_fulfillment(api, fo_id):
    response = api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {"message": "hi"})
    assert response.status_code == 200, response.body


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


def answer(outbound, status, body="nope"):
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=status, body=body)


def rows(html):
    """Return the outbox message ids listed on a page, in order."""
    return [int(found) for found in re.findall(r'<tr id="message-(\d+)"', html)]


def retry_buttons(html):
    return re.findall(r'action="/admin/outbox/(\d+)/retry"', html)


def test_outbox_lists_pending_and_failed_with_attempts_last_answer_and_next_attempt(
    admin, requested, outbound, deliver
):
    requested(2)
    answer(outbound, 400, "unknown sku")
    deliver()
    requested(1)
    answer(outbound, 503, "busy, come back later")
    deliver()
    requested(1)
    answer(outbound, 200, "")
    deliver()
    failed, pending, delivered = (
        [m.id for m in OutboxMessage.select().where(OutboxMessage.status == status)]
        for status in ("failed", "pending", "delivered"))
    assert (len(failed), len(pending), len(delivered)) == (2, 1, 1)
    page = admin.get("/admin/outbox")
    assert page.status_code == 200
    assert rows(page.html) == sorted(failed + pending)
    assert "unknown sku" in page.html and "HTTP 400" in page.html
    assert "busy, come back later" in page.html and "HTTP 503" in page.html
    waiting = OutboxMessage.get_by_id(pending[0])
    assert f'<time datetime="{waiting.next_attempt_at.isoformat()}">' in page.html
    assert sorted(int(i) for i in retry_buttons(page.html)) == sorted(failed + pending)
    assert "Retry now" in page.html


@pytest.mark.parametrize("query, expected", [
    ("state=failed", "failed"), ("state=pending", "pending"), ("state=delivered", "delivered"),
    ("state=all", "all"), ("service=acme", "waiting"), ("service=oldco", "none"),
    ("state=failed&service=acme", "failed"),
])
def test_outbox_filters_by_state_and_service(admin, requested, outbound, deliver, query, expected):
    requested(2)
    answer(outbound, 400)
    deliver()
    requested(1)
    answer(outbound, 200, "")
    deliver()
    requested(1)
    ids = {status: [m.id for m in OutboxMessage.select().where(OutboxMessage.status == status)]
           for status in ("failed", "pending", "delivered")}
    ids["waiting"] = ids["failed"] + ids["pending"]
    ids["all"] = ids["waiting"] + ids["delivered"]
    ids["none"] = []
    page = admin.get(f"/admin/outbox?{query}")
    assert page.status_code == 200
    assert rows(page.html) == sorted(ids[expected])


@pytest.mark.parametrize("query", ["state=sent", "after=abc", "after=0", "service=" + "x" * 65])
def test_outbox_with_an_unknown_filter_is_a_422_page(admin, query):
    page = admin.get(f"/admin/outbox?{query}")
    assert page.status_code == 422
    assert "A filter has a value the list does not know" in page.html


def test_outbox_is_paged_by_keyset(admin, requested, monkeypatch):
    from handlers.admin import operator_pages

    monkeypatch.setattr(operator_pages, "PAGE_SIZE", 2)
    requested(5)
    seen, path = [], "/admin/outbox"
    while path:
        page = admin.get(path)
        seen += rows(page.html)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == sorted(m.id for m in OutboxMessage.select()) and len(seen) == 5


def test_retry_now_sends_a_failed_message_again_and_redirects_with_a_flash(
    admin, requested, outbound, deliver
):
    requested()
    answer(outbound, 400)
    deliver()
    message = OutboxMessage.get()
    response = admin.post_form(f"/admin/outbox/{message.id}/retry", {"state": "failed"},
                               from_page="/admin/outbox")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/outbox?state=failed#message-{message.id}"
    stored = OutboxMessage.get_by_id(message.id)
    assert (stored.status, stored.attempts) == ("pending", 0)
    page = admin.get("/admin/outbox")
    assert f"Message {message.id} will be sent now." in page.html
    answer(outbound, 200, "")
    assert deliver() == 1
    first, second = outbound.calls[-2:]
    assert first.request.headers["webhook-id"] == second.request.headers["webhook-id"]
    assert first.request.body == second.request.body


def test_retry_now_sends_a_pending_message_now(admin, requested, outbound, deliver):
    requested()
    answer(outbound, 503)
    deliver()
    message = OutboxMessage.get()
    assert message.next_attempt_at > utcnow()
    response = admin.post_form(f"/admin/outbox/{message.id}/retry", from_page="/admin/outbox")
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/outbox#")
    assert OutboxMessage.get_by_id(message.id).next_attempt_at <= utcnow()


@pytest.mark.parametrize("case, words", [
    ("delivered", "This message was delivered already"),
    ("moved_on", "This message no longer applies"),
])
def test_a_refused_retry_shows_a_banner_and_changes_nothing(
    admin, api, requested, outbound, deliver, case, words
):
    (fo_id,) = requested()
    answer(outbound, 200 if case == "delivered" else 400, "")
    deliver()
    message = OutboxMessage.get()
    if case == "moved_on":
        request_fulfillment(api, fo_id)
    before = OutboxMessage.get_by_id(message.id).__data__
    response = admin.post_form(f"/admin/outbox/{message.id}/retry", {"state": "all"},
                               from_page="/admin/outbox")
    assert response.status_code == 409
    assert 'data-banner="retry_refused"' in response.html and words in response.html
    assert f'id="message-{message.id}"' in response.html
    assert OutboxMessage.get_by_id(message.id).__data__ == before


def test_retrying_an_unknown_message_is_a_404_page(admin):
    response = admin.post_form("/admin/outbox/424242/retry", from_page="/admin/outbox")
    assert response.status_code == 404


def test_retry_without_the_csrf_token_is_refused_and_changes_nothing(admin, requested, outbound, deliver):
    requested()
    answer(outbound, 400)
    deliver()
    message = OutboxMessage.get()
    response = admin.post_form(f"/admin/outbox/{message.id}/retry", from_page=None)
    assert response.status_code == 400
    assert OutboxMessage.get_by_id(message.id).status == "failed"


@pytest.mark.parametrize("path", ["/admin/outbox", "/admin/webhooks", "/admin/webhooks/1"])
def test_the_operator_pages_need_a_session(visitor, path):
    response = visitor.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_retry_without_a_session_changes_nothing(visitor, requested, outbound, deliver):
    requested()
    answer(outbound, 400)
    deliver()
    message = OutboxMessage.get()
    response = visitor.client.post(f"/admin/outbox/{message.id}/retry")
    assert response.status_code == 302
    assert OutboxMessage.get_by_id(message.id).status == "failed"


def test_a_hostile_last_answer_is_shown_as_text(admin, requested, outbound, deliver):
    requested()
    answer(outbound, 400, HOSTILE)
    deliver()
    page = admin.get("/admin/outbox")
    assert ESCAPED in page.html and HOSTILE not in page.html


@pytest.fixture
def received(api, create_order, service):
    """Receive webhooks from acme: one applied, one refused, one with a hostile body."""
    fo = fo_of(create_order(), "acme")
    request_fulfillment(api, fo["id"])
    assert service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo["id"]}
                        ).status_code == 200
    assert service.send("acme", "no.such_type", {"note": HOSTILE}).status_code == 422
    return [d.id for d in WebhookDelivery.select().order_by(WebhookDelivery.id)]


@pytest.mark.parametrize("query, outcomes", [
    ("", ["applied", "validation_failed"]),
    ("outcome=applied", ["applied"]),
    ("outcome=validation_failed", ["validation_failed"]),
    ("service=acme&outcome=applied", ["applied"]),
    ("service=oldco", []),
])
def test_received_webhooks_are_listed_by_service_and_outcome(admin, received, query, outcomes):
    page = admin.get(f"/admin/webhooks?{query}")
    assert page.status_code == 200
    listed = [int(i) for i in re.findall(r'href="/admin/webhooks/(\d+)"', page.html)]
    expected = [d.id for d in WebhookDelivery.select().order_by(WebhookDelivery.id)
                if d.outcome_code in outcomes]
    assert listed == expected
    words = {"applied": "Applied", "validation_failed": "Refused: invalid data"}
    for outcome in outcomes:
        assert words[outcome] in page.html


def test_received_webhooks_are_paged_by_keyset(admin, received, monkeypatch):
    from handlers.admin import operator_pages

    monkeypatch.setattr(operator_pages, "PAGE_SIZE", 1)
    first = admin.get("/admin/webhooks")
    following = re.search(r'<a href="([^"]+)" rel="next">', first.html).group(1)
    second = admin.get(following.replace("&amp;", "&"))
    assert re.findall(r'href="/admin/webhooks/(\d+)"', second.html) == [str(received[1])]
    assert 'rel="next"' not in second.html
    assert admin.get("/admin/webhooks?after=999999").status_code == 422


def test_a_received_webhook_shows_its_headers_and_raw_body_as_text(admin, received):
    delivery = WebhookDelivery.get_by_id(received[1])
    page = admin.get(f"/admin/webhooks/{delivery.id}")
    assert page.status_code == 200
    assert delivery.webhook_id in page.html and "webhook-timestamp" in page.html
    assert "webhook-signature" not in page.html
    assert ESCAPED in page.html
    assert HOSTILE not in page.html


def test_a_body_that_is_not_utf8_is_shown_in_base64(admin):
    raw = b"\xff\xfe <img src=x>"
    delivery = WebhookDelivery.create(service="acme", webhook_id="msg_raw", headers={"x-test": HOSTILE},
                                      body=raw, received_at=utcnow(), outcome_status=400,
                                      outcome_code="malformed_json")
    page = admin.get(f"/admin/webhooks/{delivery.id}")
    assert base64.b64encode(raw).decode() in page.html
    assert "base64" in page.html and ESCAPED in page.html and HOSTILE not in page.html


def test_an_unknown_received_webhook_is_a_404_page(admin):
    assert admin.get("/admin/webhooks/999999").status_code == 404


def test_thai_pages_speak_thai_with_buddhist_era_dates(admin, requested, outbound, deliver, received):
    answer(outbound, 503)
    deliver()
    admin.get("/admin/language/th")
    outbox = admin.get("/admin/outbox").html
    assert "ลองอีกครั้งตอนนี้" in outbox and "Retry now" not in outbox
    year = utcnow().year
    assert f" {year + 543} " in outbox and f" {year} " not in outbox
    webhooks = admin.get("/admin/webhooks").html
    assert f" {year + 543} " in webhooks and "Applied" not in webhooks
    for html in (outbox, webhooks):
        assert 'href="/admin/outbox"' in html and 'href="/admin/webhooks"' in html

"""The operator reads the outbox and the received webhooks in a browser, and presses Retry now."""

import pytest
import responses
from conftest import SERVICE_URLS, TOKEN, fo_of
from playwright.sync_api import expect

from adapter.models import OutboxMessage
from handlers.admin import signin
from handlers.admin.throttle import FailedSignIns

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    """Each test starts with no failed sign-ins counted."""
    monkeypatch.setattr(signin, "failed_sign_ins", FailedSignIns())


@pytest.fixture
def traffic(api, create_order, service, outbound, deliver):
    """Two requests the service refused (one with a hostile answer), one it asked to send later,
    and webhooks received from it: applied and refused."""
    for status, body in ((400, HOSTILE), (400, "unknown SKU ABC-1")):
        fo = fo_of(create_order(), "acme")
        assert api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {}).status_code == 200
        outbound.replace(responses.POST, SERVICE_URLS["acme"], status=status, body=body)
        deliver()
    fo = fo_of(create_order(), "acme")
    assert api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {}).status_code == 200
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503, body="busy")
    deliver()
    assert service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo["id"]}
                        ).status_code == 200
    assert service.send("acme", "no.such_type", {"note": HOSTILE}).status_code == 422
    return [m.id for m in OutboxMessage.select().order_by(OutboxMessage.id)]


def sign_in(page):
    page.goto("/admin/login")
    page.get_by_label("Merchant API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("language, words", [
    ("en", {"outbox": "Outbox", "webhooks": "Received webhooks", "retry": "Retry now",
            "done": "will be sent now", "refused": "Refused: invalid data", "body": "Body"}),
    ("th", {"outbox": "ข้อความขาออก", "webhooks": "เว็บฮุกที่ได้รับ", "retry": "ลองอีกครั้งตอนนี้",
            "done": "จะถูกส่งตอนนี้", "refused": "ถูกปฏิเสธ: ข้อมูลไม่ถูกต้อง", "body": "เนื้อหา"}),
])
def test_outbox_and_received_webhooks_in_each_language_with_retry_now(page, traffic, screenshot,
                                                                       language, words):
    sign_in(page)
    if language == "th":
        page.get_by_role("link", name="ไทย").click()
    page.get_by_role("navigation").get_by_role("link", name=words["outbox"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words["outbox"])
    hostile_row = page.locator(f"#message-{traffic[0]}")
    # Shown as text: no image was made of it.
    expect(hostile_row.locator("pre.verbatim")).to_have_text(HOSTILE)
    assert page.locator("img").count() == 0
    screenshot(page, f"operator-outbox-{language}")
    # Every column, the Retry button included, shows without a sideways scroll.
    assert page.locator(".table-wrap").evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth")

    hostile_row.get_by_role("button", name=words["retry"]).click()
    expect(page.locator(".flash-success")).to_contain_text(words["done"])
    expect(page.locator(f"#message-{traffic[0]}")).to_contain_text("0")
    assert OutboxMessage.get_by_id(traffic[0]).status == "pending"
    screenshot(page, f"operator-outbox-retried-{language}")

    page.get_by_role("navigation").get_by_role("link", name=words["webhooks"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words["webhooks"])
    expect(page.locator("table.operator")).to_contain_text(words["refused"])
    screenshot(page, f"operator-webhooks-{language}")
    page.locator("table.operator tbody tr").last.get_by_role("link").click()
    expect(page.get_by_role("heading", name=words["body"])).to_be_visible()
    expect(page.locator("pre.raw-body")).to_contain_text(HOSTILE)
    assert page.locator("img").count() == 0
    screenshot(page, f"operator-webhook-delivery-{language}")

"""The merchant works on the order page in a browser while a fake service answers by signed webhooks."""

import re
import secrets

import pytest
from conftest import TOKEN, fo_of
from playwright.sync_api import expect
from test_protocol import goods_at

from handlers.admin import signin
from handlers.admin.throttle import FailedSignIns

LIVE_MS = 5_000  # SPEC 8: a service's answer shows within 5 seconds without a reload
LONG_THAI = ("ลูกค้าขอให้ห่อของขวัญและแนบการ์ดอวยพรวันเกิดพร้อมข้อความว่าสุขสันต์วันเกิดนะคะคุณแม่"
             "ขอให้มีความสุขมากๆสุขภาพแข็งแรงตลอดไปและกรุณาจัดส่งก่อนวันศุกร์นี้เพราะเป็นวันเกิดพอดี")


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    """Each test starts with no failed sign-ins counted."""
    monkeypatch.setattr(signin, "failed_sign_ins", FailedSignIns())


def sign_in(page, language="en"):
    """Sign in in a language; the language's own name is the switch's link."""
    page.goto("/admin/login")
    if language == "th":
        page.get_by_role("link", name="ไทย").click()
        page.get_by_label("โทเค็น API ของร้านค้า").fill(TOKEN)
        page.get_by_role("button", name="เข้าสู่ระบบ").click()
    else:
        page.get_by_label("Merchant API token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()


def open_order(page, order):
    page.goto(f"/admin/orders/{order['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(order["name"])
    # A reload would forget this: it proves what shows later came without one.
    page.evaluate("window.notReloaded = true")


def still_the_same_page(page):
    assert page.evaluate("window.notReloaded === true")


def card(page, fo_id):
    return page.locator(f"#fo-{fo_id}")


def offered(page, fo_id, name):
    """Return the card's button of that name, drawn even while its form is folded."""
    return card(page, fo_id).get_by_role("button", name=name, exact=True, include_hidden=True)


def act(page, fo_id, name, fields=None):
    """Open an action's form on an FO card, fill it and send it with the button of that name."""
    summary = card(page, fo_id).locator("summary", has_text=re.compile(f"^{re.escape(name)}$"))
    form = card(page, fo_id)
    if summary.count():
        form = summary.locator("..")
        if form.get_attribute("open") is None:
            summary.click()
    for label, value in (fields or {}).items():
        field = form.get_by_label(label, exact=True)
        if value is True:
            field.check()
        elif field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(label=value)
        else:
            field.fill(value)
    form.get_by_role("button", name=name, exact=True).click()


def tell(service, event_type, **data):
    """Send a signed webhook as the fulfillment service does."""
    response = service.send("acme", event_type, data, webhook_id=f"msg_{secrets.token_hex(8)}")
    assert response.status_code == 200, response.body


def test_request_accepted_live_cancellation_rejected_live_then_shipment_with_tracking(
    page, api, create_order, service, screenshot
):
    order = create_order()
    acme = fo_of(order, "acme")["id"]
    sign_in(page)
    open_order(page, order)
    screenshot(page, "order-actions-open-en")
    act(page, acme, "Request fulfillment", {"Note to the service (not sent to the customer)": "Gift wrap"})
    expect(page.get_by_text("Fulfillment requested. The service will answer on this page.")).to_be_visible()
    expect(card(page, acme).get_by_text("Submitted", exact=True)).to_be_visible()
    page.evaluate("window.notReloaded = true")

    tell(service, "fulfillment_request.accepted", fulfillment_order_id=acme, message="Picking today")
    expect(card(page, acme).get_by_text("Accepted", exact=True)).to_be_visible(timeout=LIVE_MS)
    expect(card(page, acme).get_by_role("button", name="Cancel fulfillment request")).to_have_count(0)
    # The flash spoke of the request; the service's answer replaces it.
    expect(page.get_by_text("Fulfillment requested. The service will answer on this page.")).to_have_count(0)
    still_the_same_page(page)

    act(page, acme, "Request cancellation",
        {"Note to the service (not sent to the customer)": "Customer changed their mind"})
    expect(card(page, acme).get_by_text("Cancellation requested", exact=True)).to_be_visible()
    page.evaluate("window.notReloaded = true")
    tell(service, "cancellation_request.rejected", fulfillment_order_id=acme,
         message="Already packed, sorry")
    banner = card(page, acme).locator('[data-banner="cancellation_rejected"]')
    expect(banner).to_contain_text("Cancellation rejected", timeout=LIVE_MS)
    expect(banner).to_contain_text("Already packed, sorry")

    lines = api.get(f"/fulfillment_orders/{acme}").body["line_items"]
    tell(service, "fulfillment.created", fulfillment_order_id=acme, external_id="box-1",
         line_items=[{"id": line["id"], "quantity": line["quantity"]} for line in lines],
         tracking={"number": "TH555", "company": "Kerry", "url": "https://track.example/TH555"})
    expect(card(page, acme).get_by_role("link", name="TH555")).to_have_attribute(
        "href", "https://track.example/TH555", timeout=LIVE_MS)
    expect(page.locator(".order-head")).to_contain_text("Partially fulfilled")
    still_the_same_page(page)
    screenshot(page, "order-actions-shipped-en")

    # The carrier's scans: the card shows the latest, the rest one link away.
    for hour, status, note in ((9, "in_transit", "Left the Bangkok hub"),
                               (15, "out_for_delivery", "With the driver Somchai")):
        tell(service, "fulfillment.event", external_id="box-1", status=status, message=note,
             happened_at=f"2026-12-05T{hour:02}:00:00Z")
    shipment = card(page, acme).locator("section.shipment")
    expect(shipment.locator("ol.events li")).to_have_count(1, timeout=LIVE_MS)
    expect(shipment.locator("ol.events")).to_contain_text("With the driver Somchai")
    expect(shipment.locator("h3")).to_contain_text("Out for delivery")
    still_the_same_page(page)
    screenshot(page, "order-actions-delivery-latest-en")
    shipment.get_by_role("link", name="Show all 2 delivery events").click()
    expect(shipment.locator("ol.events li")).to_have_count(2)
    expect(shipment.locator("ol.events li").last).to_contain_text("Left the Bangkok hub")
    screenshot(page, "order-actions-delivery-history-en")
    page.get_by_role("link", name="ไทย").click()
    expect(shipment.locator("h4")).to_have_text("ประวัติการจัดส่ง")
    expect(shipment.locator("ol.events li")).to_have_count(2)
    screenshot(page, "order-actions-delivery-history-th")


def test_withdraw_a_request_before_the_service_accepts(page, create_order, service):
    order = create_order()
    acme = fo_of(order, "acme")["id"]
    sign_in(page)
    open_order(page, order)
    act(page, acme, "Request fulfillment")
    act(page, acme, "Cancel fulfillment request")
    expect(page.get_by_text("Fulfillment request withdrawn. The service has been told.")).to_be_visible()
    expect(offered(page, acme, "Request fulfillment")).to_have_count(1)
    assert [e["type"] for e in service.sent()] == []  # nothing leaves before the dispatcher runs


def test_revert_after_an_unreported_cancellation_reminds_to_check_inventory(page, create_order, service,
                                                                            screenshot):
    order = create_order()
    acme = fo_of(order, "acme")["id"]
    sign_in(page)
    open_order(page, order)
    act(page, acme, "Request fulfillment")
    tell(service, "fulfillment_request.accepted", fulfillment_order_id=acme)
    expect(card(page, acme).get_by_text("Accepted", exact=True)).to_be_visible(timeout=LIVE_MS)
    act(page, acme, "Request cancellation")
    card(page, acme).locator("summary", has_text="Revert to unfulfilled").click()
    expect(card(page, acme).get_by_text("Use this when the service cancelled")).to_be_visible()
    act(page, acme, "Revert to unfulfilled")
    expect(page.get_by_text("Reverted to unfulfilled. Check your inventory counts")).to_be_visible()
    expect(card(page, acme).locator('[data-banner="reverted"]')).to_contain_text(
        "Check your inventory counts to make sure they are correct.")
    screenshot(page, "order-actions-reverted-en")


def test_mark_as_fulfilled_with_tracking_and_notice(page, api, create_order):
    order = create_order()
    own = fo_of(order, None)["id"]
    sign_in(page)
    open_order(page, order)
    act(page, own, "Mark as fulfilled", {"Tracking number": "EMS-1", "Carrier": "Thailand Post",
                                         "Tracking URL": "https://track.example/EMS-1",
                                         "Notify customer about the shipment": True})
    expect(page.get_by_text("Items marked as fulfilled.")).to_be_visible()
    expect(card(page, own).get_by_role("link", name="EMS-1")).to_be_visible()
    expect(card(page, own).get_by_role("button")).to_have_count(0)
    events = api.get(f"/orders/{order['id']}/timeline").body
    assert [e["data"]["customer_notification"] is not None for e in events
            if e["kind"] == "fulfillment.created"] == [True]


def test_a_refused_tracking_url_is_shown_at_the_field_and_keeps_what_was_typed(page, create_order,
                                                                              screenshot):
    order = create_order()
    own = fo_of(order, None)["id"]
    sign_in(page)
    open_order(page, order)
    card(page, own).locator("summary", has_text="Mark as fulfilled").click()
    url = card(page, own).get_by_label("Tracking URL", exact=True)
    # The browser's own check would stop the form first; the server's check is the one that counts.
    url.evaluate("element => element.type = 'text'")
    act(page, own, "Mark as fulfilled", {"Tracking number": "EMS-2", "Tracking URL": "ftp://x"})
    expect(page.get_by_role("alert")).to_contain_text("check the fields marked below")
    url = card(page, own).get_by_label("Tracking URL", exact=True)
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(url).to_have_accessible_description(re.compile("http:// or https://"))
    expect(card(page, own).get_by_label("Tracking number", exact=True)).to_have_value("EMS-2")
    screenshot(page, "order-actions-refused-en")


def test_hold_with_a_reason_then_release(page, create_order):
    order = create_order()
    acme = fo_of(order, "acme")["id"]
    sign_in(page)
    open_order(page, order)
    act(page, acme, "Hold fulfillment", {"Hold reason": "Incorrect address", "Note": "Call the customer"})
    expect(page.get_by_text("Fulfillment held.")).to_be_visible()
    expect(card(page, acme)).to_contain_text("Incorrect address")
    expect(card(page, acme).get_by_role("button")).to_have_text(["Release hold"])
    act(page, acme, "Release hold")
    expect(page.get_by_text("Hold released.")).to_be_visible()
    expect(offered(page, acme, "Hold fulfillment")).to_have_count(1)


def test_thai_request_rejected_with_a_long_thai_message_wraps(page, create_order, service, screenshot):
    order = create_order(line_items=goods_at("acme"))
    acme = fo_of(order, "acme")["id"]
    sign_in(page, "th")
    open_order(page, order)
    expect(card(page, acme).get_by_text("บริการจัดการคำสั่งซื้อนี้ใช้ขั้นตอนการทำงานใหม่")).to_be_visible()
    card(page, acme).locator("summary", has_text="ขอการจัดการสินค้า").click()
    screenshot(page, "order-actions-open-th")
    act(page, acme, "ขอการจัดการสินค้า", {"หมายเหตุ — ข้อความนี้จะไม่ถูกส่งไปยังลูกค้าของคุณ": LONG_THAI,
                                        "แจ้งเตือนลูกค้าเรื่องการจัดส่ง": True})
    expect(page.get_by_text("ส่งคำขอการจัดการสินค้าแล้ว คำตอบของบริการจัดการคำสั่งซื้อจะแสดงในหน้านี้")).to_be_visible()
    expect(offered(page, acme, "ยกเลิกคำขอให้จัดการ")).to_have_count(1)
    page.evaluate("window.notReloaded = true")
    tell(service, "fulfillment_request.rejected", fulfillment_order_id=acme, reason="incorrect_address",
         message=LONG_THAI)
    banner = card(page, acme).locator('[data-banner="rejected"]')
    expect(banner).to_contain_text("บริการจัดการคำสั่งซื้อปฏิเสธคำขอ", timeout=LIVE_MS)
    expect(banner).to_contain_text("ที่อยู่ไม่ถูกต้อง")
    expect(banner).to_contain_text(LONG_THAI)
    still_the_same_page(page)
    for piece in (banner, page.locator(".timeline")):
        assert piece.evaluate("element => element.scrollWidth <= element.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    act(page, acme, "ระงับการจัดการ", {"เหตุผลที่ระงับ": "ที่อยู่ไม่ถูกต้อง"})
    expect(page.get_by_text("ระงับการจัดการแล้ว").first).to_be_visible()
    act(page, acme, "ยกเลิกการระงับ")
    expect(offered(page, acme, "ขอการจัดการสินค้า")).to_have_count(1)
    screenshot(page, "order-actions-rejected-th")


def test_live_updates_wait_while_the_merchant_types_in_a_form(page, api, create_order, service):
    order = create_order()
    acme = fo_of(order, "acme")["id"]
    sign_in(page)
    open_order(page, order)
    card(page, acme).locator("summary", has_text=re.compile("^Request fulfillment$")).click()
    note = card(page, acme).get_by_label("Note to the service (not sent to the customer)", exact=True)
    note.fill("Gift wrap, blue paper")
    note.blur()  # typed input alone holds the updates, not only the focus

    assert api.post(f"/orders/{order['id']}/comments", {"message": "Called the customer"}).status_code == 201
    page.wait_for_timeout(LIVE_MS)
    expect(page.locator(".timeline").get_by_text("Called the customer")).to_have_count(0)
    expect(note).to_have_value("Gift wrap, blue paper")

    # Folding the form away lets the page catch up.
    card(page, acme).locator("summary", has_text=re.compile("^Request fulfillment$")).click()
    expect(page.locator(".timeline").get_by_text("Called the customer")).to_be_visible(timeout=LIVE_MS)
    still_the_same_page(page)

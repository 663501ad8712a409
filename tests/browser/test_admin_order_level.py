"""The merchant marks an order paid, comments in Thai and cancels it in a browser; a locked order and
a request the service has not received, in both languages."""

import re

import responses
from conftest import SERVICE_URLS, fo_of
from playwright.sync_api import expect

from .test_admin_order_actions import fresh_throttle, open_order, sign_in  # noqa: F401 -- fixture

THAI_COMMENT = "ลูกค้าโทรมาแจ้งว่าชำระเงินปลายทางแล้ว ขอให้ส่งใบเสร็จทางอีเมล <b>ด่วน</b>"


def order_action(page, name, fields=None):
    """Open an order form by its name, fill it and send it with the button of that name."""
    summary = page.locator("summary", has_text=re.compile(f"^{re.escape(name)}$"))
    form = page
    if summary.count():
        form = summary.locator("..")
        if form.get_attribute("open") is None:
            summary.click()
    for label, value in (fields or {}).items():
        field = form.get_by_label(label, exact=True)
        if value is True:
            field.check()
        else:
            field.fill(value)
    form.get_by_role("button", name=name, exact=True).click()


def test_mark_as_paid_then_a_thai_comment_then_cancel_with_refund(page, api, create_order, screenshot):
    order = create_order()
    sign_in(page)
    open_order(page, order)
    payments = page.locator("section", has=page.locator("#payments-title"))
    order_action(page, "Mark as paid")
    expect(page.get_by_text("Marked as paid.")).to_be_visible()
    expect(payments.get_by_text("Paid", exact=True).first).to_be_visible()
    expect(page.get_by_role("button", name="Mark as paid", exact=True)).to_have_count(0)
    page.locator("summary", has_text="Refund").click()
    screenshot(page, "order-level-paid-en")

    page.get_by_role("link", name="ไทย").click()
    order_action(page, "เพิ่มความคิดเห็น",
                 {"ความคิดเห็น — เห็นเฉพาะพนักงาน จะไม่ถูกส่งไปยังลูกค้าของคุณ": THAI_COMMENT})
    expect(page.get_by_text("เพิ่มความคิดเห็นแล้ว")).to_be_visible()
    expect(page.locator(".timeline").get_by_text(THAI_COMMENT)).to_be_visible()

    order_action(page, "ยกเลิกคำสั่งซื้อ", {"เหตุผลในการยกเลิก": "ลูกค้าเปลี่ยนใจ", "คืนเงินที่ชำระแล้ว": True})
    expect(page.get_by_role("status").get_by_text("ยกเลิกคำสั่งซื้อแล้ว")).to_be_visible()
    expect(page.get_by_role("button", name="ยกเลิกคำสั่งซื้อ", exact=True)).to_have_count(0)
    after = api.get(f"/orders/{order['id']}").body
    assert "cancelled" in after["order_status"] and after["amount_refunded"] == "45.50"
    assert after["cancel_reason"] == "ลูกค้าเปลี่ยนใจ"
    screenshot(page, "order-level-cancelled-th")


def test_locked_actions_and_an_undelivered_request_in_both_languages(
    page, api, create_order, outbound, deliver, screenshot
):
    order = create_order(transactions=[{"kind": "sale", "amount": "45.50"}])
    acme = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{acme}/fulfillment_request", {}).status_code == 200
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503, body="Service down for maintenance")
    deliver()
    sign_in(page)
    open_order(page, order)
    expect(page.get_by_role("button", name="Cancel order", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Refund", exact=True)).to_be_disabled()
    expect(page.locator('[data-banner="not_received"]')).to_contain_text("Service down for maintenance")
    screenshot(page, "order-level-locked-en")
    page.get_by_role("link", name="ไทย").click()
    expect(page.get_by_role("button", name="ยกเลิกคำสั่งซื้อ", exact=True)).to_be_disabled()
    banner = page.locator('[data-banner="not_received"]')
    expect(banner).to_contain_text("บริการจัดการคำสั่งซื้อยังไม่ได้รับคำขอ")
    screenshot(page, "order-level-locked-th")
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    banner.get_by_role("button", name="ลองอีกครั้งตอนนี้").click()
    expect(page.get_by_text("คำขอจะถูกส่งอีกครั้งทันที")).to_be_visible()
    assert deliver() == 1
    expect(page.locator('[data-banner="not_received"]')).to_have_count(0, timeout=5_000)

"""What a browser shows on the admin pages, in English and Thai."""

import re

import pytest
from conftest import TOKEN, fo_of
from playwright.sync_api import expect

from handlers.admin import signin
from handlers.admin.throttle import FailedSignIns

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    """Each test starts with no failed sign-ins counted."""
    monkeypatch.setattr(signin, "failed_sign_ins", FailedSignIns())


@pytest.fixture
def shop(api, create_order):
    """A few orders: one paid and shipped with a service note, one unpaid, one archived."""
    archived = create_order(external_id="archived")
    api.post(f"/orders/{archived['id']}/archive")
    unpaid = create_order(external_id="unpaid", email="nok@example.com")
    shipped = create_order(
        external_id="shipped",
        shipping_address={"name": "สมชาย ใจดี", "address1": "1 ถนนสุขุมวิท", "city": "กรุงเทพมหานคร",
                          "country_code": "TH", "phone": "+66 81 234 5678"},
    )
    api.post(f"/orders/{shipped['id']}/transactions", {"kind": "sale", "amount": shipped["total_price"]})
    acme = fo_of(shipped, "acme")
    api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {"message": XSS})
    own = fo_of(shipped, None)
    api.post(f"/fulfillment_orders/{own['id']}/mark_fulfilled",
             {"tracking": {"number": "TH123456789", "company": "Thailand Post",
                           "url": "https://track.example/TH123456789"}})
    return {"archived": archived, "unpaid": unpaid, "shipped": shipped}


def fits_without_scrolling(page, selector):
    """Tell whether an element shows all its columns at the page's width (no sideways scroll)."""
    return page.locator(selector).evaluate("element => element.scrollWidth <= element.clientWidth")


def sign_in(page, token=TOKEN):
    page.goto("/admin/login")
    page.get_by_label("Merchant API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_a_refused_sign_in_says_so_and_stays_on_the_form(page, screenshot):
    sign_in(page, "not-the-token")
    expect(page.get_by_role("alert")).to_have_text("This token does not sign you in.")
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    screenshot(page, "login-refused-en")


def test_sign_in_then_sign_out(page, shop):
    sign_in(page)
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto("/admin/orders")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))


def test_language_switch_to_thai_and_back(page, shop, screenshot):
    page.goto("/admin/login")
    screenshot(page, "login-en")
    page.get_by_role("link", name="ไทย").click()
    expect(page.get_by_role("button", name="เข้าสู่ระบบ")).to_be_visible()
    screenshot(page, "login-th")
    page.get_by_label("โทเค็น API ของร้านค้า").fill(TOKEN)
    page.get_by_role("button", name="เข้าสู่ระบบ").click()
    expect(page.get_by_role("heading", name="คำสั่งซื้อ")).to_be_visible()
    expect(page.get_by_role("button", name="ออกจากระบบ")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()


def test_orders_list_views_and_a_filter(page, shop, screenshot):
    sign_in(page)
    table = page.get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(4)
    assert fits_without_scrolling(page, ".table-wrap")
    screenshot(page, "orders-en")
    page.get_by_role("link", name="Unpaid", exact=True).click()
    expect(page.get_by_role("link", name="Unpaid", exact=True)).to_have_attribute("aria-current", "page")
    expect(table.get_by_role("link", name=shop["unpaid"]["name"])).to_be_visible()
    expect(table.get_by_role("link", name=shop["shipped"]["name"])).to_have_count(0)
    expect(table.get_by_role("link", name=shop["archived"]["name"])).to_have_count(0)
    page.get_by_role("link", name="Archived", exact=True).click()
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table.get_by_role("link", name=shop["archived"]["name"])).to_be_visible()
    page.get_by_text("Payment status", exact=True).first.click()
    page.get_by_role("checkbox", name="Paid", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No orders match these filters.")).to_be_visible()
    page.get_by_role("link", name="All", exact=True).click()
    page.get_by_text("Payment status", exact=True).first.click()
    page.get_by_role("checkbox", name="Paid", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"payment_status=paid"))
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table.get_by_role("link", name=shop["shipped"]["name"])).to_be_visible()
    page.get_by_role("link", name="ไทย").click()
    page.get_by_role("link", name="ทั้งหมด", exact=True).click()
    expect(page.get_by_role("columnheader", name="สถานะการชำระเงิน")).to_be_visible()
    assert fits_without_scrolling(page, ".table-wrap")
    screenshot(page, "orders-th")


def test_order_page_shows_service_text_as_text(page, shop, screenshot):
    sign_in(page)
    page.get_by_role("link", name=shop["shipped"]["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(shop["shipped"]["name"])
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()
    expect(page.locator("img")).to_have_count(0)
    expect(page.get_by_role("link", name="TH123456789")).to_have_attribute(
        "href", "https://track.example/TH123456789")
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    screenshot(page, "order-en")
    page.get_by_role("link", name="ไทย").click()
    expect(page.get_by_role("heading", name="ไทม์ไลน์")).to_be_visible()
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()
    screenshot(page, "order-th")

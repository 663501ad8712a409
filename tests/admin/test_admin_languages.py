"""Thai and English: complete catalogs, the SPEC's Thai words, the switch, money and dates."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask_babel import force_locale

from app import create_app
from handlers.admin import i18n, labels

from .conftest import Admin

PACKAGE = Path(__file__).resolve().parents[2] / "handlers" / "admin"
CATALOGS = PACKAGE / "translations"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}

# SPEC 8's Thai words (status table and accessible names), written out again as the oracle.
SPEC_THAI = [
    ("order_status", "open", "เปิด"), ("order_status", "archived", "เก็บถาวรแล้ว"),
    ("order_status", "cancelled", "ยกเลิกแล้ว"),
    ("payment_status", "pending", "รอดำเนินการ"), ("payment_status", "authorized", "ได้รับอนุญาต"),
    ("payment_status", "overdue", "เกินกำหนด"), ("payment_status", "expired", "หมดอายุแล้ว"),
    ("payment_status", "paid", "ชำระแล้ว"), ("payment_status", "refunded", "คืนเงินแล้ว"),
    ("payment_status", "partially_refunded", "คืนเงินแล้วบางส่วน"),
    ("payment_status", "partially_paid", "ชำระบางส่วน"), ("payment_status", "voided", "ยกเลิกแล้ว"),
    ("payment_status", "expiring", "กำลังจะหมดอายุ"), ("payment_status", "unpaid", "ยังไม่ชำระ"),
    ("fulfillment_status", "fulfilled", "จัดการแล้ว"), ("fulfillment_status", "unfulfilled", "ยังไม่จัดการ"),
    ("fulfillment_status", "partially_fulfilled", "จัดการแล้วบางส่วน"),
    ("fulfillment_status", "scheduled", "กำหนดเวลาแล้ว"), ("fulfillment_status", "on_hold", "ถูกระงับชั่วคราว"),
    ("fulfillment_status", "in_progress", "กำลังดำเนินการ"),
    ("return_status", "return_requested", "ส่งคำขอคืนสินค้าแล้ว"),
    ("return_status", "return_in_progress", "กำลังดำเนินการคืนสินค้า"),
    ("return_status", "inspection_complete", "การตรวจสอบเสร็จสิ้น"), ("return_status", "returned", "คืนสินค้าแล้ว"),
    ("request_status", "submitted", "ส่งคำขอแล้ว"), ("request_status", "accepted", "ยอมรับแล้ว"),
    ("request_status", "cancellation_requested", "มีการร้องขอให้ยกเลิก"),
]


def catalog(language):
    with (CATALOGS / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file)


def extracted_msgids():
    """Extract every translatable string of the package's Python and templates, as pybabel does."""
    with (PACKAGE / "babel.cfg").open(encoding="utf-8") as file:
        method_map, options_map = parse_mapping_cfg(file)
    return {message for _, _, message, *_ in extract_from_dir(
        str(PACKAGE), method_map, options_map, keywords=KEYWORDS)}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_msgid_is_translated_in_each_catalog_and_none_is_left_over(language):
    wanted = extracted_msgids()
    messages = {message.id: message for message in catalog(language) if message.id}
    assert wanted - set(messages) == set(), "missing from the catalog"
    assert set(messages) - wanted == set(), "no longer used"
    untranslated = [m.id for m in messages.values() if not m.string or m.fuzzy]
    assert untranslated == []


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_compiled_catalog_matches_its_po_file(language):
    with (CATALOGS / language / "LC_MESSAGES" / "messages.mo").open("rb") as file:
        compiled = {m.id: m.string for m in read_mo(file) if m.id}
    assert compiled == {m.id: m.string for m in catalog(language) if m.id}


@pytest.mark.parametrize("group, value, thai", SPEC_THAI)
def test_thai_status_words_are_the_spec_words(app, group, value, thai):
    with app.test_request_context(), force_locale("th"):
        assert str(labels.label(group, value)) == thai


@pytest.mark.parametrize("group", sorted(labels.GROUPS))
def test_every_vocabulary_word_has_a_thai_label_different_from_its_code(app, group):
    with app.test_request_context(), force_locale("th"):
        for value, text in labels.GROUPS[group].items():
            assert str(text) not in ("", value)
            assert not str(text).isascii() or str(text) == "SKU ไม่ถูกต้อง", (group, value)


def test_the_language_follows_accept_language_by_default(visitor):
    thai = visitor.get("/admin/login", headers={"Accept-Language": "th-TH,th;q=0.9,en;q=0.5"})
    assert '<html lang="th">' in thai.html and ">เข้าสู่ระบบ</button>" in thai.html
    english = visitor.get("/admin/login", headers={"Accept-Language": "fr, en;q=0.5"})
    assert '<html lang="en">' in english.html and ">Sign in</button>" in english.html
    assert '<html lang="en">' in visitor.get("/admin/login").html


def test_the_switch_is_on_every_page_and_remembered_in_a_cookie(admin, create_order):
    order = create_order()
    for path in ("/admin/orders", f"/admin/orders/{order['id']}", "/admin/logout"):
        html = admin.get(path).html
        assert 'lang="th" hreflang="th"' in html and 'lang="en" hreflang="en"' in html
    switched = admin.get(f"/admin/language/th?next=/admin/orders/{order['id']}")
    assert switched.status_code == 302 and switched.headers["Location"] == f"/admin/orders/{order['id']}"
    assert any(cookie.startswith(f"{i18n.LANGUAGE_COOKIE}=th;") and "HttpOnly" in cookie
               for cookie in switched.headers.getlist("Set-Cookie"))
    page = admin.get(f"/admin/orders/{order['id']}", headers={"Accept-Language": "en"})
    assert '<html lang="th">' in page.html
    assert ">ออกจากระบบ</button>" in page.html and "ไทม์ไลน์" in page.html
    admin.get("/admin/language/en?next=/admin/orders")
    assert ">Sign out</button>" in admin.get("/admin/orders", headers={"Accept-Language": "th"}).html


def test_an_unknown_language_is_ignored_and_next_stays_in_the_admin(admin):
    response = admin.get("/admin/language/xx?next=https://evil.example/")
    assert response.headers["Location"] == "/admin/orders"
    assert i18n.LANGUAGE_COOKIE not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("language, timezone, expected", [
    ("en", "UTC", "5 Jan 2025, 20:30 UTC"),
    ("en", "Asia/Bangkok", "6 Jan 2025, 03:30 UTC+07:00"),
    ("th", "Asia/Bangkok", "6 ม.ค. 2568 03:30 UTC+07:00"),
    ("th", "UTC", "5 ม.ค. 2568 20:30 UTC"),
    ("en", "America/New_York", "5 Jan 2025, 15:30 UTC-05:00"),
])
def test_dates_are_in_the_configured_zone_with_the_zone_shown_and_buddhist_years_in_thai(
    overrides, language, timezone, expected
):
    overrides["admin"] = {"timezone": timezone}
    app = create_app(overrides)
    with app.test_request_context(), force_locale(language):
        assert i18n.format_moment("2025-01-05T20:30:00Z") == expected
        assert i18n.format_moment(datetime(2025, 1, 5, 20, 30)) == expected
        assert i18n.format_moment(datetime(2025, 1, 5, 20, 30, tzinfo=UTC)) == expected


@pytest.mark.parametrize("amount, currency, expected", [
    ("1234.50", "USD", "1,234.50 USD"),
    ("0.00", "THB", "0.00 THB"),
    ("1000", "JPY", "1,000 JPY"),
    ("1.250", "KWD", "1.250 KWD"),
])
def test_money_is_shown_with_its_currency_and_its_own_decimals(app, amount, currency, expected):
    for language in i18n.LANGUAGES:
        with app.test_request_context(), force_locale(language):
            assert i18n.format_money(amount, currency) == expected


def test_thai_order_page_shows_buddhist_era_years(admin, create_order):
    order = create_order()
    admin.get("/admin/language/th")
    html = admin.get(f"/admin/orders/{order['id']}").html
    year = int(order["created_at"][:4])
    assert f" {year + 543} " in html and f" {year} " not in html


def test_an_english_page_after_thai_speaks_english(app):
    browser = Admin(app.test_client())
    browser.get("/admin/language/th")
    browser.get("/admin/language/en")
    assert ">Sign in</button>" in browser.get("/admin/login").html

"""The order page's own forms: cancel, archive, edit, payments, returns and comments are drawn from
the API's `supported_actions` (locked ones disabled, naming the FO), each runs the API's operation
(POST, redirect, GET), refusals keep the page and change nothing; and a request the service has not
received is shown with its last delivery error and Retry now."""

import re
from html import unescape
from html.parser import HTMLParser

import pytest
import responses
from conftest import SERVICE_URLS, fo_of
from test_order_actions import SETUPS, STATES, open_return, with_a_fulfilled_line

from adapter import store
from adapter.models import OutboxMessage

# SPEC 8's accessible names (and the glossary's), written out again as the oracle.
NAMES = {
    "en": {
        "edit": "Edit", "cancel": "Cancel order", "archive": "Archive", "unarchive": "Unarchive",
        "mark_as_paid": "Mark as paid", "capture": "Capture", "refund": "Refund", "void": "Void",
        "add_comment": "Add comment", "create_return": "Create return", "approve": "Approve",
        "decline": "Decline",
        "complete_inspection": "Complete inspection", "close": "Close return", "retry": "Retry now",
    },
    "th": {
        "edit": "แก้ไข", "cancel": "ยกเลิกคำสั่งซื้อ", "archive": "เก็บถาวร",
        "unarchive": "ยกเลิกการเก็บถาวร", "mark_as_paid": "ทำเครื่องหมายว่าชำระแล้ว",
        "capture": "เรียกเก็บเงิน", "refund": "คืนเงิน", "void": "ยกเลิกการอนุญาต",
        "add_comment": "เพิ่มความคิดเห็น", "create_return": "สร้างการคืนสินค้า", "approve": "อนุมัติ",
        "decline": "ปฏิเสธ",
        "complete_inspection": "ตรวจสอบเสร็จสิ้น", "close": "ปิดการคืนสินค้า",
        "retry": "ลองอีกครั้งตอนนี้",
    },
}
NOT_RECEIVED = {"en": "The fulfillment service has not received the request yet.",
                "th": "บริการจัดการคำสั่งซื้อยังไม่ได้รับคำขอ"}
THAI_COMMENT = "ลูกค้าโทรมาขอเปลี่ยนที่อยู่ <b>ด่วน</b> 📦"


class Buttons(HTMLParser):
    """Collect the page's order and return buttons: (kind, id, action) -> name, and disabled ones."""

    ACTION = re.compile(r"^/admin/(orders|returns|merchant_requests)/(\d+)/(\w+)$")

    def __init__(self, html):
        super().__init__()
        self.found, self.disabled, self.form, self.text, self.off = {}, {}, None, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.form = self.ACTION.match(attrs.get("action", ""))
        elif tag == "button" and "disabled" in attrs:
            self.off, self.text = attrs["aria-describedby"], ""
        elif tag == "button" and self.form:
            self.text = ""

    def handle_data(self, data):
        if self.text is not None:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "button" and self.text is not None:
            if self.off:
                self.disabled[self.off] = self.text.strip()
            else:
                key = (self.form.group(1), int(self.form.group(2)), self.form.group(3))
                assert key not in self.found, key
                self.found[key] = self.text.strip()
            self.text = self.off = None
        elif tag == "form":
            self.form = None

    def of(self, kind, item_id):
        """Return {action: accessible name} of the order's or a return's buttons."""
        return {action: name for (k, i, action), name in self.found.items() if (k, i) == (kind, item_id)}


def page_of(admin, order_id, language="en"):
    admin.get(f"/admin/language/{language}")
    page = admin.get(f"/admin/orders/{order_id}")
    assert page.status_code == 200, page.html
    return page.html


def read(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def timeline_of(api, order_id):
    return api.get(f"/orders/{order_id}/timeline").body


def submit(admin, path, order_id, data=None, expect=302, anchor=""):
    """Post a form from the order page; check the answer's status (and where a success goes)."""
    response = admin.post_form(path, data, from_page=f"/admin/orders/{order_id}")
    assert response.status_code == expect, response.html
    if expect == 302:
        assert response.headers["Location"] == f"/admin/orders/{order_id}{anchor}"
    return response


def act(admin, order_id, action, data=None, expect=302):
    return submit(admin, f"/admin/orders/{order_id}/{action}", order_id, data, expect)


def flashed(admin, order_id):
    html = admin.get(f"/admin/orders/{order_id}").html
    return [unescape(text) for text in re.findall(r'<p class="flash flash-success">([^<]*)</p>', html)]


# ---- the page cannot diverge from the API ------------------------------------------------


@pytest.mark.parametrize("language", ["en", "th"])
@pytest.mark.parametrize("state", list(STATES))
def test_the_order_draws_exactly_the_buttons_of_its_supported_actions(
    admin, api, create_order, state, language
):
    order = SETUPS[state](api, create_order)
    supported = read(api, order["id"])["supported_actions"]
    buttons = Buttons(page_of(admin, order["id"], language))
    assert buttons.of("orders", order["id"]) == {
        action: NAMES[language][action] for action in supported}
    expected_disabled = {"edit", "cancel", "refund"} if state == "locked_by_a_request" else set()
    assert buttons.disabled == {f"order-{action}-locked": NAMES[language][action]
                                for action in expected_disabled}


@pytest.mark.parametrize("language", ["en", "th"])
def test_each_return_draws_exactly_the_buttons_of_its_supported_actions(admin, api, create_order,
                                                                         language):
    order = with_a_fulfilled_line(api, create_order)
    return_id = open_return(api, order)["id"]
    for step in ("approve", "complete_inspection", "close", None):
        supported = api.get(f"/orders/{order['id']}").body["returns"][0]["supported_actions"]
        assert Buttons(page_of(admin, order["id"], language)).of("returns", return_id) == {
            action: NAMES[language][action] for action in supported}
        if step:
            assert step in supported
            submit(admin, f"/admin/returns/{return_id}/{step}", order["id"],
                   anchor=f"#return-{return_id}")


@pytest.mark.parametrize("language", ["en", "th"])
def test_actions_locked_by_a_request_in_progress_say_which_fulfillment_order(
    admin, api, create_order, language
):
    order = SETUPS["locked_by_a_request"](api, create_order)
    locked_by = read(api, order["id"])["locked_by_fulfillment_order_id"]
    assert locked_by == fo_of(order, "acme")["id"]
    html = page_of(admin, order["id"], language)
    reasons = re.findall(r'<p class="locked-reason" id="order-(\w+)-locked">([^<]*)</p>', html)
    assert {action for action, _ in reasons} == {"edit", "cancel", "refund"}
    for _, reason in reasons:
        assert str(locked_by) in unescape(reason)


# ---- each form: POST -> redirect -> GET, same operation as the API --------------------------


@pytest.mark.parametrize("state, amount", [("unpaid", "45.50"), ("partially_paid", "35.50")])
def test_mark_as_paid_records_a_sale_of_what_is_outstanding(admin, api, create_order, state, amount):
    order = SETUPS[state](api, create_order)
    html = page_of(admin, order["id"])
    assert f'name="amount" value="{amount}"' in html
    act(admin, order["id"], "mark_as_paid", {"amount": amount})
    after = read(api, order["id"])
    assert after["payment_status"] == "paid"
    assert after["transactions"][-1]["kind"] == "sale" and after["transactions"][-1]["amount"] == amount
    assert flashed(admin, order["id"]) == ["Marked as paid."]


@pytest.mark.parametrize("state, action, data, field, value, flash", [
    ("authorized", "capture", {"amount": "20.00"}, "amount_captured", "20.00", "Payment captured."),
    ("paid", "refund", {"amount": "5.00"}, "amount_refunded", "5.00", "Refund recorded."),
    ("authorized", "void", {"amount": ""}, "amount_authorized", "0.00", "Authorization voided."),
])
def test_payment_forms_record_the_transaction_the_api_would(admin, api, create_order, state, action,
                                                            data, field, value, flash):
    order = SETUPS[state](api, create_order)
    act(admin, order["id"], action, data)
    assert read(api, order["id"])[field] == value
    assert timeline_of(api, order["id"])[-1]["kind"] == f"transaction.{action}"
    assert flashed(admin, order["id"]) == [flash]


def test_the_refund_form_says_how_much_can_be_refunded(admin, api, create_order):
    order = SETUPS["partially_refunded"](api, create_order)
    assert "At most 40.50 USD, what was paid and not refunded yet." in page_of(admin, order["id"])


@pytest.mark.parametrize("state, most", [("authorized", "45.50"), ("partly_captured", "5.50")])
def test_the_capture_form_says_how_much_can_be_captured(admin, api, create_order, state, most):
    order = SETUPS[state](api, create_order)
    assert f"At most {most} USD, what was authorized and not captured yet." in page_of(admin, order["id"])


def test_cancel_with_a_reason_and_refund(admin, api, create_order):
    order = SETUPS["paid"](api, create_order)
    act(admin, order["id"], "cancel", {"reason": THAI_COMMENT, "refund": "on"})
    after = read(api, order["id"])
    assert "cancelled" in after["order_status"]
    assert after["cancel_reason"] == THAI_COMMENT and after["amount_refunded"] == "45.50"
    assert flashed(admin, order["id"]) == ["Order cancelled."]


def test_cancel_without_refund_keeps_the_payment(admin, api, create_order):
    order = SETUPS["paid"](api, create_order)
    act(admin, order["id"], "cancel", {"reason": ""})
    after = read(api, order["id"])
    assert "cancelled" in after["order_status"] and after["amount_refunded"] == "0.00"
    assert after["cancel_reason"] is None


def test_archive_then_unarchive(admin, api, create_order):
    order = create_order()
    act(admin, order["id"], "archive")
    assert "archived" in read(api, order["id"])["order_status"]
    assert flashed(admin, order["id"]) == ["Order archived."]
    act(admin, order["id"], "unarchive")
    assert "archived" not in read(api, order["id"])["order_status"]


def test_edit_changes_email_and_address_and_keeps_the_parts_the_form_does_not_show(
    admin, api, create_order
):
    order = create_order(shipping_address={"name": "Somchai", "address1": "1 Sukhumvit Rd",
                                           "city": "Bangkok", "province_code": "TH-10",
                                           "country_code": "TH"})
    html = page_of(admin, order["id"])
    assert 'id="order-edit-address-city"' in html and 'value="Bangkok"' in html
    act(admin, order["id"], "edit", {
        "email": "somchai@example.co.th", "address-name": "สมชาย ใจดี", "address-address1": "99 ถนนสีลม",
        "address-city": "Bangkok", "address-zip": "10500", "address-country_code": "TH",
        "address-phone": ""})
    after = read(api, order["id"])
    assert after["email"] == "somchai@example.co.th"
    assert after["shipping_address"] == {"name": "สมชาย ใจดี", "address1": "99 ถนนสีลม",
                                         "city": "Bangkok", "province_code": "TH-10",
                                         "zip": "10500", "country_code": "TH"}
    assert timeline_of(api, order["id"])[-1]["kind"] == "order.edited"


def test_an_edit_that_changes_nothing_records_nothing(admin, api, create_order):
    order = create_order()
    address = order["shipping_address"]
    before = len(timeline_of(api, order["id"]))
    act(admin, order["id"], "edit", {"email": order["email"], **{
        f"address-{name}": address.get(name, "") for name in ("name", "address1", "city", "country_code")}})
    assert len(timeline_of(api, order["id"])) == before


def test_add_comment_in_thai_is_kept_verbatim_and_shown_as_text(admin, api, create_order):
    order = create_order()
    admin.get("/admin/language/th")
    act(admin, order["id"], "add_comment", {"message": THAI_COMMENT})
    [comment] = [e for e in timeline_of(api, order["id"]) if e["kind"] == "comment"]
    assert comment["message"] == THAI_COMMENT
    html = admin.get(f"/admin/orders/{order['id']}").html
    assert "เพิ่มความคิดเห็นแล้ว" in html
    assert "<b>ด่วน</b>" not in html and "&lt;b&gt;ด่วน&lt;/b&gt;" in html


@pytest.mark.parametrize("requested_by, status", [("customer", "requested"), ("merchant", "in_progress")])
def test_create_return_opens_one_for_the_fulfilled_units_with_their_reason(
    admin, api, create_order, requested_by, status
):
    order = with_a_fulfilled_line(api, create_order)
    card = next(line for line in order["line_items"] if line["sku"] == "CARD")
    html = page_of(admin, order["id"])
    # Only the fulfilled line can be returned.
    assert re.findall(r'name="return-quantity-(\d+)"', html) == [str(card["id"])]
    act(admin, order["id"], "create_return", {
        "requested_by": requested_by, f"return-quantity-{card['id']}": "1",
        f"return-reason-{card['id']}": "defective"})
    [opened] = read(api, order["id"])["returns"]
    assert (opened["status"], opened["requested_by"]) == (status, requested_by)
    assert [(line["line_item_id"], line["quantity"], line["reason"]) for line in opened["line_items"]] == [
        (card["id"], 1, "defective")]
    assert flashed(admin, order["id"]) == ["Return created."]
    assert "create_return" not in Buttons(page_of(admin, order["id"])).of("orders", order["id"])


@pytest.mark.parametrize("action", ["approve", "decline"])
def test_a_requested_return_is_approved_or_declined(admin, api, create_order, action):
    order = with_a_fulfilled_line(api, create_order)
    return_id = open_return(api, order)["id"]
    submit(admin, f"/admin/returns/{return_id}/{action}", order["id"], anchor=f"#return-{return_id}")
    status = api.get(f"/orders/{order['id']}").body["returns"][0]["status"]
    assert status == {"approve": "in_progress", "decline": "declined"}[action]


# ---- refusals: the page again, 4xx, reasons by the fields, nothing changed ------------------


def refused(admin, api, path, order_id, data, status):
    """Post a refused form; check nothing changed; return the page it answered."""
    before, events = read(api, order_id), len(timeline_of(api, order_id))
    response = submit(admin, path, order_id, data, expect=status)
    assert read(api, order_id) == before
    assert len(timeline_of(api, order_id)) == events
    assert '<p class="banner banner-critical" role="alert">' in response.html
    return response.html


def invalid_input(html, input_id):
    """Return the error text drawn for an input marked invalid, or None."""
    tag = re.search(rf'<(?:input|textarea|select) id="{re.escape(input_id)}"[^>]*>', html)
    if tag is None or 'aria-invalid="true"' not in tag.group(0):
        return None
    error = re.search(rf'<p id="{re.escape(input_id)}-error" class="field-error">([^<]*)</p>', html)
    return unescape(error.group(1))


@pytest.mark.parametrize("state, action, data, input_id, hint", [
    ("authorized", "capture", {"amount": "twenty"}, "order-capture-amount",
     "Enter an amount above 0, at most what the action allows, such as 12.50."),
    ("authorized", "capture", {"amount": "99.00"}, "order-capture-amount",
     "Enter an amount above 0, at most what the action allows, such as 12.50."),
    ("paid", "refund", {"amount": "0"}, "order-refund-amount",
     "Enter an amount above 0, at most what the action allows, such as 12.50."),
    ("paid", "refund", {"amount": ""}, "order-refund-amount",
     "Enter an amount above 0, at most what the action allows, such as 12.50."),
    ("unpaid", "edit", {"email": "not an email"}, "order-edit-email",
     "Enter an email address, or leave it empty."),
    ("unpaid", "edit", {"address-country_code": "THA"}, "order-edit-address-country_code",
     "Enter a two-letter country code, such as TH, or leave it empty."),
    ("unpaid", "edit", {"address-city": "x" * 256}, "order-edit-address-city",
     "This value is too long."),
    ("unpaid", "cancel", {"reason": "x" * 5001}, "order-cancel-reason",
     "A reason can have at most 5,000 characters."),
    ("unpaid", "add_comment", {"message": "   "}, "order-add_comment-message",
     "Write a comment of at most 5,000 characters."),
    ("with_a_fulfilled_line", "create_return", {"requested_by": "staff"},
     "order-create_return-requested_by", "Choose who asked for the return."),
])
def test_a_value_the_api_refuses_is_shown_at_its_input(admin, api, create_order, state, action, data,
                                                       input_id, hint):
    order = SETUPS[state](api, create_order)
    html = refused(admin, api, f"/admin/orders/{order['id']}/{action}", order["id"], data, 422)
    assert invalid_input(html, input_id) == hint
    typed = next(iter(data.values()))
    # What was typed is kept (a choice outside the list cannot be drawn in a select).
    if typed.strip() and len(typed) < 300 and action != "create_return":
        assert f'value="{typed}"' in html


@pytest.mark.parametrize("typed", ["2", "two", "-1", "1.5"])
def test_a_return_quantity_the_api_refuses_is_shown_at_its_input(admin, api, create_order, typed):
    order = with_a_fulfilled_line(api, create_order)
    card = next(line for line in order["line_items"] if line["sku"] == "CARD")
    html = refused(admin, api, f"/admin/orders/{order['id']}/create_return", order["id"], {
        "requested_by": "customer", f"return-quantity-{card['id']}": typed,
        f"return-reason-{card['id']}": "unwanted"}, 422)
    assert invalid_input(html, f"order-create_return-return-quantity-{card['id']}") == (
        "Enter a whole number from 0 to the quantity that can be returned.")
    assert f'value="{typed}"' in html


def test_a_return_of_nothing_is_shown_at_the_items(admin, api, create_order):
    order = with_a_fulfilled_line(api, create_order)
    html = refused(admin, api, f"/admin/orders/{order['id']}/create_return", order["id"],
                   {"requested_by": "customer"}, 422)
    assert "Choose at least one item: give a quantity above 0." in html


def test_mark_as_paid_after_someone_else_paid_is_refused_with_a_banner(admin, api, create_order):
    order = create_order()
    page_of(admin, order["id"])
    api.post(f"/orders/{order['id']}/transactions", {"kind": "sale", "amount": "10.00"})
    html = refused(admin, api, f"/admin/orders/{order['id']}/mark_as_paid", order["id"],
                   {"amount": "45.50"}, 422)
    assert "The amount outstanding changed since the page was drawn." in html
    assert 'name="amount" value="35.50"' in html


def test_cancelling_while_a_request_went_in_progress_is_409_naming_the_lock(admin, api, create_order):
    order = create_order()
    page_of(admin, order["id"])
    api.post(f"/fulfillment_orders/{fo_of(order, 'acme')['id']}/fulfillment_request", {})
    html = refused(admin, api, f"/admin/orders/{order['id']}/cancel", order["id"], {"reason": "x"}, 409)
    assert "The order cannot change while one of its fulfillment orders is in progress." in html
    assert 'id="order-cancel-locked"' in html


@pytest.mark.parametrize("path", ["cancel", "edit", "mark_as_paid"])
def test_an_action_the_order_no_longer_offers_is_409(admin, api, create_order, path):
    order = SETUPS["cancelled_and_archived"](api, create_order)
    html = refused(admin, api, f"/admin/orders/{order['id']}/{path}", order["id"], {}, 409)
    assert "the order changed since the page was drawn" in html


def test_approving_a_return_twice_is_409(admin, api, create_order):
    order = with_a_fulfilled_line(api, create_order)
    return_id = open_return(api, order)["id"]
    api.post(f"/returns/{return_id}/approve", {})
    refused(admin, api, f"/admin/returns/{return_id}/approve", order["id"], {}, 409)


@pytest.mark.parametrize("path", ["/admin/orders/{order}/refund", "/admin/returns/{order}/approve",
                                  "/admin/merchant_requests/{order}/retry"])
def test_a_form_without_its_csrf_token_changes_nothing(admin, api, create_order, path):
    order = SETUPS["paid"](api, create_order)
    response = admin.post_form(path.format(order=order["id"]), {"amount": "1.00"}, from_page=None)
    assert response.status_code == 400
    assert read(api, order["id"])["amount_refunded"] == "0.00"


@pytest.mark.parametrize("path", ["/admin/orders/{order}/explode", "/admin/orders/999999/archive",
                                  "/admin/returns/999999/approve", "/admin/returns/1/explode",
                                  "/admin/merchant_requests/999999/retry"])
def test_an_unknown_action_or_thing_is_404(admin, create_order, path):
    order = create_order()
    assert admin.post_form(path.format(order=order["id"])).status_code == 404


# ---- a request the service has not received: the last error verbatim and Retry now ------------


def requested(api, create_order):
    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    return order, fo_id


def banner_texts(html):
    block = re.search(r'<div class="banner banner-critical" data-banner="not_received">(.*?)</div>',
                      html, re.S)
    return unescape(block.group(1)) if block else None


@pytest.mark.parametrize("language", ["en", "th"])
def test_a_request_waiting_for_another_attempt_shows_the_last_error_and_retry_now_sends_it(
    admin, api, create_order, outbound, deliver, language
):
    order, fo_id = requested(api, create_order)
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503, body="ระบบปิดปรับปรุง <i>x</i>")
    assert deliver() == 1
    html = page_of(admin, order["id"], language)
    banner = banner_texts(html)
    assert NOT_RECEIVED[language] in banner and "ระบบปิดปรับปรุง <i>x</i>" in banner
    [(kind, request_id, _)] = [key for key in Buttons(html).found if key[0] == "merchant_requests"]
    assert Buttons(html).of("merchant_requests", request_id) == {"retry": NAMES[language]["retry"]}
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    # Not due for a while: without Retry now, a run of the dispatcher sends nothing.
    assert deliver() == 0
    submit(admin, f"/admin/merchant_requests/{request_id}/retry", order["id"], anchor=f"#fo-{fo_id}")
    assert deliver() == 1
    assert banner_texts(page_of(admin, order["id"], language)) is None


def test_the_open_page_learns_of_a_delivery_attempt_without_a_reload(
    admin, api, create_order, outbound, deliver
):
    order, _ = requested(api, create_order)
    html = page_of(admin, order["id"])
    live = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert admin.get(live).status_code == 204
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503, body="busy")
    deliver()
    fragment = admin.get(live, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "busy" in banner_texts(fragment.html)


def test_a_failed_request_is_sent_again_unchanged(admin, api, create_order, outbound, deliver):
    order, fo_id = requested(api, create_order)
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=400, body="bad signature")
    deliver()
    with store.database.connection_context():
        assert OutboxMessage.get(OutboxMessage.fulfillment_order_id == fo_id).status == "failed"
    html = page_of(admin, order["id"])
    assert "bad signature" in banner_texts(html)
    [(_, request_id, _)] = [key for key in Buttons(html).found if key[0] == "merchant_requests"]
    first = [call.request.headers["webhook-id"] for call in outbound.calls]
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    submit(admin, f"/admin/merchant_requests/{request_id}/retry", order["id"], anchor=f"#fo-{fo_id}")
    assert flashed(admin, order["id"]) == ["The request will be sent again now."]
    assert deliver() == 1
    assert outbound.calls[-1].request.headers["webhook-id"] == first[-1]
    assert banner_texts(admin.get(f"/admin/orders/{order['id']}").html) is None


def test_a_delivered_request_shows_no_banner_and_retrying_it_is_409(admin, api, create_order, deliver):
    order, fo_id = requested(api, create_order)
    deliver()
    html = page_of(admin, order["id"])
    assert banner_texts(html) is None and not Buttons(html).of("merchant_requests", 0)
    request_id = api.get(f"/fulfillment_orders/{fo_id}").body["merchant_requests"][0]["id"]
    response = submit(admin, f"/admin/merchant_requests/{request_id}/retry", order["id"], expect=409)
    assert '<p class="banner banner-critical" role="alert">' in response.html

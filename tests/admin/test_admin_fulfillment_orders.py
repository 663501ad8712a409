"""The fulfillment order cards of the order page: their buttons are the API's `supported_actions`,
each form runs the API's operation (POST, redirect, GET), refusals keep the page and change nothing,
banners are told from the state and the timeline, and the open page gets a service's answer."""

import re
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser

import pytest
from conftest import fo_of
from test_protocol import (
    Sides,
    accepted_order,
    cancellation_accepted_order,
    cancellation_rejected_order,
    cancellation_requested_order,
    goods_at,
    line_of,
    rejected_order,
    ship,
    shipped_order,
    state,
    submitted_order,
    withdrawn_order,
)

from adapter import store
from adapter.models import FulfillmentOrder, FulfillmentOrderLine
from adapter.times import utcnow

# SPEC 2.3's statuses and request statuses, written out again as the oracle.
FO_STATUSES = ("open", "scheduled", "on_hold", "in_progress", "incomplete", "closed", "cancelled")
REQUEST_STATUSES = ("unsubmitted", "submitted", "accepted", "rejected", "cancellation_requested",
                    "cancellation_accepted", "cancellation_rejected", "closed")

# SPEC 8's accessible names, written out again as the oracle.
NAMES = {
    "en": {
        "request_fulfillment": "Request fulfillment",
        "cancel_fulfillment_request": "Cancel fulfillment request",
        "request_cancellation": "Request cancellation",
        "revert_to_unfulfilled": "Revert to unfulfilled",
        "mark_as_fulfilled": "Mark as fulfilled",
        "hold": "Hold fulfillment",
        "release_hold": "Release hold",
        "open": "Fulfill now",
        "send_message": "Send message",
        "acknowledge": "Acknowledge",
    },
    "th": {
        "request_fulfillment": "ขอการจัดการสินค้า",
        "cancel_fulfillment_request": "ยกเลิกคำขอให้จัดการ",
        "request_cancellation": "ส่งคำขอยกเลิก",
        "revert_to_unfulfilled": "แปลงกลับไปยังไม่ได้จัดการ",
        "mark_as_fulfilled": "ทำเครื่องหมายว่าจัดการแล้ว",
        "hold": "ระงับการจัดการ",
        "release_hold": "ยกเลิกการระงับ",
        "open": "จัดการตอนนี้",
        "send_message": "ส่งข้อความ",
        "acknowledge": "รับทราบ",
    },
}
CONTACT_SERVICE = {
    "en": "To cancel a fulfillment that is in progress, you need to contact your fulfillment service"
          " directly.",
    "th": "หากต้องการยกเลิกการจัดส่งสินค้าที่กำลังดำเนินการอยู่ คุณจำเป็นต้องติดต่อบริการจัดการคำสั่งซื้อของคุณโดยตรง",
}
NOTE = "กรุณาส่งด่วน 📦 <b>now</b>"
WORKFLOW_SERVICES = {"new": "acme", "legacy": "oldco", "merchant_managed": None}


class Buttons(HTMLParser):
    """Collect each submit button of the page with the FO action its form posts to."""

    ACTION = re.compile(r"^/admin/fulfillment_orders/(\d+)/(\w+)$")

    def __init__(self, html):
        super().__init__()
        self.found, self.form, self.text = [], None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.form = self.ACTION.match(attrs.get("action", ""))
        elif tag == "button" and self.form:
            self.text = ""

    def handle_data(self, data):
        if self.text is not None:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "button" and self.text is not None:
            self.found.append((int(self.form.group(1)), self.form.group(2), self.text.strip()))
            self.text = None
        elif tag == "form":
            self.form = None

    def of(self, fo_id):
        """Return {action: accessible name} of the FO's buttons (an action drawn twice fails)."""
        drawn = [(action, name) for fo, action, name in self.found if fo == fo_id]
        assert len(drawn) == len({action for action, _ in drawn}), drawn
        return dict(drawn)


@pytest.fixture
def sides(api, service, deliver, create_order):
    """Both sides of the protocol: the merchant API and the service's signed webhooks."""
    return Sides(api, service, deliver, create_order)


def page_of(admin, order_id, language="en"):
    """Return the order page in a language."""
    admin.get(f"/admin/language/{language}")
    page = admin.get(f"/admin/orders/{order_id}")
    assert page.status_code == 200, page.html
    return page


def set_state(fo_id, status, request_status, remaining):
    """Put an FO straight into a state of the table (`remaining` False: everything fulfilled)."""
    with store.database.connection_context():
        FulfillmentOrder.update(
            status=status, request_status=request_status,
            fulfill_at=utcnow() + timedelta(days=1) if status == "scheduled" else None,
            hold_reason="other" if status == "on_hold" else None,
        ).where(FulfillmentOrder.id == fo_id).execute()
        FulfillmentOrderLine.update(
            fulfilled_quantity=0 if remaining else FulfillmentOrderLine.quantity
        ).where(FulfillmentOrderLine.fulfillment_order == fo_id).execute()


# ---- the cards cannot diverge from the API ------------------------------------------------


@pytest.mark.parametrize("language", ["en", "th"])
@pytest.mark.parametrize("workflow", list(WORKFLOW_SERVICES))
@pytest.mark.parametrize("status", FO_STATUSES)
def test_each_card_draws_exactly_the_buttons_of_its_supported_actions(
    app, admin, api, create_order, workflow, status, language
):
    svc = WORKFLOW_SERVICES[workflow]
    order = create_order(line_items=goods_at(svc or "acme") if svc else [
        {"sku": "CARD", "title": "Gift card", "quantity": 2, "price": "20.00", "fulfillment_service": None}])
    fo_id = fo_of(order, svc)["id"]
    request_statuses = ["unsubmitted"] if svc is None else REQUEST_STATUSES
    for request_status in request_statuses:
        for remaining in (True, False):
            set_state(fo_id, status, request_status, remaining)
            supported = api.get(f"/fulfillment_orders/{fo_id}").body["supported_actions"]
            drawn = Buttons(page_of(admin, order["id"], language).html).of(fo_id)
            assert drawn == {action: NAMES[language][action] for action in supported}, (
                request_status, remaining)


@pytest.mark.parametrize("language", ["en", "th"])
def test_a_legacy_card_in_progress_says_to_contact_the_service_instead_of_offering_withdrawal(
    sides, admin, language
):
    order, fo_id = accepted_order(sides, "oldco")
    html = page_of(admin, order["id"], language).html
    assert CONTACT_SERVICE[language] in html
    assert set(Buttons(html).of(fo_id)) == {"send_message"}
    new_order, new_fo = accepted_order(sides)
    assert CONTACT_SERVICE[language] not in page_of(admin, new_order["id"], language).html


def test_a_merchant_managed_card_has_no_request_or_message_forms(admin, create_order):
    order = create_order()
    own = fo_of(order, None)
    assert set(Buttons(page_of(admin, order["id"]).html).of(own["id"])) == set(own["supported_actions"]) == {
        "mark_as_fulfilled", "hold"}


# ---- each form: POST -> redirect -> GET, same operation as the API --------------------------


def form_path(fo_id, action):
    return f"/admin/fulfillment_orders/{fo_id}/{action}"


def submit(admin, order_id, fo_id, action, data=None, expect=302):
    """Post a card's form from the order page; check the answer's status; return it."""
    response = admin.post_form(form_path(fo_id, action), data, from_page=f"/admin/orders/{order_id}")
    assert response.status_code == expect, response.html
    if expect == 302:
        assert response.headers["Location"] == f"/admin/orders/{order_id}#fo-{fo_id}"
    return response


def flashed(admin, order_id):
    """Return the flash messages the next GET of the order page shows."""
    html = admin.get(f"/admin/orders/{order_id}").html
    return [unescape(text) for text in re.findall(r'<p class="flash flash-success">([^<]*)</p>', html)]


def kinds_after(sides, order_id, seen):
    return [event["kind"] for event in sides.timeline(order_id)[seen:]]


def test_request_fulfillment_with_a_note_notice_and_some_quantities_splits_like_the_api(sides, admin):
    order = sides.order()
    fo = fo_of(order, "acme")
    tee, mug = line_of(fo, "TEE-1"), line_of(fo, "MUG-1")
    submit(admin, order["id"], fo["id"], "request_fulfillment", {
        f"quantity-{tee['id']}": "1", f"quantity-{mug['id']}": "0", "message": NOTE,
        "notify_customer": "on"})
    assert flashed(admin, order["id"]) == ["Fulfillment requested. The service will answer on this page."]
    after = sides.read_order(order["id"])
    submitted = next(f for f in after["fulfillment_orders"] if f["id"] == fo["id"])
    rest = next(f for f in after["fulfillment_orders"] if f["service"] == "acme" and f["id"] != fo["id"])
    assert state(submitted) == ("in_progress", "submitted")
    assert [(line["sku"], line["quantity"]) for line in submitted["line_items"]] == [("TEE-1", 1)]
    assert state(rest) == ("open", "unsubmitted")
    sides.drain()
    [sent] = sides.sent("fulfillment_request.submitted")
    assert sent["data"]["message"] == NOTE and sent["data"]["notify_customer"] is True


def test_request_fulfillment_of_everything_does_not_split(sides, admin):
    order = sides.order()
    fo = fo_of(order, "acme")
    form = {f"quantity-{line['id']}": str(line["remaining_quantity"]) for line in fo["line_items"]}
    submit(admin, order["id"], fo["id"], "request_fulfillment", form)
    assert len(sides.read_order(order["id"])["fulfillment_orders"]) == len(order["fulfillment_orders"])
    assert state(sides.fo(fo["id"])) == ("in_progress", "submitted")


def test_cancel_fulfillment_request_withdraws_and_tells_the_service(sides, admin):
    order, fo_id = submitted_order(sides)
    seen = len(sides.timeline(order["id"]))
    submit(admin, order["id"], fo_id, "cancel_fulfillment_request", {"message": NOTE})
    assert state(sides.fo(fo_id)) == ("open", "unsubmitted")
    assert kinds_after(sides, order["id"], seen) == ["fulfillment_request.withdrawn"]
    assert flashed(admin, order["id"]) == ["Fulfillment request withdrawn. The service has been told."]


def test_request_cancellation_sends_the_note_to_the_service(sides, admin):
    order, fo_id = accepted_order(sides)
    submit(admin, order["id"], fo_id, "request_cancellation", {"message": NOTE})
    assert state(sides.fo(fo_id)) == ("in_progress", "cancellation_requested")
    sides.drain()
    assert sides.sent("cancellation_request.submitted")[-1]["data"]["message"] == NOTE


def test_revert_of_some_lines_moves_them_to_a_new_fo_and_reminds_to_check_inventory(sides, admin):
    order, fo_id = cancellation_requested_order(sides)
    fo = sides.fo(fo_id)
    tee, mug = line_of(fo, "TEE-1"), line_of(fo, "MUG-1")
    submit(admin, order["id"], fo_id, "revert_to_unfulfilled",
           {f"quantity-{tee['id']}": "2", f"quantity-{mug['id']}": "0"})
    assert flashed(admin, order["id"]) == [
        "Reverted to unfulfilled. Check your inventory counts to make sure they are correct."]
    after = sides.read_order(order["id"])["fulfillment_orders"]
    moved = next(f for f in after if f["service"] == "acme" and f["id"] != fo_id)
    assert state(moved) == ("open", "unsubmitted")
    assert [line["sku"] for line in moved["line_items"]] == ["TEE-1"]
    assert state(sides.fo(fo_id)) == ("in_progress", "cancellation_requested")
    html = admin.get(f"/admin/orders/{order['id']}").html
    assert banners_of(html, moved["id"]) == ["reverted", "new_workflow"]
    assert "reverted" not in banners_of(html, fo_id)


def test_mark_as_fulfilled_records_tracking_and_notifies_the_customer(sides, admin):
    order = sides.order()
    own = fo_of(order, None)
    submit(admin, order["id"], own["id"], "mark_as_fulfilled", {
        f"quantity-{own['line_items'][0]['id']}": "1", "tracking_number": "TH123",
        "tracking_company": "Thailand Post",
        "tracking_url": "https://track.example/TH123", "notify_customer": "on"})
    assert flashed(admin, order["id"]) == ["Items marked as fulfilled."]
    [shipment] = sides.read_order(order["id"])["fulfillments"]
    assert shipment["tracking"] == {"number": "TH123", "company": "Thailand Post",
                                    "url": "https://track.example/TH123"}
    [event] = [e for e in sides.timeline(order["id"]) if e["kind"] == "fulfillment.created"]
    assert event["data"]["customer_notification"] is not None
    assert sides.fo(own["id"])["status"] == "closed"


def test_a_shipment_shows_its_latest_delivery_event_and_links_to_its_whole_history(sides, admin):
    order, _ = shipped_order(sides)
    [shipment] = sides.read_order(order["id"])["fulfillments"]
    # Told out of order: the latest by `happened_at` arrives second.
    for day, status in ((1, "label_printed"), (3, "out_for_delivery"), (2, "in_transit")):
        told = sides.service.send("acme", "fulfillment.event", {
            "external_id": "everything", "status": status, "message": f"<i>hub {day}</i>",
            "happened_at": f"2026-01-0{day}T10:00:00Z"})
        assert told.status_code == 200, told.body
    path = f"/admin/orders/{order['id']}"

    page = admin.get(path).html
    unfolded = admin.get(f"{path}?deliveries=all&timeline=all").html

    def history(html):
        card = re.search(r'<section class="shipment".*?</section>', html, re.S).group(0)
        return re.findall(r"&lt;i&gt;hub (\d)&lt;/i&gt;", card)

    assert history(page) == ["3"] and "<i>" not in page
    [link] = re.findall(r'href="([^"]*deliveries=all[^"]*)"[^>]*>\s*Show all 3 delivery events', page)
    assert unescape(link).endswith(f"#shipment-{shipment['id']}-title")
    assert history(admin.get(unescape(link)).html) == ["3", "2", "1"]
    assert history(unfolded) == ["3", "2", "1"] and "delivery events" not in unfolded
    poll = unescape(re.search(r'hx-get="([^"]+)"', unfolded).group(1))
    assert "deliveries=all" in poll and "timeline=all" in poll
    assert "deliveries=all" not in re.search(r'hx-get="([^"]+)"', page).group(1)


def test_a_folded_history_shows_the_event_the_status_comes_from_when_two_share_a_time(sides, admin):
    order, _ = shipped_order(sides)
    for status in ("delivered", "in_transit"):
        told = sides.service.send("acme", "fulfillment.event", {
            "external_id": "everything", "status": status, "message": f"scan {status}",
            "happened_at": "2026-01-02T10:00:00Z"})
        assert told.status_code == 200, told.body
    card = re.search(r'<section class="shipment".*?</section>',
                     admin.get(f"/admin/orders/{order['id']}").html, re.S).group(0)
    assert "scan delivered" in card and "scan in_transit" not in card
    assert "Show all 2 delivery events" in card


def test_hold_with_reason_and_note_then_release(sides, admin):
    order = sides.order()
    fo_id = fo_of(order, "acme")["id"]
    submit(admin, order["id"], fo_id, "hold", {"reason": "incorrect_address", "note": NOTE})
    assert flashed(admin, order["id"]) == ["Fulfillment held."]
    held = sides.fo(fo_id)
    assert held["status"] == "on_hold" and held["hold"] == {"reason": "incorrect_address", "note": NOTE}
    assert set(Buttons(admin.get(f"/admin/orders/{order['id']}").html).of(fo_id)) == {"release_hold"}
    submit(admin, order["id"], fo_id, "release_hold")
    assert sides.fo(fo_id)["status"] == "open"
    assert flashed(admin, order["id"]) == ["Hold released."]


def test_fulfill_now_opens_a_scheduled_fo(sides, admin):
    later = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    order = sides.order(fulfill_at=later)
    fo_id = fo_of(order, "acme")["id"]
    assert sides.fo(fo_id)["status"] == "scheduled"
    submit(admin, order["id"], fo_id, "open")
    assert sides.fo(fo_id)["status"] == "open"


def test_send_message_goes_to_the_service_verbatim(sides, admin):
    order, fo_id = accepted_order(sides)
    submit(admin, order["id"], fo_id, "send_message", {"message": NOTE})
    sides.drain()
    assert sides.sent("merchant.message")[-1]["data"]["message"] == NOTE
    assert any(e["message"] == NOTE for e in sides.timeline(order["id"]) if e["kind"] == "merchant.message")


def test_acknowledge_clears_needs_attention(sides, admin):
    order, fo_id = withdrawn_order(sides)
    ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="late-box")
    html = admin.get(f"/admin/orders/{order['id']}").html
    assert "needs_attention" in banners_of(html, fo_id)
    assert Buttons(html).of(fo_id)["acknowledge"] == "Acknowledge"
    submit(admin, order["id"], fo_id, "acknowledge")
    assert sides.fo(fo_id)["needs_attention"] is False
    assert "needs_attention" not in banners_of(admin.get(f"/admin/orders/{order['id']}").html, fo_id)


# ---- refusals: the page again, 4xx, reasons by the fields, nothing changed ------------------


def refusal(sides, admin, order_id, fo_id, action, data, status):
    """Post a refused form; check nothing changed; return the page it answered."""
    sides.drain()
    before_order, before_events = sides.read_order(order_id), len(sides.timeline(order_id))
    response = submit(admin, order_id, fo_id, action, data, expect=status)
    assert sides.read_order(order_id)["fulfillment_orders"] == before_order["fulfillment_orders"]
    assert sides.read_order(order_id)["fulfillments"] == before_order["fulfillments"]
    assert len(sides.timeline(order_id)) == before_events
    assert sides.drain() == 0
    if status == 422:
        assert '<details class="action" open>' in response.html
    return response.html


def invalid_input(html, input_id):
    """Return the error text drawn for an input marked invalid, or None."""
    tag = re.search(rf'<(?:input|textarea|select) id="{re.escape(input_id)}"[^>]*>', html)
    if tag is None or 'aria-invalid="true"' not in tag.group(0):
        return None
    error = re.search(rf'<p id="{re.escape(input_id)}-error" class="field-error">([^<]*)</p>', html)
    return unescape(error.group(1))


@pytest.mark.parametrize("typed", ["two", "²", "-1", "1.5", "99999999999", "3"])
def test_a_quantity_that_is_not_one_the_api_takes_is_shown_at_its_input(sides, admin, typed):
    order = sides.order()
    fo = fo_of(order, "acme")
    tee = line_of(fo, "TEE-1")
    html = refusal(sides, admin, order["id"], fo["id"], "request_fulfillment",
                   {f"quantity-{tee['id']}": typed, "message": "kept"}, 422)
    assert invalid_input(html, f"fo-{fo['id']}-request_fulfillment-quantity-{tee['id']}") == (
        "Enter a whole number from 0 to the quantity remaining.")
    assert f'value="{typed}"' in html and ">kept</textarea>" in html
    assert '<p class="banner banner-critical" role="alert">' in html


def test_requesting_no_units_is_shown_at_the_items(sides, admin):
    order = sides.order()
    fo = fo_of(order, "acme")
    html = refusal(sides, admin, order["id"], fo["id"], "request_fulfillment",
                   {f"quantity-{line['id']}": "0" for line in fo["line_items"]}, 422)
    assert "Choose at least one item: give a quantity above 0." in html


def test_withdrawing_a_request_the_service_accepted_meanwhile_is_409_with_a_banner(sides, admin):
    order, fo_id = submitted_order(sides)
    admin.get(f"/admin/orders/{order['id']}")
    sides.tell("acme", "fulfillment_request.accepted", fulfillment_order_id=fo_id)
    html = refusal(sides, admin, order["id"], fo_id, "cancel_fulfillment_request", {}, 409)
    assert "This action is not possible now" in html
    assert set(Buttons(html).of(fo_id)) == {"request_cancellation", "send_message"}


def test_a_cancellation_note_longer_than_the_api_takes_is_shown_at_the_note(sides, admin):
    order, fo_id = accepted_order(sides)
    html = refusal(sides, admin, order["id"], fo_id, "request_cancellation", {"message": "x" * 5001}, 422)
    assert invalid_input(html, f"fo-{fo_id}-request_cancellation-message") == (
        "A note can have at most 5,000 characters.")


def test_reverting_more_than_remains_is_shown_at_the_quantity(sides, admin):
    order, fo_id = cancellation_requested_order(sides)
    tee = line_of(sides.fo(fo_id), "TEE-1")
    html = refusal(sides, admin, order["id"], fo_id, "revert_to_unfulfilled",
                   {f"quantity-{tee['id']}": "3"}, 422)
    assert invalid_input(html, f"fo-{fo_id}-revert_to_unfulfilled-quantity-{tee['id']}") is not None


@pytest.mark.parametrize("field, value, input_name, status", [
    ("tracking_url", "ftp://track.example/1", "tracking_url", 422),
    ("tracking_url", "not a url", "tracking_url", 422),
    ("tracking_number", "9" * 256, "tracking_number", 422),
    ("tracking_company", "c" * 256, "tracking_company", 422),
    ("quantity", "5", None, 409),
])
def test_mark_as_fulfilled_refusals(sides, admin, field, value, input_name, status):
    order = sides.order()
    own = fo_of(order, None)
    name = f"quantity-{own['line_items'][0]['id']}" if field == "quantity" else field
    html = refusal(sides, admin, order["id"], own["id"], "mark_as_fulfilled", {name: value}, status)
    if input_name:
        assert invalid_input(html, f"fo-{own['id']}-mark_as_fulfilled-{input_name}")
    else:
        assert "More items than remain to be fulfilled. Nothing was changed." in html


def test_a_hold_reason_the_api_does_not_know_is_shown_at_the_reason(sides, admin):
    order = sides.order()
    fo_id = fo_of(order, "acme")["id"]
    html = refusal(sides, admin, order["id"], fo_id, "hold", {"reason": "bored"}, 422)
    assert invalid_input(html, f"fo-{fo_id}-hold-reason") == "Choose a reason."


def test_releasing_a_hold_already_released_is_409(sides, admin):
    order = sides.order()
    fo_id = fo_of(order, "acme")["id"]
    refusal(sides, admin, order["id"], fo_id, "release_hold", {}, 409)


def test_fulfill_now_on_an_open_fo_is_409(sides, admin):
    order = sides.order()
    refusal(sides, admin, order["id"], fo_of(order, "acme")["id"], "open", {}, 409)


def test_a_blank_message_is_shown_at_the_message(sides, admin):
    order, fo_id = accepted_order(sides)
    html = refusal(sides, admin, order["id"], fo_id, "send_message", {"message": "   "}, 422)
    assert invalid_input(html, f"fo-{fo_id}-send_message-message") == (
        "Write a message of at most 5,000 characters.")


def test_refusals_speak_thai_on_a_thai_page(sides, admin):
    order, fo_id = accepted_order(sides)
    admin.get("/admin/language/th")
    html = refusal(sides, admin, order["id"], fo_id, "send_message", {"message": ""}, 422)
    assert invalid_input(html, f"fo-{fo_id}-send_message-message").isascii() is False


@pytest.mark.parametrize("path, status", [
    ("/admin/fulfillment_orders/999999/acknowledge", 404),
    ("/admin/fulfillment_orders/{fo}/explode", 404),
])
def test_an_unknown_fo_or_action_is_404(sides, admin, path, status):
    order = sides.order()
    response = admin.post_form(path.format(fo=fo_of(order, "acme")["id"]), {})
    assert response.status_code == status


def test_a_form_without_its_csrf_token_is_400_and_changes_nothing(sides, admin):
    order = sides.order()
    fo_id = fo_of(order, "acme")["id"]
    response = admin.post_form(form_path(fo_id, "hold"), {"reason": "other"}, from_page=None)
    assert response.status_code == 400
    assert sides.fo(fo_id)["status"] == "open"


# ---- banners --------------------------------------------------------------------------------


def banners_of(html, fo_id):
    """Return the kinds of the banners on an FO's card, top to bottom."""
    card = re.search(rf'<section class="card fulfillment-order" id="fo-{fo_id}".*?<table class="lines">',
                     html, re.S).group(0)
    return re.findall(r'data-banner="(\w+)"', card)


@pytest.mark.parametrize("language, reason", [("en", "Inventory out of stock"), ("th", "สินค้าในคลังหมด")])
def test_a_rejection_shows_the_reason_in_the_page_language_and_the_service_message_verbatim(
    sides, admin, language, reason
):
    order, fo_id = submitted_order(sides)
    sides.tell("acme", "fulfillment_request.rejected", fulfillment_order_id=fo_id,
               reason="inventory_out_of_stock", message=NOTE)
    html = page_of(admin, order["id"], language).html
    assert banners_of(html, fo_id)[0] == "rejected"
    banner = re.search(r'data-banner="rejected">.*?</div>', html, re.S).group(0)
    assert reason in banner
    assert "กรุณาส่งด่วน 📦 &lt;b&gt;now&lt;/b&gt;" in banner
    if language == "th":
        assert "บริการจัดการคำสั่งซื้อปฏิเสธคำขอ" in banner


@pytest.mark.parametrize("flow, kind, thai", [
    (cancellation_accepted_order, "cancellation_accepted", "ยอมรับคำขอยกเลิกแล้ว"),
    (cancellation_rejected_order, "cancellation_rejected", "คำขอยกเลิกถูกปฏิเสธ"),
    (rejected_order, "rejected", "บริการจัดการคำสั่งซื้อปฏิเสธคำขอ"),
])
def test_answers_of_the_service_have_their_banner(sides, admin, flow, kind, thai):
    order, fo_id = flow(sides)
    assert kind in banners_of(page_of(admin, order["id"]).html, fo_id)
    assert thai in page_of(admin, order["id"], "th").html


def test_a_cancellation_answer_is_no_longer_a_banner_once_the_fo_is_closed(sides, admin):
    order, fo_id = cancellation_rejected_order(sides)
    ship(sides, "acme", fo_id, external_id="everything")
    assert banners_of(page_of(admin, order["id"]).html, fo_id) == []


@pytest.mark.parametrize("language, reminder", [
    ("en", "Check your inventory counts to make sure they are correct."),
    ("th", "ตรวจสอบจำนวนสินค้าคงคลังของคุณเพื่อให้แน่ใจว่าถูกต้อง"),
])
def test_a_revert_reminds_to_check_inventory_on_the_card_and_in_the_timeline(
    sides, admin, language, reminder
):
    order, fo_id = cancellation_requested_order(sides)
    sides.act(fo_id, "revert")
    html = page_of(admin, order["id"], language).html
    assert banners_of(html, fo_id)[0] == "reverted"
    timeline = html[html.index('<ol class="timeline">'):]
    assert reminder in timeline


def test_a_late_shipment_shows_the_needs_attention_banner_in_thai(sides, admin):
    order, fo_id = withdrawn_order(sides)
    ship(sides, "acme", fo_id, {"TEE-1": 1}, external_id="late-box")
    html = page_of(admin, order["id"], "th").html
    assert "มีการจัดส่งที่ต้องตรวจสอบ" in html and ">รับทราบ</button>" in html


def test_new_workflow_banner_is_on_new_workflow_cards_only(sides, admin):
    order = sides.order()
    html = page_of(admin, order["id"], "th").html
    assert banners_of(html, fo_of(order, "acme")["id"]) == ["new_workflow"]
    assert banners_of(html, fo_of(order, None)["id"]) == []
    assert "บริการจัดการคำสั่งซื้อนี้ใช้ขั้นตอนการทำงานใหม่" in html
    legacy = sides.order("oldco")
    assert banners_of(page_of(admin, legacy["id"]).html, fo_of(legacy, "oldco")["id"]) == []


# ---- live updates ---------------------------------------------------------------------------


def live_url(html):
    return unescape(re.search(r'<div id="order-live" hx-get="([^"]+)"', html).group(1))


def test_the_open_page_gets_nothing_until_the_service_answers_then_the_new_parts(sides, admin):
    order, fo_id = submitted_order(sides)
    url = live_url(admin.get(f"/admin/orders/{order['id']}").html)
    quiet = admin.get(url, headers={"HX-Request": "true"})
    assert quiet.status_code == 204 and quiet.html == ""
    sides.tell("acme", "fulfillment_request.accepted", fulfillment_order_id=fo_id)
    changed = admin.get(url, headers={"HX-Request": "true"})
    assert changed.status_code == 200
    assert changed.html.lstrip().startswith('<div id="order-live"') and "<html" not in changed.html
    assert set(Buttons(changed.html).of(fo_id)) == {"request_cancellation", "send_message"}
    assert live_url(changed.html) != url
    assert admin.get(live_url(changed.html), headers={"HX-Request": "true"}).status_code == 204


def test_a_message_and_a_scheduled_fo_coming_due_change_the_version(sides, admin, clock):
    later = (clock.now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    order = sides.order(fulfill_at=later)
    url = live_url(admin.get(f"/admin/orders/{order['id']}").html)
    assert admin.get(url).status_code == 204
    clock.advance(hours=2)
    assert admin.get(url).status_code == 200


def test_a_poll_without_a_session_asks_htmx_to_open_the_sign_in_page(sides, admin):
    order = sides.order()
    url = live_url(admin.get(f"/admin/orders/{order['id']}").html)
    admin.post_form("/admin/logout")
    poll = admin.get(url, headers={"HX-Request": "true",
                                   "HX-Current-URL": f"http://localhost/admin/orders/{order['id']}"})
    assert poll.status_code == 401
    assert poll.headers["HX-Redirect"] == f"/admin/login?next=/admin/orders/{order['id']}"


def test_the_live_fragment_of_an_unknown_order_is_404(admin):
    assert admin.get("/admin/orders/424242/live?version=x").status_code == 404

"""The orders list (saved views, filters, columns, pages) and the read-only order page."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import fo_of

from adapter import store
from adapter.models import Fulfillment
from handlers.admin import orders as admin_orders

# SPEC 8's saved views, written out again as the oracle.
SAVED_VIEWS = {
    "All": {},
    "Unfulfilled": {"order_status": "open", "fulfillment_status": "unfulfilled,partially_fulfilled"},
    "Unpaid": {"order_status": "open", "payment_status": "unpaid"},
    "Expiring": {"payment_status": "expiring"},
    "In progress": {"fulfillment_status": "in_progress"},
    "On hold": {"fulfillment_status": "on_hold"},
    "Scheduled": {"fulfillment_status": "scheduled"},
    "Needs attention": {"needs_attention": "true"},
    "Return requested": {"return_status": "return_requested"},
    "Archived": {"order_status": "archived"},
}
XSS = "<img src=x onerror=alert(1)>"


def tabs_of(html):
    """Return {tab title: its filters} from the saved-views navigation."""
    nav = re.search(r'<nav class="tabs".*?</nav>', html, re.S).group(0)
    tabs = {}
    for href, title in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav):
        query = parse_qs(urlsplit(unescape(href)).query)
        tabs[title] = {name: ",".join(values) for name, values in query.items()}
    return tabs


def names_listed(html):
    """Return the order names in the list, top to bottom."""
    return re.findall(r'<th scope="row"><a href="/admin/orders/\d+">([^<]+)</a>', html)


@pytest.fixture
def shop(api, create_order):
    """Orders in several states: unpaid, paid, archived, on hold, with a return requested."""
    unpaid = create_order(external_id="unpaid")
    paid = create_order(external_id="paid")
    api.post(f"/orders/{paid['id']}/transactions", {"kind": "sale", "amount": paid["total_price"]})
    archived = create_order(external_id="archived")
    api.post(f"/orders/{archived['id']}/archive")
    held = create_order(external_id="held", hold={"reason": "incorrect_address", "note": "check"})
    return {"unpaid": unpaid, "paid": paid, "archived": archived, "held": held}


def test_saved_views_are_the_filter_combinations_of_the_spec(admin):
    assert tabs_of(admin.get("/admin/orders").html) == SAVED_VIEWS


@pytest.mark.parametrize("title", list(SAVED_VIEWS))
def test_each_saved_view_lists_what_the_api_lists_for_its_filters(admin, api, shop, title):
    filters = SAVED_VIEWS[title]
    page = admin.get("/admin/orders", query_string=filters)
    assert page.status_code == 200
    assert re.search(rf'aria-current="page">{re.escape(title)}</a>', page.html)
    expected = [order["name"] for order in api.get("/orders", query_string=filters).body["orders"]]
    assert names_listed(page.html) == expected


def test_filters_combine_and_a_repeated_filter_means_any_of(admin, api, shop):
    page = admin.get("/admin/orders?payment_status=paid&payment_status=pending&order_status=open")
    expected = api.get("/orders?payment_status=paid,pending&order_status=open").body["orders"]
    assert names_listed(page.html) == [order["name"] for order in expected]
    assert shop["paid"]["name"] in names_listed(page.html)
    assert shop["archived"]["name"] not in names_listed(page.html)
    assert 'name="payment_status" value="paid" checked' in page.html
    assert 'name="payment_status" value="pending" checked' in page.html
    assert not any(re.search(r'aria-current="page"', tab) for tab in re.findall(
        r'<nav class="tabs".*?</nav>', page.html, re.S))


def test_service_and_needs_attention_filters(admin, api, shop):
    page = admin.get("/admin/orders?service=acme&needs_attention=false")
    expected = api.get("/orders?service=acme&needs_attention=false").body["orders"]
    assert names_listed(page.html) == [order["name"] for order in expected] != []


@pytest.mark.parametrize(("query", "api_query"), [
    ("q=paid", "q=paid"),
    ("q=%20%20paid%20", "q=paid"),
    ("q=paid&order_status=archived", "q=paid&order_status=archived"),
])
def test_the_search_box_finds_what_the_api_finds_with_filters(admin, api, shop, query, api_query):
    page = admin.get(f"/admin/orders?{query}")
    assert page.status_code == 200
    expected = [order["name"] for order in api.get(f"/orders?{api_query}").body["orders"]]
    assert names_listed(page.html) == expected
    assert 'name="q" value="paid"' in page.html


def test_the_search_box_is_labelled_in_thai(admin):
    page = admin.get("/admin/orders", headers={"Accept-Language": "th"})
    assert "ค้นหา" in page.html and 'name="q"' in page.html


@pytest.mark.parametrize("query", ["payment_status=nonsense", "needs_attention=maybe", "cursor=forged",
                                   "q=" + "x" * 400])
def test_an_unknown_filter_value_is_a_422_page(admin, query):
    page = admin.get(f"/admin/orders?{query}")
    assert page.status_code == 422
    assert "A filter has a value the list does not know" in page.html


def test_each_row_shows_the_columns(admin, api, create_order):
    order = create_order(
        shipping_address={"name": "Somchai", "address1": "1 Sukhumvit", "city": "Bangkok",
                          "country_code": "TH", "phone": "+66 81 234 5678"},
    )
    api.post(f"/orders/{order['id']}/transactions", {"kind": "authorization", "amount": "1.00"})
    row = re.search(r"<tr>\s*<th scope=\"row\">.*?</tr>", admin.get("/admin/orders").html, re.S).group(0)
    assert f'href="/admin/orders/{order["id"]}">{order["name"]}</a>' in row
    assert "Somchai" in row and "+66 81 234 5678" in row
    assert "45.50 USD" in row
    assert "Partially paid" in row or "Authorized" in row
    assert "Unfulfilled" in row
    assert "acme" in row and "Merchant-managed" in row
    assert re.search(r'<time datetime="[^"]+">\d{1,2} \w{3} \d{4}, \d\d:\d\d UTC</time>', row)


def test_phone_or_email_falls_back_to_the_email(admin, create_order):
    create_order(email="nok@example.com")
    assert "nok@example.com" in admin.get("/admin/orders").html


def test_orders_are_listed_newest_first_a_page_at_a_time(admin, create_order, monkeypatch):
    monkeypatch.setattr(admin_orders, "PAGE_SIZE", 2)
    names = [create_order()["name"] for _ in range(3)]
    first = admin.get("/admin/orders?order_status=open")
    assert names_listed(first.html) == [names[2], names[1]]
    older = unescape(re.search(r'<a href="([^"]+)" rel="next">Older orders</a>', first.html).group(1))
    assert "order_status=open" in older
    second = admin.get(older)
    assert names_listed(second.html) == [names[0]]
    assert "Older orders" not in second.html
    newest = unescape(re.search(r'<a href="([^"]+)">Newest orders</a>', second.html).group(1))
    assert names_listed(admin.get(newest).html) == [names[2], names[1]]


def test_empty_states(admin, create_order):
    assert "No orders yet." in admin.get("/admin/orders").html
    create_order()
    page = admin.get("/admin/orders?order_status=archived")
    assert "No orders match these filters." in page.html


def test_order_page_shows_statuses_cards_payments_and_timeline(admin, api, create_order):
    order = create_order(hold=None)
    acme = fo_of(order, "acme")
    api.post(f"/orders/{order['id']}/transactions", {"kind": "sale", "amount": order["total_price"]})
    api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {"message": "กรุณาส่งด่วน"})
    own = fo_of(order, None)
    api.post(f"/fulfillment_orders/{own['id']}/mark_fulfilled",
             {"tracking": {"number": "1Z999", "company": "UPS", "url": "https://ups.example/1Z999"}})
    page = admin.get(f"/admin/orders/{order['id']}")
    assert page.status_code == 200
    html = page.html
    assert "<h1>" + order["name"] + "</h1>" in html
    assert 'badge-success">Paid</span>' in html
    assert 'badge-attention">Partially fulfilled</span>' in html
    assert re.search(r'<h2 id="fo-\d+-title">acme</h2>\s*<span class="badge[^"]*">In progress</span>'
                     r'\s*<span class="badge[^"]*">Submitted</span>', html)
    assert re.search(r"<td>T-shirt</td>\s*<td>TEE-1</td>\s*<td class=\"number\">2</td>\s*"
                     r"<td class=\"number\">2</td>", html)
    assert re.search(r"<td>Gift card</td>\s*<td>CARD</td>\s*<td class=\"number\">1</td>\s*"
                     r"<td class=\"number\">0</td>", html)
    assert '<a href="https://ups.example/1Z999" rel="noopener noreferrer" target="_blank">1Z999</a>' in html
    assert "UPS" in html
    assert "<td>Sale</td>" in html and "45.50 USD" in html
    timeline = html[html.index('id="timeline-title"'):]
    kinds = re.findall(r"<strong>([^<]+)</strong>", timeline)
    assert kinds == ["Items fulfilled", "Fulfillment requested", "Payment received", "Order imported"]
    assert '<blockquote class="verbatim">กรุณาส่งด่วน</blockquote>' in timeline


def test_service_text_is_shown_as_text_never_as_markup(admin, api, create_order, app):
    order = create_order(shipping_address={"name": XSS, "address1": XSS, "city": "Bangkok",
                                           "country_code": "TH"}, email="a@example.com")
    acme = fo_of(order, "acme")
    api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {"message": XSS})
    for path in ("/admin/orders", f"/admin/orders/{order['id']}"):
        html = admin.get(path).html
        assert XSS not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_only_http_and_https_tracking_urls_become_links(admin, api, create_order, app):
    order = create_order()
    own = fo_of(order, None)
    api.post(f"/fulfillment_orders/{own['id']}/mark_fulfilled",
             {"tracking": {"number": "TRACK-1", "url": "https://carrier.example/t"}})
    with app.app_context(), store.database.connection_context():
        # A URL that validation would refuse today may be in older rows or come from elsewhere.
        Fulfillment.update(tracking_url="javascript:alert(1)").execute()
    html = admin.get(f"/admin/orders/{order['id']}").html
    assert "javascript:" not in html
    assert "<dd>TRACK-1</dd>" in html


def test_an_unknown_order_is_a_404_page(admin):
    page = admin.get("/admin/orders/999999")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "There is nothing at this address." in page.html


def test_returns_are_listed_with_reasons(admin, api, create_order):
    order = create_order()
    api.post(f"/orders/{order['id']}/transactions", {"kind": "sale", "amount": order["total_price"]})
    own = fo_of(order, None)
    api.post(f"/fulfillment_orders/{own['id']}/mark_fulfilled", {})
    line = next(line for line in order["line_items"] if line["sku"] == "CARD")
    created = api.post(f"/orders/{order['id']}/returns", {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line["id"], "quantity": 1, "reason": "defective"}],
    })
    assert created.status_code == 201, created.body
    html = admin.get(f"/admin/orders/{order['id']}").html
    assert "Return requested" in html and "<td>Defective</td>" in html
    assert "Requested by: Customer" in html


"""The order page's timeline says who acted: the name of a named merchant token, as text."""

import re

import pytest
from conftest import TOKEN

NAMED = "named-token-somchai-0123456789"
NAME = "Somchai <b>(warehouse)</b> 🌸"


@pytest.fixture
def overrides(overrides):
    overrides["merchant"]["tokens"] = [{"name": NAME, "token": NAMED}]
    return overrides


def comment_from(visitor, api, create_order, token, text):
    order = create_order()
    assert visitor.sign_in(token=token).status_code == 302
    path = f"/admin/orders/{order['id']}"
    response = visitor.post_form(f"{path}/add_comment", {"message": text}, from_page=path)
    assert response.status_code == 302, response.html
    return visitor.get(path).html


def test_a_named_token_is_named_on_what_it_did_escaped(visitor, api, create_order):
    html = comment_from(visitor, api, create_order, NAMED, "packed twice")
    assert "Merchant (Somchai &lt;b&gt;(warehouse)&lt;/b&gt; 🌸)" in html
    assert "<b>(warehouse)</b>" not in html


def test_a_plain_token_is_the_merchant_without_a_name(visitor, api, create_order):
    html = comment_from(visitor, api, create_order, TOKEN, "packed twice")
    assert re.search(r'<p class="who">Merchant\s+·', html)


def test_a_long_timeline_shows_its_newest_fifty_and_links_to_the_rest(admin, api, create_order):
    order = create_order()
    for n in range(60):
        assert api.post(f"/orders/{order['id']}/comments", {"message": f"note {n:02}"}).status_code == 201
    total = len(api.get(f"/orders/{order['id']}/timeline").body)
    path = f"/admin/orders/{order['id']}"

    page = admin.get(path).html
    whole = admin.get(f"{path}?timeline=all").html

    assert page.count('class="timeline-event"') == 50
    assert "note 59" in page and "note 10" in page and "note 09" not in page
    assert f"Show all {total} events" in page
    assert whole.count('class="timeline-event"') == total
    assert "note 00" in whole and "Show all" not in whole
    assert "timeline=all" in re.search(r'hx-get="([^"]+)"', whole).group(1)
    assert "timeline=all" not in re.search(r'hx-get="([^"]+)"', page).group(1)

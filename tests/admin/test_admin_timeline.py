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

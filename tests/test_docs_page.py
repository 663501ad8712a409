"""`GET /docs`: the OpenAPI document for people, rendered on the server with nothing from outside."""

import json
import re
from html.parser import HTMLParser

import pytest

from handlers import openapi


class Page(HTMLParser):
    """Collect what a CSP or an offline reader cares about: scripts, styles, links, anchors."""

    def __init__(self):
        super().__init__()
        self.scripts, self.inline_styles, self.style_blocks = 0, 0, 0
        self.references, self.ids, self.fragments = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.scripts += tag == "script"
        self.style_blocks += tag == "style"
        self.inline_styles += "style" in attrs
        if any(name.startswith("on") for name in attrs):
            self.scripts += 1
        for name in ("href", "src"):
            if attrs.get(name):
                self.references.append(attrs[name])
                if attrs[name].startswith("#"):
                    self.fragments.append(attrs[name][1:])
        if "id" in attrs:
            self.ids.add(attrs["id"])


@pytest.fixture
def page(api):
    """The served page, parsed."""
    response = api.get("/docs", token=None)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    parsed = Page()
    parsed.feed(response.get_data(as_text=True))
    parsed.response = response
    return parsed


@pytest.fixture
def document(api):
    """The served OpenAPI document."""
    return api.get("/openapi.json", token=None).body


def test_docs_page_needs_no_token_and_sends_a_strict_content_security_policy(page):
    policy = page.response.headers["Content-Security-Policy"]

    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.response.headers["X-Content-Type-Options"] == "nosniff"


def test_docs_page_has_no_script_and_no_inline_style(page):
    assert page.scripts == 0
    assert page.inline_styles == 0
    assert page.style_blocks == 0


def test_docs_page_loads_nothing_from_outside_the_app(api, page):
    assert page.references
    for reference in page.references:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", reference, re.I), reference
    stylesheets = [ref for ref in page.references if ref.endswith(".css")]
    assert stylesheets
    for stylesheet in stylesheets:
        response = api.get(stylesheet, token=None)
        assert response.status_code == 200
        assert response.mimetype == "text/css"
        response.close()


def test_every_link_within_the_page_has_its_target(page):
    assert page.fragments
    assert set(page.fragments) - page.ids == set()


def test_docs_page_lists_every_operation_grouped_by_tag(page, document):
    text = page.response.get_data(as_text=True)
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["operationId"] in page.ids, path
            assert path in text
    positions = [text.index(f"<h2>{tag['name']}</h2>") for tag in document["tags"]
                 if f"<h2>{tag['name']}</h2>" in text]
    assert len(positions) >= 5


def test_docs_page_shows_bodies_parameters_answers_and_rules(page):
    text = page.response.get_data(as_text=True)

    assert 'href="#schema-OrderIn"' in text
    assert "<code>order_status</code>" in text
    assert "<code>webhook-signature</code>" in text
    assert "<code>422</code>" in text
    assert "at most 500 items" in text
    assert "pattern ^[A-Z]{3}$" in text
    assert "&#34;awaiting_payment&#34;" in text or "&quot;awaiting_payment&quot;" in text


def test_docs_page_shows_the_messages_the_adapter_sends_and_the_inbound_examples(page, document):
    text = page.response.get_data(as_text=True)

    for name, item in document["webhooks"].items():
        assert item["post"]["operationId"] in page.ids
        assert f"<code>{name}</code>" in text
    assert "<code>Idempotency-Key</code>" in text
    assert "SHP-1001" in text


def test_docs_page_escapes_the_document_text(api, app):
    document = openapi.build(app)
    document["info"]["description"] = "<script>alert(1)</script>"
    app.extensions["openapi"] = json.dumps(document)
    text = api.get("/docs", token=None).get_data(as_text=True)

    assert "<script>" not in text
    assert "&lt;script&gt;" in text

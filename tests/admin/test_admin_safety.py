"""Safety of the admin pages: headers, no inline code, the vendored htmx unchanged."""

import hashlib
import re
from pathlib import Path

import pytest

from handlers.admin import safety

PACKAGE = Path(__file__).resolve().parents[2] / "handlers" / "admin"
TEMPLATES = sorted((PACKAGE / "templates").rglob("*.html"))


@pytest.mark.parametrize("path", ["/admin/login", "/admin/orders", "/admin/orders/999999",
                                  "/admin/static/admin.css", "/admin/nowhere"])
def test_admin_responses_carry_the_safety_headers(admin, path):
    response = admin.get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_are_not_cached(admin):
    assert admin.get("/admin/orders").headers["Cache-Control"] == "no-store"


def test_the_api_is_left_without_page_headers(api):
    assert "Content-Security-Policy" not in api.get("/orders").headers


def test_the_policy_allows_only_the_apps_own_scripts_and_styles():
    directives = dict(part.split(" ", 1) for part in safety.CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_templates_hold_no_inline_script_or_style_and_never_mark_data_safe(template):
    text = template.read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", text)
    assert "<style" not in text and " style=" not in text
    assert not re.search(r"\son[a-z]+=", text)
    assert "|safe" not in text and "Markup(" not in text
    assert "autoescape false" not in text


def test_vendored_htmx_matches_its_recorded_checksum():
    record = (PACKAGE / "static" / "htmx.min.js.txt").read_text(encoding="utf-8")
    recorded = re.search(r"^sha256: ([0-9a-f]{64})$", record, re.M).group(1)
    assert re.search(r"^htmx\.min\.js: htmx\.org \d+\.\d+\.\d+ ", record, re.M)
    actual = hashlib.sha256((PACKAGE / "static" / "htmx.min.js").read_bytes()).hexdigest()
    assert actual == recorded


def test_base_page_loads_htmx_and_the_stylesheet_from_the_app(admin):
    html = admin.get("/admin/orders").html
    assert '<script src="/admin/static/htmx.min.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/admin/static/admin.css">' in html
    assert admin.get("/admin/static/htmx.min.js").status_code == 200

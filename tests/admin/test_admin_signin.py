"""Signing in to the admin pages: sessions, their end, the throttle and CSRF (SPEC 8)."""

import pytest
from conftest import TOKEN

from app import create_app
from handlers.admin import signin
from handlers.admin.throttle import FAILURES_PER_WINDOW, FailedSignIns

from .conftest import Admin


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    """Each test starts with no failed sign-ins counted."""
    monkeypatch.setattr(signin, "failed_sign_ins", FailedSignIns())


@pytest.mark.parametrize("path", ["/admin/", "/admin/orders", "/admin/orders/1", "/admin/logout"])
def test_every_page_but_sign_in_redirects_to_it_without_a_session(visitor, path):
    response = visitor.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_sign_in_with_a_merchant_token_opens_a_session_cookie(visitor):
    response = visitor.sign_in(next_page="/admin/orders?payment_status=unpaid")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/orders?payment_status=unpaid"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("adapter_admin=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie
    assert TOKEN not in cookie
    assert visitor.get("/admin/orders").status_code == 200


def test_session_cookie_is_secure_over_https(app):
    client = Admin(app.test_client())
    # Over HTTPS the CSRF check also wants the Referer a browser sends to its own site.
    response = client.sign_in(base_url="https://shop.example",
                              headers={"Referer": "https://shop.example/admin/login"})
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("next_page", ["https://evil.example/", "//evil.example/admin/", "/orders",
                                       "/admin/\\evil"])
def test_sign_in_never_redirects_outside_the_admin(visitor, next_page):
    response = visitor.sign_in(next_page=next_page)
    assert response.headers["Location"] == "/admin/orders"


@pytest.mark.parametrize("token, status", [
    ("not-a-token", 403),
    (TOKEN + "x", 403),
    (TOKEN[:-1], 403),
    ("", 422),
])
def test_refused_sign_in_shows_the_form_again_and_opens_no_session(visitor, token, status):
    response = visitor.sign_in(token)
    assert response.status_code == status
    assert 'role="alert"' in response.html
    assert visitor.get("/admin/orders").status_code == 302


def test_refused_sign_in_says_the_same_whatever_the_token(app, overrides):
    overrides["merchant"]["api_tokens"] = [TOKEN, "another-real-token-0123"]
    first = Admin(create_app(overrides).test_client()).sign_in("wrong-token-aaaa")
    second = Admin(create_app(overrides).test_client()).sign_in("another-real-token-0124")
    error = "This token does not sign you in."
    assert error in first.html and error in second.html


def test_failed_sign_ins_are_throttled_per_client(visitor, app):
    for _ in range(FAILURES_PER_WINDOW):
        assert visitor.sign_in("wrong-token").status_code == 403
    blocked = visitor.sign_in(TOKEN)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 61
    assert "Too many failed sign-ins" in blocked.html
    # Another client is not held back by the first one's failures.
    other = Admin(app.test_client())
    assert other.sign_in(environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 302


def test_throttle_lets_a_client_try_again_after_the_window():
    clock = [1000.0]
    throttle = FailedSignIns(limit=2, window=60, clock=lambda: clock[0])
    throttle.record_failure("a")
    throttle.record_failure("a")
    assert throttle.wait_seconds("a") == 61
    clock[0] += 30
    assert throttle.wait_seconds("a") == 31
    clock[0] += 31
    assert throttle.wait_seconds("a") == 0
    throttle.record_failure("b")
    assert "a" not in throttle._failures


def test_sign_out_ends_the_session(admin):
    response = admin.post_form("/admin/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login"
    assert "You have signed out." in admin.get("/admin/login").html
    assert admin.get("/admin/orders").status_code == 302


def test_session_ends_after_session_hours(admin, monkeypatch):
    import time

    later = time.time() + 12 * 3600 + 1
    monkeypatch.setattr("handlers.admin.sessions.time.time", lambda: later)
    assert admin.get("/admin/orders").status_code == 302


def test_session_lasts_within_session_hours(admin, monkeypatch):
    import time

    later = time.time() + 12 * 3600 - 60
    monkeypatch.setattr("handlers.admin.sessions.time.time", lambda: later)
    assert admin.get("/admin/orders").status_code == 200


def on_another_app(browser, app):
    """Return the same browser (its cookies) talking to another app instance: a restart or a host."""
    client = app.test_client()
    client._cookies = dict(browser.client._cookies)
    return Admin(client)


def test_removing_the_token_from_the_configuration_ends_its_sessions(app, overrides):
    overrides["merchant"]["api_tokens"] = [TOKEN, "kept-token-0123456789"]
    first = create_app(overrides)
    removed, kept = Admin(first.test_client()), Admin(first.test_client())
    assert removed.sign_in(TOKEN).status_code == 302
    assert kept.sign_in("kept-token-0123456789").status_code == 302
    overrides["merchant"]["api_tokens"] = ["kept-token-0123456789"]
    restarted = create_app(overrides)
    removed, kept = on_another_app(removed, restarted), on_another_app(kept, restarted)
    response = removed.get("/admin/orders")
    assert response.status_code == 302
    assert "Your session has ended" in removed.get(response.headers["Location"]).html
    assert kept.get("/admin/orders").status_code == 200


def test_session_is_valid_on_every_host_sharing_the_key(admin, overrides):
    assert on_another_app(admin, create_app(overrides)).get("/admin/orders").status_code == 200


def test_session_is_not_valid_on_a_host_with_another_key(admin, overrides):
    overrides["admin"] = {"secret_key": "another-key-" + "k" * 32}
    assert on_another_app(admin, create_app(overrides)).get("/admin/orders").status_code == 302


def test_the_session_holds_a_fingerprint_never_the_token(admin, app):
    from flask.sessions import SecureCookieSessionInterface

    cookie = admin.client.get_cookie("adapter_admin", path="/admin")
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    content = serializer.loads(cookie.value)
    assert TOKEN not in repr(content)
    assert len(content["token_fingerprint"]) == 64


@pytest.mark.parametrize("path, data", [
    ("/admin/logout", {}),
    ("/admin/login", {"token": TOKEN}),
])
def test_a_form_post_without_its_csrf_token_is_a_400_page_and_changes_nothing(admin, path, data):
    response = admin.post_form(path, data, from_page=None)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "The form expired or came from another site" in response.html
    assert admin.get("/admin/orders").status_code == 200


def test_a_form_post_with_a_forged_csrf_token_is_refused(admin):
    response = admin.client.post("/admin/logout", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert admin.get("/admin/orders").status_code == 200


def test_the_merchant_api_needs_no_csrf_token(api):
    assert api.post("/orders", {"line_items": []}).status_code == 422

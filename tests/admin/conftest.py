"""Fixtures for the admin pages: a browser-like client that signs in with a merchant token."""

import re

import pytest
from conftest import TOKEN

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html):
    """Return the CSRF token of the first form in a page."""
    return CSRF_FIELD.search(html).group(1)


class Admin:
    """A test client that keeps cookies like a browser and fills forms with their CSRF token."""

    def __init__(self, client):
        self.client = client

    def get(self, path, **kwargs):
        response = self.client.get(path, **kwargs)
        response.html = response.get_data(as_text=True)
        response.close()
        return response

    def sign_in(self, token=TOKEN, next_page=None, **kwargs):
        form = self.get("/admin/login", **kwargs)
        data = {"csrf_token": csrf_of(form.html), "token": token}
        if next_page:
            data["next"] = next_page
        response = self.client.post("/admin/login", data=data, **kwargs)
        response.html = response.get_data(as_text=True)
        return response

    def post_form(self, path, data=None, *, from_page="/admin/orders", **kwargs):
        """POST a form with the CSRF token of `from_page` (None: without a token)."""
        data = dict(data or {})
        if from_page is not None:
            data["csrf_token"] = csrf_of(self.get(from_page).html)
        response = self.client.post(path, data=data, **kwargs)
        response.html = response.get_data(as_text=True)
        return response


@pytest.fixture
def visitor(app):
    """A browser that has not signed in."""
    return Admin(app.test_client())


@pytest.fixture
def admin(visitor):
    """A browser signed in with the merchant token, reading English."""
    response = visitor.sign_in()
    assert response.status_code == 302, response.html
    return visitor

"""Merchant admin pages under /admin/: sign-in, the orders list and the order page with its forms."""

from . import (  # noqa: F401 -- routes
    fulfillment_actions,
    i18n,
    operator_pages,
    order_actions,
    orders,
    safety,
    sessions,
    signin,
)
from .blueprint import bp, csrf


def init_app(app, settings):
    """Give the app its session key, languages, CSRF checks and safety headers; add the pages."""
    sessions.init_app(app, settings)
    i18n.init_app(app, settings)
    # The API and webhooks authenticate by header or signature; only admin forms need CSRF.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # A token lives as long as the session that holds it, not a fixed hour.
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    csrf.init_app(app)
    app.after_request(safety.add_headers)
    app.register_blueprint(bp)

"""Bearer-token authentication of the merchant API, and who the token says is acting."""

import hmac

from flask import current_app, g, request

from adapter import timeline
from adapter.errors import Unauthorized

NO_TOKENS = "no merchant API tokens are configured; set MERCHANT_API_TOKENS"


def matching_token(given):
    """Return the configured merchant token equal to `given`, or None (constant time)."""
    found = None
    # Compare with every token, always, so timing says nothing about which one is close.
    for expected in current_app.extensions["adapter_settings"].api_tokens:
        if hmac.compare_digest(given.encode(), expected.encode()):
            found = expected
    return found


def token_name(token):
    """Return the name `[[merchant.tokens]]` gives a configured token, or None for a plain one."""
    return current_app.extensions["adapter_settings"].token_names.get(token)


def act_as(name):
    """Name the merchant events this request writes after `name` (None: unnamed), until it ends."""
    if "acting" in g:
        timeline.stop_acting(g.pop("acting"))
    g.acting = timeline.begin_acting_as(name)


def stop_acting(_error=None):
    """End what `act_as` started (a teardown: the thread may serve a request of someone else next)."""
    if "acting" in g:
        timeline.stop_acting(g.pop("acting"))


def require_merchant_token():
    """Refuse the request unless it carries one of the configured merchant tokens."""
    if not current_app.extensions["adapter_settings"].api_tokens:
        raise Unauthorized(NO_TOKENS)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>` with a merchant API token.")
    known = matching_token(token.strip())
    if known is None:
        raise Unauthorized("The merchant API token is not valid.")
    act_as(token_name(known))


def init_app(app):
    """End each request's acting name with the request."""
    app.teardown_request(stop_acting)

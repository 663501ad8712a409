"""Bearer-token authentication of the merchant API."""

import hmac

from flask import current_app, request

from adapter.errors import Unauthorized


def require_merchant_token():
    """Refuse the request unless it carries one of the configured merchant tokens."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>` with a merchant API token.")
    given = token.strip().encode()
    valid = False
    # Compare with every token, always, so timing says nothing about which one is close.
    for expected in current_app.extensions["adapter_settings"].api_tokens:
        valid |= hmac.compare_digest(given, expected.encode())
    if not valid:
        raise Unauthorized("The merchant API token is not valid.")

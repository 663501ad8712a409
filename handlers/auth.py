"""Bearer-token authentication of the merchant API."""

import hmac

from flask import current_app, request

from adapter.errors import Unauthorized

NO_TOKENS = "no merchant API tokens are configured; set MERCHANT_API_TOKENS"


def require_merchant_token():
    """Refuse the request unless it carries one of the configured merchant tokens."""
    tokens = current_app.extensions["adapter_settings"].api_tokens
    if not tokens:
        raise Unauthorized(NO_TOKENS)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>` with a merchant API token.")
    given = token.strip().encode()
    valid = False
    # Compare with every token, always, so timing says nothing about which one is close.
    for expected in tokens:
        valid |= hmac.compare_digest(given, expected.encode())
    if not valid:
        raise Unauthorized("The merchant API token is not valid.")

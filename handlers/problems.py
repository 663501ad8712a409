"""One error handler: every error on every endpoint is RFC 9457 problem+json."""

import json
import logging
import re
import uuid

from flask import g, has_request_context, request
from werkzeug.exceptions import HTTPException

from adapter import store
from adapter.errors import (
    AdapterError,
    MalformedJSON,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://fulfillment-adapter.dev/problems/"
HTTP_ERRORS = {
    400: MalformedJSON,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}
RETRY_AFTER_SECONDS = "2"
# An X-Request-Id sent by the client is kept (logged, echoed) only if it is short and plain;
# anything else is replaced, so no log line carries a client's arbitrary text.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def problem_response(status, code, title, detail, extra=None, headers=None):
    """Build a problem+json response."""
    if has_request_context():
        # Read by the metrics, which label a webhook's outcome with it.
        g.problem_code = code
    body = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }
    return (
        json.dumps(body, ensure_ascii=False),
        status,
        {"Content-Type": "application/problem+json", **(headers or {})},
    )


def render(error):
    """Render an AdapterError."""
    extra = dict(error.extra)
    if isinstance(error, ValidationFailed):
        extra["errors"] = error.errors
    headers = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="merchant-api"'
    if isinstance(error, StoreUnavailable):
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return problem_response(error.status, error.code, error.title, error.detail, extra, headers)


def _http_error(error):
    if error.code >= 500:
        return _internal_error(getattr(error, "original_exception", None) or error)
    cls = HTTP_ERRORS.get(error.code)
    if cls is None:
        return problem_response(error.code, "http_error", error.name, error.description)
    response = render(cls(error.description if error.code != 404 else None))
    if error.code == 405 and error.valid_methods:
        response[2]["Allow"] = ", ".join(sorted(error.valid_methods))
    return response


def _internal_error(error):
    if store.is_unavailable(error):
        log.warning("store unavailable on %s %s: %s", request.method, request.path,
                    " ".join(str(store.driver_error(error) or error).split()))
        return render(StoreUnavailable(store.BUSY))
    request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
    log.error(
        "internal error on %s %s [request %s]",
        request.method,
        request.path,
        request_id,
        exc_info=(type(error), error, error.__traceback__),
    )
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        f"Something went wrong on our side. Quote request id {request_id}.",
        {"request_id": request_id},
    )


def _assign_request_id():
    given = request.headers.get("X-Request-Id", "").strip()
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _echo_request_id(response):
    response.headers["X-Request-Id"] = g.get("request_id", "")
    return response


def init_app(app):
    """Register the handlers and give every request an id for the logs."""
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
    app.register_error_handler(AdapterError, render)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)

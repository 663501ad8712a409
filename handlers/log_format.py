"""Logs on stderr (SPEC 9) in the format of adapter.log_lines, and the line logged for each request.

A line logged while a request is served carries that request's id.
"""

import logging
import time

from flask import g, has_request_context, request

from adapter import log_lines

HTTP_LOGGER = "adapter.http"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def _with_request_id(record):
    """Give a record logged while a request is served the id of that request, unless it names one."""
    if not hasattr(record, "request_id") and has_request_context():
        request_id = g.get("request_id")
        if request_id:
            record.request_id = request_id
    return True


def configure(log_format):
    """Send every logger's records at INFO and above to stderr in `log_format` (`json` or `text`)."""
    handler = log_lines.configure(log_format)
    handler.addFilter(_with_request_id)
    return handler


def route_of():
    """The matched route's template (`/orders/<id:order_id>`), never the raw path: a bounded label."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


def method_of():
    """The request method if it is a standard one, else `OTHER`: a bounded label."""
    return request.method if request.method in KNOWN_METHODS else "OTHER"


def started():
    """Note when the request began (the first thing the app does with it)."""
    g.started = time.perf_counter()


def log_request(response):
    """Log one line for the request that `response` answers."""
    duration = time.perf_counter() - g.get("started", time.perf_counter())
    route, method = route_of(), method_of()
    logging.getLogger(HTTP_LOGGER).info(
        "%s %s %s %.1f ms", method, route, response.status_code, duration * 1000,
        extra={"method": method, "route": route, "status": response.status_code,
               "duration_ms": round(duration * 1000, 3)},
    )
    return response

"""Logs on stderr: one JSON object per line (LOG_FORMAT=json, the default) or text for people (SPEC 9).

A line carries the record's fields given as `extra=` (`request_id`, `route`, `outbox_message_id`,
...); a line logged while a request is served also carries that request's id.
"""

import json
import logging
import sys
import time
from datetime import UTC, datetime

from flask import g, has_request_context, request

# The attributes every LogRecord has; anything else on a record was given as `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
HTTP_LOGGER = "adapter.http"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def _fields(record):
    """Return the record's `extra=` fields, with the request id of the request being served."""
    fields = {key: value for key, value in vars(record).items()
              if key not in _STANDARD and not key.startswith("_")}
    if "request_id" not in fields and has_request_context():
        request_id = g.get("request_id")
        if request_id:
            fields["request_id"] = request_id
    return fields


class JSONFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Format a record for people: time, level, logger, message, then its fields as key=value."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record):
        text = super().format(record)
        fields = _fields(record)
        if fields:
            head, _, rest = text.partition("\n")
            pairs = " ".join(f"{key}={value}" for key, value in fields.items())
            text = f"{head} [{pairs}]" + (f"\n{rest}" if rest else "")
        return text


class _StderrHandler(logging.StreamHandler):
    """Write to whatever sys.stderr is when the record is emitted (a test may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(log_format):
    """Send every logger's records at INFO and above to stderr in `log_format` (`json` or `text`)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    # werkzeug's own request lines (`flask run`) would repeat ours; a level set on purpose stays.
    werkzeug = logging.getLogger("werkzeug")
    if werkzeug.level == logging.NOTSET:
        werkzeug.setLevel(logging.WARNING)
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

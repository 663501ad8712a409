"""Log lines on stderr: one JSON object per line (LOG_FORMAT=json, the default) or text for people (SPEC 9).

A line carries the record's fields given as `extra=` (`request_id`, `route`, `outbox_message_id`,
...). The standard library only: gunicorn.conf.py formats gunicorn's own lines with this module in
the master, before the gevent workers patch the standard library.
"""

import json
import logging
import sys
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else on a record was given as `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _fields(record):
    """Return the record's `extra=` fields."""
    return {key: value for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")}


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


def formatter(log_format):
    """The formatter for `log_format` (`json` or `text`)."""
    return JSONFormatter() if log_format == "json" else TextFormatter()


class StderrHandler(logging.StreamHandler):
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
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    # werkzeug's own request lines (`flask run`) would repeat ours; a level set on purpose stays.
    werkzeug = logging.getLogger("werkzeug")
    if werkzeug.level == logging.NOTSET:
        werkzeug.setLevel(logging.WARNING)
    return handler

"""Time in one convention: naive UTC inside, RFC 3339 with `Z` outside."""

from datetime import UTC, datetime


def utcnow():
    """Return the current time as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value):
    """Convert an aware datetime to naive UTC; a naive one is taken as UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def rfc3339(value):
    """Format a naive UTC datetime as RFC 3339 (`2026-11-21T10:00:00Z`)."""
    if value is None:
        return None
    text = value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if text.endswith(".000000"):
        text = text[: -len(".000000")]
    return text + "Z"

"""The sandbox's own clock: naive UTC inside, RFC 3339 with `Z` on the wire, as the protocol writes it."""

import math
from datetime import UTC, datetime


def utcnow():
    """Return the current time as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def unix_seconds(value):
    """Return a naive UTC time as whole unix seconds, as the `webhook-timestamp` header carries it."""
    return math.floor(value.replace(tzinfo=UTC).timestamp())


def rfc3339(value):
    """Format a naive UTC datetime as RFC 3339 (`2026-11-21T10:00:00Z`)."""
    return value.isoformat(timespec="microseconds").removesuffix(".000000") + "Z"

"""Time in one convention: naive UTC inside, RFC 3339 with `Z` outside."""

import re
from datetime import UTC, datetime, timedelta

# RFC 3339 `date-time`: seconds and an offset are required; `t` and `z` may be lower case.
RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
# Every time the adapter accepts, once converted to UTC, lies in this range.
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(9999, 1, 1)
NOT_RFC3339 = (
    "Must be an RFC 3339 date and time with an offset, such as 2026-03-01T10:00:00Z "
    "or 2026-03-01T17:00:00+07:00."
)
OUT_OF_RANGE = "Must lie between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z once in UTC."


def utcnow():
    """Return the current time as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value):
    """Convert an aware datetime to naive UTC; a naive one is taken as UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_rfc3339(text):
    """Parse an RFC 3339 date-time into naive UTC within the accepted range; raise ValueError saying why."""
    match = RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(NOT_RFC3339)
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    if second == 60:
        raise ValueError("Leap seconds (:60) are not accepted; give :59.")
    # Digits beyond microseconds are below what the store keeps: they are dropped.
    microsecond = int((match[7] or "0")[:6].ljust(6, "0"))
    sign, offset_hours, offset_minutes = match.group(8, 9, 10)
    if offset_hours is not None and (int(offset_hours) > 23 or int(offset_minutes) > 59):
        raise ValueError("The offset must lie between -23:59 and +23:59.")
    try:
        local = datetime(year, month, day, hour, minute, second, microsecond)
    except ValueError:
        raise ValueError("Is not a date and time that exists.") from None
    offset = timedelta(0)
    if offset_hours is not None:
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        offset = -offset if sign == "-" else offset
    try:
        moment = local - offset
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(OUT_OF_RANGE)
    return moment


def rfc3339(value):
    """Format a naive UTC datetime as RFC 3339 (`2026-11-21T10:00:00Z`)."""
    if value is None:
        return None
    text = value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if text.endswith(".000000"):
        text = text[: -len(".000000")]
    return text + "Z"

"""Recorded webhook deliveries as JSON Lines: export them from the store, re-sign and replay them.

Each line is one delivery: `service`, `webhook_id`, `headers` (names lower-cased), `body`,
`received_at` (RFC 3339, UTC) and `outcome` (`{"status", "code"}`). The raw body is kept byte for
byte: when it is valid UTF-8, `body` is that text; when it is not, `body` is null and
`body_base64` holds the bytes. Replay sends the decoded `body_base64` when the line has one and
`body` encoded as UTF-8 otherwise, so the bytes sent again are exactly the bytes received.
Blank lines are ignored.
"""

import base64
import binascii
import json
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from datetime import MAXYEAR, datetime
from typing import NamedTuple

import requests

from . import signing
from .models import WebhookDelivery
from .times import rfc3339, to_naive_utc, utcnow

CHUNK_SIZE = 1000
REQUIRED_FIELDS = ("service", "webhook_id", "headers")
# The signature headers are made afresh under the standard names, whichever names the service
# signed with; the transport ones belong to the new connection.
UNSENT_HEADERS = frozenset({
    "webhook-id", "webhook-timestamp", "webhook-signature",
    "svix-id", "svix-timestamp", "svix-signature",
    "host", "content-length", "transfer-encoding", "connection",
})
USER_AGENT = "fulfillment-adapter-replay/1"
# What HTTP can carry (RFC 9110 tokens; Latin-1 values without line breaks), so a hand-edited
# line is refused here rather than failing inside the HTTP client.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_VALUE = re.compile(r"[^\x00\r\n\u0100-\U0010ffff]*")
MALFORMED = "malformed"
NOT_SENT = "not_sent"


def parse_moment(text):
    """Parse an RFC 3339 time or ISO date as naive UTC (no offset means UTC); raise ValueError."""
    moment = datetime.fromisoformat(text)
    try:
        return to_naive_utc(moment)
    except OverflowError:
        # Only a moment at an end of the calendar overflows: it is after, or before, every
        # time the store holds, and the bound says exactly that.
        return datetime.max if moment.year == MAXYEAR else datetime.min


def record_of(delivery):
    """Return the export record of a stored delivery."""
    body = bytes(delivery.body)
    record = {
        "service": delivery.service,
        "webhook_id": delivery.webhook_id,
        "headers": delivery.headers,
        "body": None,
    }
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    record["received_at"] = rfc3339(delivery.received_at)
    record["outcome"] = {"status": delivery.outcome_status, "code": delivery.outcome_code}
    return record


def export_lines(service=None, since=None, chunk_size=CHUNK_SIZE):
    """Yield stored deliveries as JSON lines in the order received, reading `chunk_size` rows at a time."""
    last_id = 0
    while True:
        query = WebhookDelivery.select().where(WebhookDelivery.id > last_id)
        if service is not None:
            query = query.where(WebhookDelivery.service == service)
        if since is not None:
            query = query.where(WebhookDelivery.received_at >= since)
        rows = list(query.order_by(WebhookDelivery.id).limit(chunk_size))
        for row in rows:
            yield json.dumps(record_of(row), ensure_ascii=False) + "\n"
        if len(rows) < chunk_size:
            return
        last_id = rows[-1].id


class MalformedLine(ValueError):
    """A line that cannot be replayed; the message says why."""


class Delivery(NamedTuple):
    """One delivery read back from a recording."""

    service: str
    webhook_id: str
    headers: dict
    body: bytes


def _body_of(record):
    if record.get("body_base64") is not None:
        if not isinstance(record["body_base64"], str):
            raise MalformedLine("body_base64 must be a string")
        try:
            return base64.b64decode(record["body_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise MalformedLine("body_base64 is not valid base64") from None
    if not isinstance(record.get("body"), str):
        raise MalformedLine("body must be a string (or null with body_base64)")
    try:
        return record["body"].encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedLine("body has an unpaired surrogate, which UTF-8 cannot encode") from None


def parse_line(raw, services):
    """Read one recorded line (bytes) as a Delivery to a service in `services`; raise MalformedLine."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedLine("not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedLine(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise MalformedLine("not a JSON object")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if "body" not in record and "body_base64" not in record:
        missing.append("body")
    if missing:
        raise MalformedLine(f"missing {', '.join(missing)}")
    service, webhook_id, headers = record["service"], record["webhook_id"], record["headers"]
    if not isinstance(service, str) or service not in services:
        raise MalformedLine(f"unknown service {service!r}")
    if not isinstance(webhook_id, str) or not webhook_id:
        raise MalformedLine("webhook_id must be a non-empty string")
    if not isinstance(headers, dict) or not all(
        HEADER_NAME.fullmatch(name) and isinstance(value, str) and HEADER_VALUE.fullmatch(value)
        for name, value in headers.items()
    ):
        raise MalformedLine("headers must map header names to one-line Latin-1 strings")
    return Delivery(service, webhook_id, headers, _body_of(record))


def new_message_id():
    """Return a fresh webhook-id."""
    return f"msg_{secrets.token_hex(16)}"


def signed_headers(delivery, secret, now, new_id=False):
    """Return the headers to send `delivery` with, signed afresh with `secret` at `now`."""
    message_id = new_message_id() if new_id else delivery.webhook_id
    headers = {
        name: value for name, value in delivery.headers.items() if name.lower() not in UNSENT_HEADERS
    }
    headers.update(signing.sign_headers(secret, message_id, delivery.body, now))
    return headers


class Reply(NamedTuple):
    """The adapter's answer to one delivery; `headers` is a case-insensitive mapping."""

    status: int
    headers: Mapping
    body: bytes


class SendFailed(Exception):
    """A delivery that got no answer at all; the message says why."""


class HttpSender:
    """Send deliveries to a running adapter at `base_url`, one session, a timeout on every call."""

    def __init__(self, base_url, timeout):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def __call__(self, service, headers, body):
        url = f"{self.base_url}/webhooks/{service}"
        try:
            response = self.session.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise SendFailed(f"no answer from {url} within {self.timeout:g} s") from None
        except requests.ConnectionError:
            raise SendFailed(f"cannot connect to {url}") from None
        except requests.RequestException as exc:
            raise SendFailed(f"cannot send to {url}: {type(exc).__name__}") from None
        return Reply(response.status_code, response.headers, response.content)

    def close(self):
        """Close the session's connections."""
        self.session.close()


class Outcome(NamedTuple):
    """What became of one line: answered (`status`), not sent, or skipped as malformed (`reason`)."""

    line_number: int
    status: int | None
    label: str
    reason: str | None = None

    @property
    def failed(self):
        """Tell whether the delivery should be sent again later: answered 5xx or not sent at all."""
        return self.label == NOT_SENT or (self.status is not None and self.status >= 500)


def _problem_code(body):
    try:
        problem = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) else ""


def outcome_of(line_number, answer):
    """Classify an answer: 2xx `applied` or `replayed`, otherwise the problem `code` it carries."""
    if 200 <= answer.status < 300:
        replayed = answer.headers.get("Idempotent-Replayed") == "true"
        return Outcome(line_number, answer.status, "replayed" if replayed else "applied")
    return Outcome(line_number, answer.status, _problem_code(answer.body))


def replay(lines, services, send, new_ids=False, clock=utcnow):
    """Send each line again, in order, to `send(service, headers, body)`; yield its Outcome.

    `services` maps each service key to its current secret; `send` returns a Reply or raises
    SendFailed.
    """
    for line_number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            delivery = parse_line(raw, services)
        except MalformedLine as exc:
            yield Outcome(line_number, None, MALFORMED, str(exc))
            continue
        # Signed just before sending, so a long replay never outlives the timestamp tolerance.
        headers = signed_headers(delivery, services[delivery.service], clock(), new_ids)
        try:
            answer = send(delivery.service, headers, delivery.body)
        except SendFailed as exc:
            yield Outcome(line_number, None, NOT_SENT, str(exc))
            continue
        yield outcome_of(line_number, answer)


class Tally:
    """Count outcomes by status and label; tell what was answered, failed or malformed."""

    def __init__(self):
        self.counts = Counter()
        self.failed = False
        self.answered = 0
        self.malformed = 0

    def add(self, outcome):
        """Count one outcome."""
        self.counts[outcome.status, outcome.label] += 1
        self.failed = self.failed or outcome.failed
        self.answered += outcome.status is not None
        self.malformed += outcome.label == MALFORMED

    @property
    def complete(self):
        """Tell whether the replay did its whole job: something was answered, every line was
        sent, and none was answered 5xx or skipped as malformed."""
        return self.answered > 0 and not self.failed and not self.malformed

    def rows(self):
        """Return (status, label, count) rows, answered ones first by status."""
        return sorted(
            ((status, label, count) for (status, label), count in self.counts.items()),
            key=lambda row: (row[0] is None, row[0] or 0, row[1]),
        )


def count_lines(file):
    """Count the lines of a seekable binary file without reading it into memory; rewind it."""
    start = file.tell()
    count, last = 0, b"\n"
    for chunk in iter(lambda: file.read(1 << 20), b""):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    file.seek(start)
    return count if last == b"\n" else count + 1

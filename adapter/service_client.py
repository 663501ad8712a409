"""One HTTP client per outbox target: signs, posts and reads the answer of a message."""

import codecs
import email.utils
from datetime import UTC
from typing import NamedTuple

import requests

from .outbox import NOTIFICATIONS
from .signing import sign_headers
from .times import to_naive_utc
from .version import VERSION
from .watchdog import Watchdog, WatchedAdapter

EXCERPT_CHARS = 500
# Enough bytes for the excerpt in any encoding; the rest of a large answer is never read.
EXCERPT_BYTES = EXCERPT_CHARS * 4
# Caps a Retry-After so a broken or hostile answer cannot postpone a message indefinitely.
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600


USER_AGENT = f"fulfillment-adapter/{VERSION}"


def attempt_request_id(message_id, attempt):
    """The X-Request-Id of a message's attempt number `attempt` (1 for the first): one per attempt."""
    return f"{message_id}-{attempt}"


class Answer(NamedTuple):
    """What the target answered: status code, Retry-After in seconds (or None), text excerpt."""

    status_code: int
    retry_after_seconds: float | None
    text_excerpt: str


class DeliveryError(Exception):
    """The message could not reach the target (timeout, refused connection, TLS error...)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def retry_after_seconds(value, now):
    """Return the seconds a Retry-After header (seconds or HTTP-date) asks to wait, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Compare lengths first: int() of thousands of digits is slow or refused.
        if len(value) > len(str(MAX_RETRY_AFTER_SECONDS)):
            return float(MAX_RETRY_AFTER_SECONDS)
        return float(min(int(value), MAX_RETRY_AFTER_SECONDS))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Aware arithmetic: converting a date near year 9999 with an offset to UTC would overflow.
    seconds = (when - to_naive_utc(now).replace(tzinfo=UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class ServiceClient:
    """Post signed messages to one target's URL over one keep-alive session."""

    def __init__(self, target, url, secret, timeout_seconds, connections=10):
        self.target = target
        self.url = url
        self.timeout_seconds = timeout_seconds
        # The timeout bounds the connect and each read apart; the whole send, answer and
        # excerpt included, ends within twice the timeout whatever the service does.
        self.deadline_seconds = 2 * timeout_seconds
        self._watchdog = Watchdog()
        self._secret = secret
        self._session = requests.Session()
        # A session prepares each request afresh from its settings, cookies and the
        # environment (proxies, CA bundle, ~/.netrc): half of a send's time. All of that is
        # the same for every message to this URL, so it is read once, here, into a prepared
        # request that each send copies, and the send goes straight to the session's
        # keep-alive connection pool. No redirect is followed and no cookie kept.
        environment = self._session.merge_environment_settings(url, {}, None, None, None)
        self._proxies = environment["proxies"]
        self._verify = environment["verify"]
        # Keep a connection for each send in flight (outbox.sends_in_flight), 10 at least.
        self._pool = WatchedAdapter(pool_maxsize=max(10, connections))
        self._session.mount(url, self._pool)
        self._template = requests.Request(
            "POST", url, auth=requests.utils.get_netrc_auth(url),
            headers={**requests.utils.default_headers(), "User-Agent": USER_AGENT,
                     "Content-Type": "application/json"},
        ).prepare()

    def post(self, message, now):
        """Send `message` signed at `now`; return its Answer or raise DeliveryError."""
        request = self._template.copy()
        request.headers.update(sign_headers(self._secret, message.message_id, message.body, now))
        request.headers["Idempotency-Key"] = message.message_id
        request.headers["X-Request-Id"] = attempt_request_id(message.message_id, message.attempts + 1)
        request.prepare_body(message.body.encode("utf-8"), None)
        with self._watchdog.deadline(self.deadline_seconds) as deadline:
            try:
                response = self._pool.send(request, stream=True, timeout=self.timeout_seconds,
                                           verify=self._verify, proxies=self._proxies)
            except requests.RequestException as exc:
                raise DeliveryError(self._failure(exc, deadline)) from None
            with response:
                return Answer(
                    response.status_code,
                    retry_after_seconds(response.headers.get("Retry-After"), now),
                    _excerpt(response),
                )

    def _failure(self, exc, deadline):
        """The short reason a send failed, as the message's last error."""
        if deadline.expired:
            return f"no whole answer within {deadline.seconds:g} s"
        if isinstance(exc, requests.Timeout):
            return f"timed out after {self.timeout_seconds:g} s"
        if isinstance(exc, requests.ConnectionError):
            return f"connection failed ({type(exc).__name__})"
        return f"request failed ({type(exc).__name__})"

    def close(self):
        """Close the session's connections."""
        self._session.close()


def _excerpt(response):
    """Read at most EXCERPT_BYTES of the answer and return its first EXCERPT_CHARS characters."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(chunk_size=EXCERPT_BYTES):
            chunks.append(chunk)
            size += len(chunk)
            if size >= EXCERPT_BYTES:
                break
    except requests.RequestException:
        # The status line already arrived, so the answer stands; only its text is cut short.
        pass
    raw = b"".join(chunks)[:EXCERPT_BYTES]
    try:
        # Most answers are UTF-8 whatever they declare (requests assumes Latin-1 for
        # text/* without a charset); final=False tolerates a character cut at the limit.
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
    except UnicodeDecodeError:
        try:
            text = raw.decode(response.encoding or "latin-1", errors="replace")
        except LookupError:
            text = raw.decode("latin-1")
    return text[:EXCERPT_CHARS]


def client_for(settings, target):
    """Return a ServiceClient for a service key or `notifications`, or None if not configured."""
    if target == NOTIFICATIONS:
        if not settings.notifications_url:
            return None
        return ServiceClient(
            target,
            settings.notifications_url,
            settings.notifications_secret,
            settings.notifications_timeout_seconds,
            settings.sends_in_flight,
        )
    service = settings.services.get(target)
    if service is None:
        return None
    return ServiceClient(target, service.url, service.secret, service.timeout_seconds,
                         settings.sends_in_flight)

"""Standard Webhooks signatures: sign outbound messages, verify inbound ones over the raw bytes."""

import base64
import binascii
import functools
import hashlib
import hmac
import math
import re
from datetime import UTC

from standardwebhooks import Webhook

from .errors import SignatureInvalid
from .times import to_naive_utc

SECRET_PREFIX = "whsec_"
MAX_ID_LENGTH = 255
# Bounds what an attacker can make us parse and hash per request.
MAX_SIGNATURE_HEADER_LENGTH = 4096
TIMESTAMP = re.compile(r"[0-9]{1,12}")
# The id, timestamp and signature headers: the standard names, and the ones Svix signs with.
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


@functools.lru_cache(maxsize=64)
def _webhook(secret):
    return Webhook(secret)


@functools.lru_cache(maxsize=64)
def _key(secret):
    """Return the HMAC key of a `whsec_<base64>` secret, decoded as the library does."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")


def _unix_seconds(now):
    return math.floor(to_naive_utc(now).replace(tzinfo=UTC).timestamp())


def sign_headers(secret, message_id, body, now):
    """Return the webhook-id, webhook-timestamp and webhook-signature headers for `body`.

    Text is signed by the standardwebhooks library; bytes that are not UTF-8 (a
    recorded delivery replayed as it came) are signed over the bytes themselves.
    """
    now = to_naive_utc(now)
    timestamp = str(_unix_seconds(now))
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            signed = f"{message_id}.{timestamp}.".encode("ascii") + bytes(body)
            digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
            signature = "v1," + base64.b64encode(digest).decode("ascii")
            return {"webhook-id": message_id, "webhook-timestamp": timestamp,
                    "webhook-signature": signature}
    return {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": _webhook(secret).sign(message_id, now, body),
    }


def _header(headers, name):
    value = headers.get(name)
    if value is None or value == "":
        raise SignatureInvalid(f"Missing {name} header.")
    if not isinstance(value, str) or not value.isascii() or not value.isprintable() or not value.strip():
        raise SignatureInvalid(f"Malformed {name} header.")
    return value.strip()


def _signatures(header, name):
    """Return the decoded v1 signatures of the signature header `name`."""
    if len(header) > MAX_SIGNATURE_HEADER_LENGTH:
        raise SignatureInvalid(f"Malformed {name} header: too long.")
    signatures = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if not comma or not version or not encoded:
            raise SignatureInvalid(f"Malformed {name} header: expected v1,<base64>.")
        # Other versions (such as v1a, asymmetric) are allowed alongside and ignored.
        if version != "v1":
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise SignatureInvalid(f"Malformed {name} header: bad base64.") from None
    if not signatures:
        raise SignatureInvalid(f"No v1 signature in the {name} header.")
    return signatures


def _header_names(lowered):
    """Return the names a delivery is signed under: `svix-*` only when no `webhook-*` one is sent."""
    svix_only = not any(name in lowered for name in STANDARD_HEADERS) and any(
        name in lowered for name in SVIX_HEADERS
    )
    return SVIX_HEADERS if svix_only else STANDARD_HEADERS


def verify(secrets, headers, body, tolerance_seconds, now):
    """Check an inbound webhook's signature over the raw body; return its webhook-id.

    The `svix-*` headers stand in for the `webhook-*` ones when none of those is sent.
    """
    try:
        lowered = {str(name).lower(): value for name, value in headers.items()}
    except (AttributeError, TypeError):
        raise SignatureInvalid("Malformed headers.") from None
    id_name, timestamp_name, signature_name = _header_names(lowered)
    message_id = _header(lowered, id_name)
    timestamp = _header(lowered, timestamp_name)
    signature_header = _header(lowered, signature_name)
    if len(message_id) > MAX_ID_LENGTH:
        raise SignatureInvalid(f"Malformed {id_name} header: too long.")
    if not TIMESTAMP.fullmatch(timestamp):
        raise SignatureInvalid(f"Malformed {timestamp_name} header: expected unix seconds.")
    skew = int(timestamp) - _unix_seconds(now)
    if skew < -tolerance_seconds:
        raise SignatureInvalid("Timestamp too old.")
    if skew > tolerance_seconds:
        raise SignatureInvalid("Timestamp too far in the future.")
    signatures = _signatures(signature_header, signature_name)
    if not isinstance(body, bytes | bytearray | memoryview):
        raise SignatureInvalid("Body must be bytes.")
    signed = f"{message_id}.{timestamp}.".encode("ascii") + bytes(body)
    for secret in secrets:
        expected = hmac.new(_key(secret), signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return message_id
    raise SignatureInvalid("No matching signature.")

"""Inbound webhooks: every verified delivery kept, each applied once, redeliveries answered alike."""

import hashlib

import peewee

from . import prepared, service_events, store
from .errors import IdempotencyConflict
from .models import WebhookDelivery, WebhookReceipt

# Credentials are not kept; neither is the signature, under either name: it was verified on
# arrival, and a replay signs afresh with the current secret.
UNKEPT_HEADERS = ("authorization", "cookie", "proxy-authorization", "webhook-signature", "svix-signature")


def digest(body):
    """Return the SHA-256 hex digest of a raw body."""
    return hashlib.sha256(body).hexdigest()


def _keep(service, webhook_id, headers, body, now, status, code):
    prepared.insert_later(
        WebhookDelivery,
        service=service,
        webhook_id=webhook_id,
        headers={k.lower(): v for k, v in headers.items() if k.lower() not in UNKEPT_HEADERS},
        body=body,
        received_at=now,
        outcome_status=status,
        outcome_code=code,
    )


def _replay(receipt, body):
    if receipt.body_sha256 != digest(body):
        raise IdempotencyConflict(
            f"webhook-id {receipt.webhook_id} was already applied with a different body."
        )
    return receipt.response_status, receipt.response_body


def earlier_answer(service, webhook_id, body):
    """Return (status, body) remembered for an applied delivery, or None; a changed body is a 422."""
    receipt = prepared.get_or_none(WebhookReceipt, service=service, webhook_id=webhook_id)
    return _replay(receipt, body) if receipt is not None else None


def _claim(service, webhook_id, body, now):
    """Take the delivery's receipt first, before anything is read or changed.

    The INSERT travels with the handler's first statement on PostgreSQL (`prepared.insert_later`)
    and runs before it. The receipt's unique index decides races: an identical delivery
    arriving meanwhile waits at this INSERT until the first one commits (then fails, and
    replays its answer) or rolls back (then is judged afresh), so the two never both apply.
    """
    prepared.insert_later(
        WebhookReceipt,
        service=service,
        webhook_id=webhook_id,
        body_sha256=digest(body),
        response_status=0,
        response_body="",
        applied_at=now,
    )


def apply_once(service, webhook_id, headers, body, event_type, data, now, respond):
    """Apply a verified delivery once; return (status, response body, replayed).

    `respond(applied)` renders the answer (`service_events.Applied`) inside the transaction,
    so the remembered answer is exactly the state this delivery produced.
    """
    try:
        with store.transaction():
            _claim(service, webhook_id, body, now)
            status, text = respond(service_events.HANDLERS[event_type](service, data, now))
            prepared.update_later(
                WebhookReceipt,
                {"service": service, "webhook_id": webhook_id},
                response_status=status,
                response_body=text,
            )
            _keep(service, webhook_id, headers, body, now, status, "applied")
        return status, text, False
    except peewee.IntegrityError:
        # Rolled back whole: if an applied delivery holds the receipt, this one is its redelivery.
        with store.transaction():
            earlier = earlier_answer(service, webhook_id, body)
            if earlier is None:
                raise
            status, text = earlier
            _keep(service, webhook_id, headers, body, now, status, "replayed")
        return status, text, True


def keep_delivery(service, webhook_id, headers, body, now, status, code):
    """Keep a verified delivery that was not applied: rejected, or stopped by a fault of ours."""
    with store.transaction():
        _keep(service, webhook_id, headers, body, now, status, code)

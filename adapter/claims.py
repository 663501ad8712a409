"""Claim due outbox messages under a lease, and settle the outcomes of those still held.

Several dispatchers (threads, processes, hosts) share the outbox: a message is sent by
whoever holds its lease, and an outcome is written only while that lease is still held, so
one message is never sent by two at once and a crash only ever causes a resend with the same
webhook-id once the lease has run out.
"""

import logging
import uuid
from datetime import timedelta

from peewee import SQL, fn

from . import fulfillment_orders, observers, prepared, store
from .delivery import after_attempt
from .errors import NotFound
from .models import OutboxMessage
from .service_client import attempt_request_id

log = logging.getLogger(__name__)


def _behind_an_earlier_one():
    """Select 1 while an earlier message of the same target and FO is pending or sending."""
    earlier = OutboxMessage.alias()
    return (
        earlier.select(SQL("1"))
        .where(
            (earlier.target == OutboxMessage.target)
            & (earlier.fulfillment_order_id == OutboxMessage.fulfillment_order_id)
            & (earlier.id < OutboxMessage.id)
            & earlier.status.in_(("pending", "sending"))
        )
        # OFFSET 0 keeps PostgreSQL from turning the check into an anti-join over every
        # pending message (its choice whenever the table's statistics lag a burst): it
        # stays one (target, fulfillment_order_id, id) index probe per candidate.
        .offset(0)
    )


def claimable(target, now):
    """Select the target's due pending messages not behind an earlier one of the same FO.

    The outer query walks the (status, target, next_attempt_at) index in its own order
    (ties in id order on SQLite, in insertion order on PostgreSQL), so it stops after
    the batch without reading, let alone sorting, the rest of the queue. Which of two
    FOs goes first does not matter; within an FO the check above keeps the order.
    """
    return (
        OutboxMessage.select()
        .where(
            (OutboxMessage.status == "pending")
            & (OutboxMessage.target == target)
            & (OutboxMessage.next_attempt_at <= now)
            & ~fn.EXISTS(_behind_an_earlier_one())
        )
        .order_by(OutboxMessage.next_attempt_at)
    )


def abandoned(target, now):
    """Select the target's messages whose sender's lease ran out, not behind an earlier one."""
    return (
        OutboxMessage.select()
        .where(
            (OutboxMessage.status == "sending")
            & (OutboxMessage.target == target)
            & (OutboxMessage.lease_until < now)
            & ~fn.EXISTS(_behind_an_earlier_one())
        )
        .order_by(OutboxMessage.id)
    )


def _locked(query):
    """Lock the selected rows on PostgreSQL, skipping those another worker is claiming."""
    return query.for_update(skip_locked=True) if store.is_postgres() else query


def claim(target, now, lease_seconds, limit):
    """Mark up to `limit` due messages of `target` as sending under a fresh lease; return them."""
    token = uuid.uuid4().hex
    lease_until = now + timedelta(seconds=lease_seconds)
    with store.transaction():
        messages = list(_locked(abandoned(target, now).limit(limit)))
        if len(messages) < limit:
            messages.extend(_locked(claimable(target, now).limit(limit - len(messages))))
        if messages:
            OutboxMessage.update(
                status="sending", lease_token=token, lease_until=lease_until
            ).where(OutboxMessage.id.in_([message.id for message in messages])).execute()
    for message in messages:
        message.status, message.lease_token, message.lease_until = "sending", token, lease_until
    return messages


def settle(outcomes, unsent, now, lease_seconds, schedule):
    """Record (message, outcome, sent_at) triples and renew the leases of `unsent`.

    Only messages still under the lease this worker holds are written; return their ids.
    Deliveries and retries are written, and leases renewed, in one transaction. A failure
    undoes its FO's state, which locks its order, so each is written in a transaction of
    its own: one that cannot be undone holds back no other outcome, and no transaction
    locks two orders.
    """
    changed = [(message, after_attempt(message.attempts, outcome, sent_at, schedule), sent_at)
               for message, outcome, sent_at in outcomes]
    settled = [entry for entry in changed if entry[1]["status"] != "failed"]
    failed = [entry for entry in changed if entry[1]["status"] == "failed"]
    held = set()
    if settled or unsent:
        with store.transaction():
            held = _held([message for message, _, _ in settled] + unsent)
            for message, changes, _ in settled:
                if message.id in held:
                    _write(message, changes)
            renewed = [message for message in unsent if message.id in held]
            if renewed:
                lease_until = now + timedelta(seconds=lease_seconds)
                OutboxMessage.update(lease_until=lease_until).where(
                    OutboxMessage.id.in_([message.id for message in renewed])
                ).execute()
                for message in renewed:
                    message.lease_until = lease_until
    for message, changes, sent_at in failed:
        with store.transaction():
            if _held([message]):
                held.add(message.id)
                _write(message, changes)
                _undo(message, message.last_answer or f"HTTP {message.last_status_code}", sent_at)
    for message, _, _ in changed:
        _log(message, message.id in held)
    return held


def _held(messages):
    """Ids of `messages` still sending under the lease this worker took (inside a transaction)."""
    if not messages:
        return set()
    # On PostgreSQL the lock keeps a claimer from taking these rows over before they are
    # written; SQLite's BEGIN IMMEDIATE already excludes every writer.
    current = OutboxMessage.select(OutboxMessage.id, OutboxMessage.lease_token).where(
        OutboxMessage.id.in_([message.id for message in messages])
        & (OutboxMessage.status == "sending")
    )
    tokens = dict((current.for_update() if store.is_postgres() else current).tuples())
    return {message.id for message in messages if tokens.get(message.id) == message.lease_token}


def _write(message, changes):
    prepared.update(OutboxMessage, {"id": message.id}, **changes)
    for name, value in changes.items():
        setattr(message, name, value)


def _undo(message, answer, now):
    """Undo what a failed message promised, in the transaction that marks it failed."""
    if message.order_id is None:
        return
    try:
        fulfillment_orders.message_failed(message, answer, now)
    except NotFound:
        log.warning("order %s of failed message %s no longer exists",
                    message.order_id, message.message_id)


OUTCOMES = {"delivered": "delivered", "pending": "retry", "failed": "failed"}


def _log(message, recorded):
    """Log one line for the attempt just made and report it to the observers."""
    outcome = OUTCOMES.get(message.status, "failed") if recorded else "not_recorded"
    attempt = message.attempts if recorded else message.attempts + 1
    fields = {
        "outbox_message_id": message.id,
        "message_id": message.message_id,
        "service": message.target,
        "type": message.type,
        "outcome": outcome,
        "status": message.last_status_code if recorded else None,
        "attempt": attempt,
        "request_id": attempt_request_id(message.message_id, attempt),
    }
    if not recorded:
        log.warning("message %s was taken over by another worker; its outcome is not recorded",
                    message.message_id, extra=fields)
    elif outcome == "delivered":
        log.info("message %s (%s) delivered to %s", message.message_id, message.type, message.target,
                 extra=fields)
    elif outcome == "retry":
        log.warning(
            "message %s (%s) to %s: attempt %d failed (%s), next at %s",
            message.message_id, message.type, message.target, message.attempts,
            message.last_status_code or message.last_answer, message.next_attempt_at, extra=fields,
        )
    else:
        log.error(
            "message %s (%s) to %s failed after %d attempts (%s)",
            message.message_id, message.type, message.target, message.attempts,
            message.last_status_code or message.last_answer, extra=fields,
        )
    observers.attempted(message, outcome)

"""Claim due outbox messages under a lease, and settle the outcomes of those still held.

Several dispatchers (threads, processes, hosts) share the outbox: a message is sent by
whoever holds its lease, and an outcome is written only while that lease is still held, so
one message is never sent by two at once and a crash only ever causes a resend with the same
webhook-id, once the lease has run out or the crashed claimer's sends are over (below).

Each claim also records its claimer (`this_process`). A dispatcher on the same host takes over
the messages of a claimer that is gone (killed, crashed) without waiting out the lease: as soon
as a send the claimer may have left in flight has had its time (`takeover_after`). Across hosts
no process can be checked, and the lease stays the bound.
"""

import logging
import os
import socket
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


def abandoned(target, now, gone=(), gone_until=None):
    """Select the target's messages whose sender's lease ran out, not behind an earlier one.

    Also those claimed by a holder in `gone` whose lease ends before `gone_until`.
    """
    expired = OutboxMessage.lease_until < now
    if gone:
        expired |= OutboxMessage.lease_holder.in_(list(gone)) & (OutboxMessage.lease_until < gone_until)
    return (
        OutboxMessage.select()
        .where(
            (OutboxMessage.status == "sending")
            & (OutboxMessage.target == target)
            & expired
            & ~fn.EXISTS(_behind_an_earlier_one())
        )
        .order_by(OutboxMessage.id)
    )


_this_process = None


def this_process():
    """Return this process's claimer name (host, kernel boot, pid namespace, pid, start time), or None.

    None where processes cannot be checked (no /proc): claims then rely on their lease alone.
    """
    global _this_process
    pid = os.getpid()
    if _this_process is None or _this_process[0] != pid:
        # A forked worker (gunicorn) is a claimer of its own.
        started = _start_time(pid)
        name = None
        if started is not None:
            try:
                with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
                    boot_id = boot.read().strip()
                namespace = os.stat("/proc/self/ns/pid").st_ino
                name = f"{socket.gethostname()[:64]}|{boot_id}|{namespace}|{pid}|{started}"
            except OSError:
                name = None
        _this_process = (pid, name)
    return _this_process[1]


def _start_time(pid):
    """Return when process `pid` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def is_gone(holder):
    """Tell whether claimer `holder`, named on this host and pid namespace, no longer runs."""
    pid, started = holder.rsplit("|", 2)[1:]
    return _start_time(int(pid)) != started


def _gone_holders(target, now):
    """Return the claimers on this host of the target's messages still under lease that are gone."""
    me = this_process()
    if me is None:
        return set()
    here = me.rsplit("|", 2)[0] + "|"
    holders = (
        OutboxMessage.select(OutboxMessage.lease_holder)
        .where(
            (OutboxMessage.status == "sending")
            & (OutboxMessage.target == target)
            & (OutboxMessage.lease_until >= now)
            & OutboxMessage.lease_holder.startswith(here)
        )
        .distinct()
        .tuples()
    )
    return {holder for (holder,) in holders if holder != me and is_gone(holder)}


def _locked(query):
    """Lock the selected rows on PostgreSQL, skipping those another worker is claiming."""
    return query.for_update(skip_locked=True) if store.is_postgres() else query


def claim(target, now, lease_seconds, limit, takeover_after=None):
    """Mark up to `limit` due messages of `target` as sending under a fresh lease; return them.

    With `takeover_after` (seconds), also take over messages of a claimer on this host that is
    gone, once that long has passed since it last set their lease: by then any send it left in
    flight has ended.
    """
    token, holder = uuid.uuid4().hex, this_process()
    lease_until = now + timedelta(seconds=lease_seconds)
    with store.transaction():
        gone = _gone_holders(target, now) if takeover_after is not None else set()
        gone_until = now + timedelta(seconds=lease_seconds - (takeover_after or 0))
        messages = list(_locked(abandoned(target, now, gone, gone_until).limit(limit)))
        if len(messages) < limit:
            messages.extend(_locked(claimable(target, now).limit(limit - len(messages))))
        if messages:
            taken_over = [message for message in messages if message.lease_holder in gone]
            if taken_over:
                log.warning("taking over %d message(s) to %s from a stopped worker (%s)",
                            len(taken_over), target, ", ".join(sorted({m.lease_holder for m in taken_over})))
            OutboxMessage.update(
                status="sending", lease_token=token, lease_until=lease_until, lease_holder=holder
            ).where(OutboxMessage.id.in_([message.id for message in messages])).execute()
    for message in messages:
        message.status, message.lease_token, message.lease_until = "sending", token, lease_until
        message.lease_holder = holder
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

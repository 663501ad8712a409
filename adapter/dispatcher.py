"""Deliver the outbox: claim due messages per target, send them, record outcomes; open what came due."""

import logging
import os
import threading
import uuid
from datetime import timedelta

from peewee import SQL, fn

from . import fulfillment_orders, outbox, prepared, store
from .errors import NotFound
from .models import OutboxMessage
from .service_client import Answer, DeliveryError, client_for
from .times import utcnow

log = logging.getLogger(__name__)

RETRYABLE_STATUS_CODES = frozenset({408, 425, 429})
ANSWER_CHARS = 500
# A lease outlives one send: requests applies the timeout to the connect and to
# each read separately, so a send can take about twice the timeout, plus slack
# for the database round trips around it.
LEASE_MARGIN_SECONDS = 30
# A batch's outcomes wait in memory at most this long (plus one send) before they are
# recorded, and the leases of its unsent messages are renewed as often: every send
# starts within this many seconds of its lease being set, far inside the margin.
RECORD_EVERY_SECONDS = 1.0


def targets_of(settings):
    """Return every configured target: each service key, and `notifications` if it has a URL."""
    targets = list(settings.services)
    if settings.notifications_url:
        targets.append(outbox.NOTIFICATIONS)
    return targets


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


class Dispatcher:
    """Send due outbox messages, each target on its own so one slow service delays no other."""

    def __init__(self, settings, targets=None):
        self.settings = settings
        self.targets = list(targets_of(settings) if targets is None else targets)
        self.clients = {}
        for target in self.targets:
            client = client_for(settings, target)
            if client is None:
                raise ValueError(f"outbox target {target!r} is not configured")
            self.clients[target] = client
        self._stopping = threading.Event()
        self._wakes = {target: threading.Event() for target in self.targets}
        self._threads = []

    def lease_seconds(self, target):
        """Return how long a claim on one of the target's messages lasts."""
        return 2 * self.clients[target].timeout_seconds + LEASE_MARGIN_SECONDS

    def claim(self, target, now):
        """Mark up to batch_size due messages of `target` as sending under a fresh lease; return them."""
        token = uuid.uuid4().hex
        lease_until = now + timedelta(seconds=self.lease_seconds(target))
        limit = self.settings.batch_size
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

    def send_batch(self, messages, claimed_at, clock):
        """Send messages claimed at `claimed_at` in turn and record their outcomes; return how many were sent.

        Outcomes are recorded, and the leases of the messages still to send renewed, in
        one transaction every RECORD_EVERY_SECONDS and once at the end (also when
        stopping or failing), so a fast service costs two write transactions per batch.
        A crash before an outcome is recorded leaves its message to be sent again, with
        the same webhook-id, once the lease runs out.
        """
        held = {message.id for message in messages}
        leased_at, outcomes, sent = claimed_at, [], 0
        try:
            for index, message in enumerate(messages):
                if self._stopping.is_set():
                    # Unsent claims go back to others once their lease runs out.
                    break
                now = clock()
                if (now - leased_at).total_seconds() >= RECORD_EVERY_SECONDS:
                    unsent = [later for later in messages[index:] if later.id in held]
                    held = self._settle(outcomes, unsent, now)
                    leased_at, outcomes = now, []
                if message.id not in held:
                    log.info("message %s was taken over by another worker; not sending", message.message_id)
                    continue
                outcomes.append((message, self._send(message, now), now))
                sent += 1
        finally:
            self._settle(outcomes, [], clock())
        return sent

    def _send(self, message, now):
        """Post one message; return its Answer or the DeliveryError that stopped it."""
        try:
            return self.clients[message.target].post(message, now)
        except DeliveryError as exc:
            return exc

    def _settle(self, outcomes, unsent, now):
        """Record (message, outcome, sent_at) triples and renew the leases of `unsent`.

        Only messages still under the lease this worker holds are written; return their ids.
        Deliveries and retries are written, and leases renewed, in one transaction. A failure
        undoes its FO's state, which locks its order, so each is written in a transaction of
        its own: one that cannot be undone holds back no other outcome, and no transaction
        locks two orders.
        """
        changed = [(message, self._changes(message, outcome, sent_at), sent_at)
                   for message, outcome, sent_at in outcomes]
        settled = [entry for entry in changed if entry[1]["status"] != "failed"]
        failed = [entry for entry in changed if entry[1]["status"] == "failed"]
        held = set()
        if settled or unsent:
            with store.transaction():
                held = self._held([message for message, _, _ in settled] + unsent)
                for message, changes, _ in settled:
                    if message.id in held:
                        self._write(message, changes)
                renewed = [message for message in unsent if message.id in held]
                if renewed:
                    lease_until = now + timedelta(seconds=self.lease_seconds(renewed[0].target))
                    OutboxMessage.update(lease_until=lease_until).where(
                        OutboxMessage.id.in_([message.id for message in renewed])
                    ).execute()
                    for message in renewed:
                        message.lease_until = lease_until
        for message, changes, sent_at in failed:
            with store.transaction():
                if self._held([message]):
                    held.add(message.id)
                    self._write(message, changes)
                    self._undo(message, message.last_answer or f"HTTP {message.last_status_code}", sent_at)
        for message, _, _ in changed:
            if message.id in held:
                self._log(message)
            else:
                log.warning("message %s was taken over by another worker; its outcome is not recorded",
                            message.message_id)
        return held

    @staticmethod
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

    def _write(self, message, changes):
        prepared.update(OutboxMessage, {"id": message.id}, **changes)
        self._apply(message, changes)

    def _changes(self, message, outcome, now):
        """Return the column values an outcome gives a message sent at `now`."""
        schedule = self.settings.retry_schedule
        attempts = message.attempts + 1
        if isinstance(outcome, Answer):
            status_code, retry_after = outcome.status_code, outcome.retry_after_seconds
            answer = outcome.text_excerpt[:ANSWER_CHARS]
            retryable = status_code in RETRYABLE_STATUS_CODES or 500 <= status_code <= 599
        else:
            status_code, retry_after, answer, retryable = None, None, outcome.reason, True
        changes = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_answer": answer,
            "lease_token": None,
            "lease_until": None,
        }
        if status_code is not None and 200 <= status_code <= 299:
            changes.update(status="delivered", finished_at=now)
        elif retryable and attempts < len(schedule):
            wait = max(schedule[attempts], retry_after or 0)
            changes.update(status="pending", next_attempt_at=now + timedelta(seconds=wait))
        else:
            changes.update(status="failed", finished_at=now)
        return changes

    @staticmethod
    def _apply(message, changes):
        for field, value in changes.items():
            setattr(message, field, value)

    def _undo(self, message, answer, now):
        """Undo what a failed message promised, in the transaction that marks it failed."""
        if message.order_id is None:
            return
        try:
            fulfillment_orders.message_failed(message, answer, now)
        except NotFound:
            log.warning("order %s of failed message %s no longer exists",
                        message.order_id, message.message_id)

    def _log(self, message):
        if message.status == "delivered":
            log.info("message %s (%s) delivered to %s", message.message_id, message.type, message.target)
        elif message.status == "pending":
            log.warning(
                "message %s (%s) to %s: attempt %d failed (%s), next at %s",
                message.message_id, message.type, message.target, message.attempts,
                message.last_status_code or message.last_answer, message.next_attempt_at,
            )
        else:
            log.error(
                "message %s (%s) to %s failed after %d attempts (%s)",
                message.message_id, message.type, message.target, message.attempts,
                message.last_status_code or message.last_answer,
            )

    def run_target(self, target, clock):
        """Send the target's due messages until none is left; return how many were sent."""
        sent = 0
        while not self._stopping.is_set():
            claimed_at = clock()
            messages = self.claim(target, claimed_at)
            sent += self.send_batch(messages, claimed_at, clock)
            # An empty claim means nothing is due; a short one may have unblocked the
            # next message of an FO, so look again.
            if not messages:
                break
        return sent

    def run_once(self, now=None):
        """Open what has come due, then send every message due now, target by target.

        Return how many messages were sent.
        """
        def clock():
            return utcnow() if now is None else now

        self.open_due(clock())
        return sum(self.run_target(target, clock) for target in self.targets)

    @staticmethod
    def open_due(now):
        """Open the scheduled FOs whose `fulfill_at` has passed, requesting auto-fulfill ones."""
        requested = fulfillment_orders.open_due_fulfillment_orders(now)
        if requested:
            log.info("requested %d fulfillment order(s) whose fulfill_at has passed", requested)
        return requested

    def start(self):
        """Start one daemon thread per target, woken by commits or every poll_seconds."""
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._work, args=(target,), name=f"outbox-{target}", daemon=True)
            for target in self.targets
        ]
        self._threads.append(
            threading.Thread(target=self._wake_on_commit, name="outbox-waker", daemon=True)
        )
        self._threads.append(
            threading.Thread(target=self._open_due_every_poll, name="outbox-schedule", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout=None):
        """Ask the threads to stop and wait up to `timeout` seconds for each."""
        self._stopping.set()
        for wake in self._wakes.values():
            wake.set()
        # Wakes the waker thread; to other dispatchers this is a harmless spurious wake-up.
        outbox.committed.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        if not self._threads:
            for client in self.clients.values():
                client.close()

    def _wake_on_commit(self):
        # One thread turns the process-wide event into one wake-up per target, so a
        # target's thread clearing it can never hide a commit from another target.
        while not self._stopping.is_set():
            if outbox.committed.wait(self.settings.poll_seconds):
                outbox.committed.clear()
                for wake in self._wakes.values():
                    wake.set()

    def _open_due_every_poll(self):
        # The messages of the requests it sends wake the target threads when they commit.
        while not self._stopping.is_set():
            try:
                with store.database.connection_context():
                    self.open_due(utcnow())
            except Exception:
                log.exception("opening scheduled fulfillment orders failed; trying again")
            self._stopping.wait(self.settings.poll_seconds)

    def _work(self, target):
        wake = self._wakes[target]
        while not self._stopping.is_set():
            wake.clear()
            try:
                with store.database.connection_context():
                    self.run_target(target, utcnow)
            except Exception:
                log.exception("outbox dispatcher for %s failed; trying again", target)
            wake.wait(self.settings.poll_seconds)


_in_process = None
_in_process_lock = threading.Lock()


def ensure_started(settings):
    """Start this process's in-app dispatcher unless it runs already or is disabled; return it."""
    global _in_process
    if not settings.in_app_dispatcher:
        return None
    with _in_process_lock:
        # A forked worker (gunicorn) inherits the parent's globals but not its threads.
        if _in_process is None or _in_process[0] != os.getpid():
            _in_process = (os.getpid(), Dispatcher(settings).start())
        return _in_process[1]


def stop_in_process(timeout=None):
    """Stop this process's in-app dispatcher if one runs."""
    global _in_process
    with _in_process_lock:
        running, _in_process = _in_process, None
    if running is not None and running[0] == os.getpid():
        running[1].stop(timeout)

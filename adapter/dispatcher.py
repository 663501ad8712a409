"""Run the outbox: per target, claim due messages, send them, settle their outcomes; open what came due.

The runner only: what an outcome does is `delivery.py`, claiming and settling is `claims.py`.
"""

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import claims, fulfillment_orders, observers, outbox, store
from .service_client import DeliveryError, client_for
from .times import utcnow

log = logging.getLogger(__name__)

# A lease outlives one send, which ends within its deadline (twice the timeout, see
# ServiceClient), plus slack for the database round trips around it.
LEASE_MARGIN_SECONDS = 30
# A batch's outcomes wait in memory at most this long (plus one send) before they are
# recorded, and the leases of its unsent messages are renewed as often: every send
# starts within this many seconds of its lease being set, far inside the margin.
RECORD_EVERY_SECONDS = 1.0
# Database round trips around a send, on top of the send itself, before a gone claimer's
# messages are taken over (claims.claim's takeover_after).
TAKEOVER_SLACK_SECONDS = 1.0


def targets_of(settings):
    """Return every configured target: each service key, and `notifications` if it has a URL."""
    targets = list(settings.services)
    if settings.notifications_url:
        targets.append(outbox.NOTIFICATIONS)
    return targets


def waves(messages, size):
    """Split a claimed batch, in order, into the groups sent at once: at most `size`, never two of
    one FO, and a message naming no FO (a customer notification) alone."""
    groups, group, fos = [], [], set()
    for message in messages:
        fo = message.fulfillment_order_id
        if group and (fo is None or None in fos or fo in fos or len(group) == size):
            groups.append(group)
            group, fos = [], set()
        group.append(message)
        fos.add(fo)
    return groups + [group] if group else groups


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
        return self.clients[target].deadline_seconds + LEASE_MARGIN_SECONDS

    def takeover_after(self, target):
        """Return how long after a gone claimer last set a lease its messages are taken over.

        Each of its sends started within RECORD_EVERY_SECONDS of the lease being set and
        ended within its deadline, so by then none is still in flight.
        """
        return self.clients[target].deadline_seconds + RECORD_EVERY_SECONDS + TAKEOVER_SLACK_SECONDS

    def claim(self, target, now):
        """Claim up to batch_size due messages of `target` under a fresh lease; return them."""
        return claims.claim(target, now, self.lease_seconds(target), self.settings.batch_size,
                            self.takeover_after(target))

    def send_batch(self, messages, claimed_at, clock):
        """Send messages claimed at `claimed_at` in waves, record their outcomes; return how many were sent.

        A wave is up to `sends_in_flight` messages sent at once, never two of one FO (a claim
        holds at most one message per FO anyway), and a message naming no FO (a customer
        notification) goes alone, so every FO's messages arrive in order. Outcomes are
        recorded, and the leases of the messages still to send renewed, in one transaction
        every RECORD_EVERY_SECONDS and once at the end (also when stopping or failing), so a
        fast service costs two write transactions per batch. A crash before an outcome is
        recorded leaves its message to be sent again, with the same webhook-id, once the
        lease runs out.
        """
        held = {message.id for message in messages}
        leased_at, outcomes, sent, done = claimed_at, [], 0, 0
        try:
            with ThreadPoolExecutor(self.settings.sends_in_flight) as senders:
                for wave in waves(messages, self.settings.sends_in_flight):
                    if self._stopping.is_set():
                        # Unsent claims go back to others once their lease runs out.
                        break
                    now = clock()
                    if (now - leased_at).total_seconds() >= RECORD_EVERY_SECONDS:
                        unsent = [later for later in messages[done:] if later.id in held]
                        held = self._settle(outcomes, unsent, now)
                        leased_at, outcomes = now, []
                    done += len(wave)
                    for message in wave:
                        if message.id not in held:
                            log.info("message %s was taken over by another worker; not sending",
                                     message.message_id)
                    answered, error = self._send_wave(
                        senders, [message for message in wave if message.id in held], now)
                    outcomes += answered
                    sent += len(answered)
                    if error is not None:
                        raise error
        finally:
            self._settle(outcomes, [], clock())
        return sent

    def _send_wave(self, senders, wave, now):
        """Send a wave at once; return the outcomes of every send that finished, and the first
        error (a fault of the code, not of the service), so one failing send never costs the
        others their record."""
        sending, error = [], None
        for message in wave:
            try:
                sending.append((message, senders.submit(self._send, message, now)))
            except RuntimeError as exc:  # the interpreter is shutting down
                error = exc
                break
        answered = []
        for message, future in sending:
            try:
                answered.append((message, future.result(), now))
            except Exception as exc:
                error = error or exc
        return answered, error

    def _send(self, message, now):
        """Post one message; return its Answer or the DeliveryError that stopped it."""
        started = time.perf_counter()
        try:
            return self.clients[message.target].post(message, now)
        except DeliveryError as exc:
            return exc
        finally:
            observers.timed(message.target, time.perf_counter() - started)

    def _settle(self, outcomes, unsent, now):
        """Record outcomes and renew the leases of `unsent` (see `claims.settle`); return the ids held."""
        lease_seconds = self.lease_seconds(unsent[0].target) if unsent else 0
        return claims.settle(outcomes, unsent, now, lease_seconds, self.settings.retry_schedule)

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
            except Exception as exc:
                _log_failure("opening scheduled fulfillment orders", exc)
            self._stopping.wait(self.settings.poll_seconds)

    def _work(self, target):
        wake = self._wakes[target]
        while not self._stopping.is_set():
            wake.clear()
            try:
                with store.database.connection_context():
                    self.run_target(target, utcnow)
            except Exception as exc:
                _log_failure(f"outbox dispatcher for {target}", exc)
            wake.wait(self.settings.poll_seconds)


def _log_failure(what, exc):
    """Log why a loop of the dispatcher failed: one line when the store is away, else the traceback."""
    if not store.is_unavailable(exc):
        log.exception("%s failed; trying again", what)
        return
    # Locked, full or unreachable: one line per poll, not a traceback, naming the deepest cause
    # (a full disk hides behind the ROLLBACK that failed after it).
    causes = [error for error in store.driver_errors(exc) if store.is_unavailable(error)]
    cause = causes[-1] if causes else exc
    log.warning("%s: the store is unavailable (%s); trying again", what, " ".join(str(cause).split()))


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

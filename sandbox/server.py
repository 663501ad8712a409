"""The sandbox over HTTP: a receiver for the adapter's messages and a sender for its webhooks."""

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from typing import NamedTuple

import requests
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import scripts
from .clock import rfc3339, unix_seconds, utcnow

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PATH = "/adapter-hooks"
USER_AGENT = "fulfillment-sandbox"
SEND_TIMEOUT_SECONDS = 10
# Pauses before the second and third attempt when the adapter is down or answers 5xx.
RETRY_WAITS_SECONDS = (1, 3)
DETAIL_CHARS = 200
# How often the HTTP server looks for a shutdown request: bounds how long stopping takes.
SHUTDOWN_POLL_SECONDS = 0.1


class Pending(NamedTuple):
    """A step waiting to be sent; ordered by when it is due, then by when it was queued."""

    due: float
    order: int
    fo_id: int | None
    script: int
    step: scripts.Step


def _json(status, body):
    return Response(json.dumps(body), status, mimetype="application/json")


def _quoted(message):
    return f" {message!r}" if message else ""


class Sender:
    """Post scheduled webhooks to the adapter from one thread, in due order, signed."""

    def __init__(self, webhooks_url, secret, *, duplicates=False):
        self.webhooks_url = webhooks_url
        self._webhook = Webhook(secret)
        self._duplicates = duplicates
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._pending = []
        self._order = itertools.count()
        self._scripts = itertools.count()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-sender", daemon=True)

    def schedule(self, fo_id, steps):
        """Queue a script for the FO, each step due its delay after the previous one.

        The FO's unsent steps wait until the new script is sent, as a warehouse answers a
        cancellation request before it carries on with the order.
        """
        due, script = time.monotonic(), next(self._scripts)
        length = sum(step.delay for step in steps)
        with self._changed:
            self._pending = [
                pending._replace(due=pending.due + length) if pending.fo_id == fo_id else pending
                for pending in self._pending
            ]
            heapq.heapify(self._pending)
            for step in steps:
                due += step.delay
                heapq.heappush(self._pending, Pending(due, next(self._order), fo_id, script, step))
            self._changed.notify()

    def cancel(self, fo_id):
        """Drop the FO's unsent steps; return how many there were."""
        return self._drop(lambda pending: pending.fo_id == fo_id)

    def _drop(self, matches):
        with self._changed:
            kept = [pending for pending in self._pending if not matches(pending)]
            dropped = len(self._pending) - len(kept)
            heapq.heapify(kept)
            self._pending = kept
        return dropped

    def start(self):
        """Start sending in the background."""
        self._thread.start()

    def stop(self):
        """Stop after the webhook being sent, drop the rest and close the connections."""
        self._stopping.set()
        with self._changed:
            self._changed.notify()
        self._thread.join()
        self._session.close()

    def _next_due(self):
        """Wait for the earliest step to fall due and take it; None once stopping."""
        with self._changed:
            while not self._stopping.is_set():
                if not self._pending:
                    self._changed.wait()
                elif self._pending[0].due > time.monotonic():
                    self._changed.wait(self._pending[0].due - time.monotonic())
                else:
                    return heapq.heappop(self._pending)
        return None

    def _run(self):
        while (pending := self._next_due()) is not None:
            status = self.send(pending.fo_id, pending.step)
            # The adapter refused the step: a real service would not carry on with that script
            # (say, ship after its late accept was refused); other scripts for the FO go on.
            if status is not None and 400 <= status <= 499:
                dropped = self._drop(lambda other: other.script == pending.script)
                if dropped:
                    log.info("FO %s: dropped %d unsent step(s) of the script after a %d",
                             pending.fo_id, dropped, status)

    def send(self, fo_id, step):
        """Post one step (twice with the same webhook-id when duplicating); return the first status."""
        webhook_id = f"sbx_{uuid.uuid4().hex}"
        body = json.dumps(
            {"type": step.event_type, "timestamp": rfc3339(utcnow()), "data": step.data},
            ensure_ascii=False,
        )
        label = " ".join(filter(None, (step.event_type, step.data.get("status"))))
        statuses = [
            self._post(webhook_id, body, f"{label} {webhook_id} FO {fo_id}")
            for _ in range(2 if self._duplicates else 1)
        ]
        return statuses[0]

    def _signed_headers(self, webhook_id, body):
        """Return the headers of a JSON body signed now, a fresh timestamp on every attempt."""
        now = utcnow()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(unix_seconds(now)),
            "webhook-signature": self._webhook.sign(webhook_id, now, body),
            "Content-Type": "application/json",
        }

    def _post(self, webhook_id, body, label):
        """Post a signed body, retrying transport errors and 5xx; return the status or None."""
        for attempt, wait in enumerate((0, *RETRY_WAITS_SECONDS), 1):
            if self._stopping.wait(wait):
                return None
            headers = self._signed_headers(webhook_id, body)
            try:
                response = self._session.post(
                    self.webhooks_url, data=body.encode("utf-8"), headers=headers,
                    timeout=SEND_TIMEOUT_SECONDS,
                )
            except requests.RequestException as exc:
                log.warning("sent %s: no answer (%s), attempt %d", label, type(exc).__name__, attempt)
                continue
            with response:
                log.info("sent %s: %d%s", label, response.status_code, _answer_note(response))
            if response.status_code < 500:
                return response.status_code
        return None


def _answer_note(response):
    """Return ` code: detail` of a problem+json answer, ` (replayed)` for a replayed success."""
    if response.ok:
        return " (replayed)" if response.headers.get("Idempotent-Replayed") == "true" else ""
    try:
        problem = response.json()
    except ValueError:
        return f" {response.text[:DETAIL_CHARS]!r}"
    if not isinstance(problem, dict):
        return ""
    return f" {problem.get('code')}: {str(problem.get('detail'))[:DETAIL_CHARS]}"


class Receiver:
    """Answer the adapter's messages (a WSGI app) and hand their scripts to the sender."""

    def __init__(self, secret, options, sender, *, fail=0, hang=0.0):
        self._webhook = Webhook(secret)
        self._options = options
        self._sender = sender
        self._hang = hang
        self._failures_left = fail
        self._seen = set()
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        response = self.answer(Request(environ))
        if self._hang:
            time.sleep(self._hang)
        return response(environ, start_response)

    def _take_failure(self):
        with self._lock:
            if self._failures_left <= 0:
                return False
            self._failures_left -= 1
            return True

    def answer(self, request):
        """Return the response to one request."""
        if request.path != PATH:
            return _json(404, {"error": f"POST messages to {PATH}."})
        if request.method != "POST":
            return _json(405, {"error": "Only POST."})
        webhook_id = request.headers.get("webhook-id", "-")
        if self._take_failure():
            log.info("received %s: 500 (failing on purpose)", webhook_id)
            return _json(500, {"error": "The sandbox fails this message on purpose."})
        body = request.get_data()
        try:
            self._webhook.verify(body, request.headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            log.warning("received %s: 401 (%s)", webhook_id, exc)
            return _json(401, {"error": "Bad signature."})
        try:
            envelope = json.loads(body)
            reaction = scripts.react(envelope, self._options, utcnow())
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("received %s: 400 (unexpected message: %s %s)", webhook_id, type(exc).__name__, exc)
            return _json(400, {"error": f"Unexpected message: {type(exc).__name__} {exc}."})
        label = f"{envelope['type']} {webhook_id} FO {reaction.fulfillment_order_id}"
        with self._lock:
            duplicate = webhook_id in self._seen
            self._seen.add(webhook_id)
        if duplicate:
            log.info("received %s: 200 (duplicate, ignored)", label)
            return _json(200, {"status": "duplicate"})
        outcome = f"{len(reaction.steps)} step(s) queued"
        if reaction.cancels_pending:
            outcome += f", {self._sender.cancel(reaction.fulfillment_order_id)} unsent dropped"
        self._sender.schedule(reaction.fulfillment_order_id, reaction.steps)
        log.info("received %s: 200 (%s)%s", label, outcome, _quoted(envelope["data"].get("message")))
        return _json(200, {"status": "received"})


class QuietRequestHandler(WSGIRequestHandler):
    """Serve requests without werkzeug's access log: the receiver logs each message itself."""

    def log_request(self, code="-", size="-"):
        """Log nothing."""


class SandboxServer:
    """The sandbox on a loopback port: the receiver in front, the sender behind."""

    def __init__(self, secret, webhooks_url, options, *, port=0, fail=0, hang=0.0, duplicates=False):
        self.sender = Sender(webhooks_url, secret, duplicates=duplicates)
        receiver = Receiver(secret, options, self.sender, fail=fail, hang=hang)
        self._http = make_server(
            HOST, port, receiver, threaded=True, request_handler=QuietRequestHandler
        )
        self.url = f"http://{HOST}:{self._http.server_port}{PATH}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="sandbox-http", daemon=True,
        )

    def start(self):
        """Start receiving and sending in background threads; return self."""
        self.sender.start()
        self._thread.start()
        return self

    def stop(self):
        """Stop receiving, then sending, and release the port."""
        self._http.shutdown()
        self._thread.join()
        self._http.server_close()
        self.sender.stop()

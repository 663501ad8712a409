"""Prometheus metrics (SPEC 9): `GET /metrics`, and the same on a port of its own for `flask outbox work`.

Counters and histograms live in each process; under gunicorn they are written to files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it up) and a scrape sums every worker's. Gauges
are read from the store when scraped, so each host reports the same values once, however many
workers it has; a short cache keeps frequent scrapes cheap.
"""

import hmac
import logging
import os
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Blueprint, current_app, g, request
from peewee import fn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from adapter import observers, store
from adapter.models import FulfillmentOrder, Order, OutboxMessage
from adapter.times import utcnow
from adapter.vocabulary import MessageType

from . import schemas
from .log_format import method_of, route_of
from .openapi import documented
from .problems import problem_response

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

UNKNOWN = "unknown"
INVALID = "invalid"
GAUGE_CACHE_SECONDS = 5.0
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "adapter_http_requests_total", "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "adapter_http_request_duration_seconds", "Time to answer an HTTP request, by method and route.",
    ["method", "route"],
)
WEBHOOKS_RECEIVED = Counter(
    "adapter_webhooks_received_total",
    "Webhooks received from services, by service, type and outcome (applied, replayed or the"
    " problem code).",
    ["service", "type", "outcome"],
)
OUTBOX_ATTEMPTS = Counter(
    "adapter_outbox_attempts_total",
    "Outbox delivery attempts, by target, message type and outcome (delivered, retry, failed,"
    " not_recorded).",
    ["service", "type", "outcome"],
)
OUTBOX_DURATION = Histogram(
    "adapter_outbox_attempt_duration_seconds", "Time one delivery attempt took, by target.",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
# Every type the adapter sends (SPEC 4.1 and the customer notifications).
MESSAGE_TYPES = frozenset(MessageType)


def _targets():
    from adapter.dispatcher import targets_of

    return targets_of(_settings())


_current = {}


def _settings():
    return _current["settings"]


def service_label(key):
    """A configured service key (or `notifications`) as is; anything else is `unknown`."""
    return key if key in _targets() else UNKNOWN


def webhook_type_label(event_type):
    """A known inbound webhook type as is; anything else (or none) is `invalid`."""
    return event_type if event_type in schemas.WEBHOOK_DATA_SCHEMAS else INVALID


def message_type_label(message_type):
    """A known outbound message type as is, or `invalid`."""
    return message_type if message_type in MESSAGE_TYPES else INVALID


def _observe_attempt(message, outcome):
    OUTBOX_ATTEMPTS.labels(service_label(message.target), message_type_label(message.type),
                           outcome).inc()


def _observe_timing(target, seconds):
    OUTBOX_DURATION.labels(service_label(target)).observe(seconds)


def _observe_request(response):
    """Count the request and time it; label a webhook by service, type and outcome."""
    method, route = method_of(), route_of()
    status = response.status_code
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(time.perf_counter() - g.get("started", time.perf_counter()))
    if request.url_rule is not None and request.url_rule.endpoint == "webhooks.receive":
        if 200 <= status < 300:
            outcome = "replayed" if response.headers.get("Idempotent-Replayed") else "applied"
        else:
            outcome = g.get("problem_code") or f"http_{status}"
        service = service_label((request.view_args or {}).get("service", ""))
        WEBHOOKS_RECEIVED.labels(service, webhook_type_label(g.get("webhook_type")), outcome).inc()
    return response


class StoreGauges:
    """Gauges computed from the store at scrape time, kept GAUGE_CACHE_SECONDS."""

    def __init__(self, cache_seconds=GAUGE_CACHE_SECONDS, clock=time.monotonic):
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cached = (None, None)

    def collect(self):
        """Yield the gauge families, read again when the cached ones are older than the cache time."""
        with self._lock:
            read_at, families = self._cached
            if families is None or self.clock() - read_at >= self.cache_seconds:
                families = self._read()
                self._cached = (self.clock(), families)
        yield from families

    @staticmethod
    def _read():
        now = utcnow()
        targets = _targets()
        with store.database.connection_context():
            # Both walk the (status, target, next_attempt_at) index; delivered rows are never read.
            waiting = dict.fromkeys(targets, (0, None))
            for target, count, oldest in (
                OutboxMessage.select(OutboxMessage.target, fn.COUNT(OutboxMessage.id),
                                     fn.MIN(OutboxMessage.created_at))
                .where(OutboxMessage.status.in_(("pending", "sending")))
                .group_by(OutboxMessage.target).tuples()
            ):
                waiting[target] = (count, oldest)
            failed = dict.fromkeys(targets, 0)
            failed.update(
                OutboxMessage.select(OutboxMessage.target, fn.COUNT(OutboxMessage.id))
                .where(OutboxMessage.status == "failed")
                .group_by(OutboxMessage.target).tuples()
            )
            # Through the orders' (needs_attention, id) index: the FOs of flagged orders only.
            attention = (
                FulfillmentOrder.select(fn.COUNT(FulfillmentOrder.id))
                .join(Order, on=(FulfillmentOrder.order == Order.id))
                .where((Order.needs_attention == True) & (FulfillmentOrder.needs_attention == True))  # noqa: E712
                .scalar()
            )
        messages = GaugeMetricFamily("adapter_outbox_messages",
                                     "Outbox messages waiting to be delivered (pending) or given up"
                                     " (failed), by target.", labels=["service", "state"])
        oldest_age = GaugeMetricFamily("adapter_outbox_oldest_pending_age_seconds",
                                       "Age of the oldest message not yet delivered, by target"
                                       " (0 when none waits).", labels=["service"])
        for target, (count, oldest) in sorted(waiting.items(), key=lambda item: item[0]):
            label = target if target in targets else UNKNOWN
            messages.add_metric([label, "pending"], count)
            age = 0.0 if oldest is None else max((now - _naive(oldest)).total_seconds(), 0.0)
            oldest_age.add_metric([label], age)
        for target, count in sorted(failed.items()):
            messages.add_metric([target if target in targets else UNKNOWN, "failed"], count)
        needing = GaugeMetricFamily("adapter_fulfillment_orders_needing_attention",
                                    "Fulfillment orders flagged for the merchant's attention.")
        needing.add_metric([], attention or 0)
        return [messages, oldest_age, needing]


def _naive(moment):
    """Times come back as text from SQLite; parse them like the model field does."""
    return OutboxMessage.created_at.python_value(moment) if isinstance(moment, str) else moment


class _ThisProcess:
    """The default registry's metrics, when there is one process and no multiprocess directory."""

    def collect(self):
        yield from REGISTRY.collect()


def scrape():
    """Return the text of a scrape: every process's counters and histograms, and the store gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_DIR):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(_current["gauges"])
    return generate_latest(registry)


def token_matches(header, token):
    """Tell whether an Authorization header carries `Bearer <token>`, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


NO_METRICS = "There is no /metrics without metrics.token (METRICS_TOKEN)."
BAD_TOKEN = "Send `Authorization: Bearer <metrics.token>`."


def answer(authorization, token):
    """Return (status, headers, body) of a request for the metrics with this Authorization header.

    Refusals are problem+json (SPEC 5), like every other error of the app.
    """
    if not token:
        body, status, headers = problem_response(404, "not_found", "Not found", NO_METRICS)
        return status, headers, body.encode()
    if not token_matches(authorization, token):
        body, status, headers = problem_response(401, "unauthorized", "Unauthorized", BAD_TOKEN,
                                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return status, headers, body.encode()
    return 200, {"Content-Type": CONTENT_TYPE_LATEST}, scrape()


@bp.get("/metrics")
@documented(
    "Prometheus metrics in the text format; needs `Authorization: Bearer <metrics.token>`"
    " (not a merchant token). 404 when no metrics.token is set.",
    errors=(401, 404), tag="Operations",
)
def metrics():
    status, headers, body = answer(request.headers.get("Authorization"),
                                   current_app.extensions["adapter_settings"].metrics_token)
    return body, status, headers


def configure(settings):
    """Label with this configuration's targets and report outbox attempts to the counters."""
    _current["settings"] = settings
    _current["gauges"] = StoreGauges()
    observers.on_attempt(_observe_attempt)
    observers.on_timing(_observe_timing)


def init_app(app, settings):
    """Serve `/metrics` and count every request."""
    configure(settings)
    app.register_blueprint(bp)
    app.after_request(_observe_request)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """Log nothing per scrape; the worker's own lines say what it does."""


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(settings, host, port):
    """Serve the metrics on host:port in a daemon thread (for `flask outbox work`); return the server."""
    configure(settings)
    token = settings.metrics_token

    def application(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            text, status, headers = problem_response(404, "not_found", "Not found", "Only /metrics is here.")
            body = text.encode()
        else:
            try:
                status, headers, body = answer(environ.get("HTTP_AUTHORIZATION"), token)
            except Exception:
                log.exception("reading the metrics failed")
                text, status, headers = problem_response(503, "store_unavailable", "Store unavailable",
                                                         "The metrics could not be read; try again.")
                body = text.encode()
        reasons = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
        start_response(f"{status} {reasons[status]}", list(headers.items()))
        return [body]

    server = make_server(host, port, application, server_class=_ThreadedServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


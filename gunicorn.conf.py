"""Gunicorn settings, read from the working directory: `gunicorn 'app:create_app()'` needs nothing else.

Gevent workers: a connection costs a greenlet, not a worker, so clients that stall mid-request
never stop others from being served (bench/RESULTS.md, "Serving"). Requests and headers as large
as SPEC 5 allows reach the app, and what gunicorn refuses on its own is answered problem+json.
"""

import gc
import os
import shutil
import tempfile

from gunicorn import glogging
from gunicorn.http import errors as http_errors
from gunicorn.workers.ggevent import GeventWorker

from adapter import log_lines
from config import ConfigError, log_format_of

# Gunicorn 27 opens one control socket per user by default, shared by every instance on
# the host; this application does not use it.
control_socket_disable = True

workers = 2
worker_connections = 1000

# SPEC 5: each header up to 32 KB reaches the app (an oversized webhook-signature gets the app's
# 401, not gunicorn's 431); the limit counts the name, ": " and CRLF too, hence the 1 KB more.
# Gunicorn has no limit on the whole head, only on each field and on their number.
limit_request_field_size = 32 * 1024 + 1024
limit_request_fields = 100
limit_request_line = 8190  # gunicorn's maximum

# Status, title and stable code (SPEC 5) for what gunicorn's HTTP parser refuses. SPEC 5 wants a
# 4xx whatever the client sent, so an unknown transfer coding is 400 (gunicorn says 501) and a
# path outside SCRIPT_NAME is 404 (gunicorn says 500).
REFUSALS = [
    (http_errors.LimitRequestLine, 414, "URI too long", "payload_too_large"),
    (http_errors.LimitRequestHeaders, 431, "Request header fields too large", "payload_too_large"),
    (http_errors.ConfigurationProblem, 404, "Not found", "not_found"),
    (http_errors.ExpectationFailed, 417, "Expectation failed", "malformed_json"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "unauthorized"),
    (http_errors.ParseException, 400, "Malformed request", "malformed_json"),
]
NON_ASCII_TARGET = ("The request target must be ASCII (RFC 9112): percent-encode other characters, "
                    "e.g. `?q=%E0%B8%81` for `?q=ก`.")
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 414: "URI Too Long",
           417: "Expectation Failed", 431: "Request Header Fields Too Large"}


def refusal(exc):
    """Return (status, title, code, detail) for a request gunicorn refuses, or None for other faults."""
    if isinstance(exc, http_errors.InvalidResponseHeader | http_errors.InvalidResponseHeaderName):
        return None  # the app's fault, not the client's: gunicorn's 500
    answer = next((row[1:] for row in REFUSALS if isinstance(exc, row[0])), None)
    if answer is None:
        return None
    status, title, code = answer
    detail = str(exc)[:300]
    if isinstance(exc, http_errors.InvalidRequestLine) and not detail.isascii():
        detail = NON_ASCII_TARGET
    elif isinstance(exc, http_errors.InvalidHeader):
        detail = f"The header {exc.hdr[:100]!r} is malformed or holds a control character."
    elif isinstance(exc, http_errors.LimitRequestHeaders):
        detail = "A request header exceeds 32 KB, or there are more than 100 headers."
    return status, title, code, detail


class ProblemWorker(GeventWorker):
    """Gevent worker that answers malformed requests with problem+json instead of HTML."""

    def handle_error(self, req, client, addr, exc):
        """Answer a request gunicorn refuses with a 4xx problem+json; leave other faults to gunicorn."""
        answer = refusal(exc)
        if answer is None:
            super().handle_error(req, client, addr, exc)
            return
        from gunicorn import util

        from handlers.problems import problem_response

        status, title, code, detail = answer
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], str(exc)[:300])
        body = problem_response(status, code, title, detail)[0].encode("utf-8")
        head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nConnection: close\r\n"
                f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n")
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except OSError:
            self.log.debug("Failed to send error message.")


worker_class = ProblemWorker


class AdapterLogger(glogging.Logger):
    """Gunicorn's logger writing its own lines in the app's format (SPEC 9): JSON, or LOG_FORMAT=text."""

    def setup(self, cfg):
        # Gunicorn's settings still choose where its lines go (--error-logfile, --access-logfile; no
        # access log unless one is given): only the format of its handlers is changed. The master's
        # own records (the no-token warning of on_starting) follow app.check_configuration.
        super().setup(cfg)
        try:
            log_format = log_format_of(os.environ)
        except ConfigError:
            log_format = "json"  # on_starting stops the start with the line that names LOG_FORMAT
        formatter = log_lines.formatter(log_format)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)


logger_class = AdapterLogger

# Metrics (SPEC 9): each worker writes its counters and histograms to files in this directory and
# a scrape of any worker sums them all. Set here, before any worker imports prometheus_client; a
# directory given in the environment is used (and emptied at start), else a private one is made.
_MADE_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MADE_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="adapter-metrics-")


def on_starting(server):
    """Check the configuration in the master: an error stops the start with one line, exit 3."""
    import app

    app.check_configuration()
    # Counts of an earlier run must not add to this one's.
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)


def child_exit(server, worker):
    """Drop the live values of a worker that exited; its counts stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this configuration made."""
    if _MADE_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_fork(server, worker):
    """Make psycopg2 wait for PostgreSQL through gevent, so one query does not stop the worker."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker):
    """Start the in-app dispatcher as soon as the worker has loaded the app, not at its first request.

    What the worker has loaded by then lives as long as it does: frozen, it is left out of the
    garbage collector's full passes, which otherwise walk it all and stall every greenlet of the
    worker (PostgreSQL webhook mix p99 39 ms against 35 ms frozen, bench/RESULTS.md §13). The
    start's garbage is collected first, so none is kept for the worker's life; what of the frozen
    part becomes garbage later is collected by `worker_exit`, while finalisers can still run (at
    the interpreter's shutdown gevent can no longer run a logging handler's callbacks).
    """
    from adapter import dispatcher

    gc.collect()
    gc.freeze()
    settings = getattr(worker.wsgi, "extensions", {}).get("adapter_settings")
    if settings is not None:  # not another app served with this file (the benchmarks' no-op)
        dispatcher.ensure_started(settings)


def worker_exit(server, worker):
    """Stop the worker's dispatcher: the wave on the wire finishes and is recorded, the rest of its
    batch goes back to the other dispatchers when its lease runs out."""
    from adapter import dispatcher

    dispatcher.stop_in_process(timeout=5)
    # What was frozen at the start and is garbage now is collected while its finalisers can run.
    gc.unfreeze()
    gc.collect()

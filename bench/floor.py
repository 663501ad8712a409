"""The floor under the ingestion ratio: what a message webhook must cost at least, next to what
the ratio targets allow it.

Not a test: it prints figures. The ratio compares two apps served alike on the same cores, so
the time the adapter may spend beyond the no-op's is fixed by the no-op's rate: at a ratio r on
`nproc` cores, cores / rate × (1/r − 1) per webhook (everything on the machine included: the
app, the PostgreSQL server, the load generator). Against it, this script times in process, one
at a time, the work a webhook cannot skip whatever the code around it: checking the signature,
parsing and validating the body, the store's own work for its statements, encoding the answer,
the request's JSON log line and its metrics. On SQLite the store's work is the webhook's own
statements replayed through the bare `sqlite3` module; on PostgreSQL it is the CPU the server's
backends spend per webhook while the adapter applies them. The whole webhook in process, and
the no-op in process, are timed too: what lies between the floor and the whole is the adapter's
own Python (the handler, the ORM, rendering).

    python bench/floor.py                                  # SQLite, about a minute
    python bench/floor.py --database postgresql://postgres@127.0.0.1:5432/bench_floor
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import _common as c
import ingest

SERVICE = "bench"
TARGETS = {"SQLite": (("messages", 0.5), ("mix", 0.25)), "PostgreSQL": (("messages", 0.25), ("mix", 0.15))}


def per_call_us(function, count):
    """Run `function` `count` times; return the mean microseconds of a call."""
    began = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - began) / count * 1e6


def noop_rate(directory, seconds):
    """The no-op app's rate under the deployed gunicorn settings, wrk at 8 connections."""
    env = dict(os.environ)
    noop = c.gunicorn_server("noop", "noop_app:app", env, directory, worker_class=None,
                             conf=str(c.REPO / "gunicorn.conf.py"), extra_args=("--pythonpath", str(c.BENCH)))
    deliveries = ingest.message_deliveries("noop-", [1], 5000)
    with noop:
        c.run_load(noop.base_url, deliveries, duration=2, cycle=True, directory=directory)
        return c.run_load(noop.base_url, deliveries, duration=seconds, cycle=True, directory=directory)


class Statements(logging.Handler):
    """Keep the (sql, params) of every statement peewee runs while enabled."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.kept, self.enabled = [], False

    def emit(self, record):
        if self.enabled and record.name == "peewee" and isinstance(record.msg, tuple):
            self.kept.append(record.msg)


def capture_statements(client, delivery):
    """Post one delivery; return the (sql, params) it ran."""
    handler = Statements()
    log = logging.getLogger("peewee")
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler.enabled = True
    try:
        response = post(client, delivery)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate
    assert response.status_code == 200, response.get_data(as_text=True)
    return handler.kept


def sqlite_replay_us(path, statements, webhook_id, count):
    """Replay a webhook's statements through bare sqlite3 (as the store opens it), each time
    under a new webhook id; return (µs per webhook, µs of a WAL flush)."""
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = normal")
    connection.execute("PRAGMA foreign_keys = 1")
    body = [(sql, params) for sql, params in statements if not sql.upper().startswith("BEGIN")]

    def one(number):
        fresh = f"{webhook_id}-replay-{number}"
        connection.execute("BEGIN IMMEDIATE")
        for sql, params in body:
            connection.execute(sql, [fresh if value == webhook_id else value for value in params])
        connection.execute("COMMIT")

    numbers = iter(range(count * 2))
    for _ in range(50):
        one(next(numbers))
    replay = per_call_us(lambda: one(next(numbers)), count)
    wal = os.open(path + "-wal", os.O_RDONLY)
    try:
        def flush():
            one(next(numbers))
            os.fsync(wal)

        flushed = per_call_us(flush, min(count, 300)) - replay
    finally:
        os.close(wal)
        connection.close()
    return replay, flushed


def backend_cpu_seconds(url):
    """CPU seconds used so far by the PostgreSQL backends connected to this database (not ours)."""
    rows = c.query_rows(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                             "AND pid <> pg_backend_pid()")
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for (pid,) in rows:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def row(label, us):
    print(f"  {label:<76} {us:8.1f}")


def post(client, delivery):
    _, path, headers, body = delivery
    return client.post(path, data=body, headers=headers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--count", type=int, default=3000, help="timed calls of each part (3000)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds of the no-op's load (10)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-floor-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        store_kind = "PostgreSQL" if c.is_postgres_url(url) else "SQLite"
        cores = os.cpu_count()
        noop = noop_rate(directory, options.seconds)
        print(f"\nno-op under `gunicorn -c gunicorn.conf.py`, wrk 8 connections: {noop['rps']:,.0f} req/s"
              f" = {cores / noop['rps'] * 1e6:.0f} µs of the machine's {cores} cores per request")
        print(f"what the targets allow a webhook beyond the no-op ({store_kind}):")
        allowed = {}
        for name, ratio in TARGETS[store_kind]:
            allowed[name] = cores / noop["rps"] * (1 / ratio - 1) * 1e6
            print(f"  {name:<9} ratio >= {ratio:<5} {allowed[name]:7.0f} µs")

        # Metrics as deployed: multiprocess files (the app's metrics are made at its import).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=directory)
        config = c.write_config(f"{directory}/adapter.toml", {
            SERVICE: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/hooks",
                      "secret": c.SECRET, "timeout_seconds": 1}})
        app = c.make_inprocess_app(url, config)
        logging.getLogger().handlers.clear()  # the floor times its own log line, below
        client = app.test_client()
        orders = [client.post("/orders", json=ingest.order_payload(i, "floor"),
                              headers={"Authorization": f"Bearer {c.TOKEN}"}).get_json()
                  for i in range(50)]
        fo_ids = [fo["id"] for order in orders for fo in order["fulfillment_orders"] if fo["service"]]
        deliveries = ingest.message_deliveries("floor-", fo_ids, options.count * 2 + 100)
        for delivery in deliveries[:50]:
            post(client, delivery)
        sample = deliveries[50]
        statements = capture_statements(client, sample)
        sample_answer = json.loads(post(client, sample).get_data())  # replayed, the same answer

        pending = iter(deliveries[51:])
        before = backend_cpu_seconds(url) if store_kind == "PostgreSQL" else 0.0
        whole = per_call_us(lambda: post(client, next(pending)), options.count)
        server = None
        if store_kind == "PostgreSQL":
            server = (backend_cpu_seconds(url) - before) / options.count * 1e6

        from flask import Flask
        from noop_app import app as noop_app

        from adapter import log_lines, signing
        from adapter.times import utcnow
        from handlers import webhooks
        from handlers.metrics import HTTP_DURATION, HTTP_REQUESTS, WEBHOOKS_RECEIVED

        noop_client = noop_app.test_client()
        noop_in_process = per_call_us(lambda: post(noop_client, sample), options.count)

        settings = app.extensions["adapter_settings"]
        _, _, headers, body = sample
        received = utcnow()
        verify = per_call_us(lambda: signing.verify(settings.services[SERVICE].secrets, headers, body,
                                                    settings.tolerance_seconds, received), options.count)
        with Flask(__name__).test_request_context():
            parse = per_call_us(lambda: webhooks._parse(body), options.count)
        encode = per_call_us(lambda: json.dumps(sample_answer, ensure_ascii=False), options.count)

        with open(os.devnull, "w") as sink:
            handler = logging.StreamHandler(sink)
            handler.setFormatter(log_lines.JSONFormatter())
            logger = logging.getLogger("floor.http")
            logger.addHandler(handler)
            logger.propagate = False
            logger.setLevel(logging.INFO)
            route = "/webhooks/<service>"
            log_line = per_call_us(lambda: logger.info(
                "%s %s %s %.1f ms", "POST", route, 200, 1.234,
                extra={"method": "POST", "route": route, "status": 200, "duration_ms": 1.234,
                       "request_id": "0" * 32}), options.count)

        def observe():
            HTTP_REQUESTS.labels("POST", route, "200").inc()
            HTTP_DURATION.labels("POST", route).observe(0.0012)
            WEBHOOKS_RECEIVED.labels(SERVICE, "fulfillment_order.message", "applied").inc()

        metrics = per_call_us(observe, options.count)

        parts = [("signature check (`signing.verify`: HMAC-SHA256)", verify),
                 ("JSON body parsed and validated (`webhooks._parse`: json + marshmallow)", parse)]
        flush = None
        if server is None:
            path = url[len("sqlite:///"):]
            replay, flush = sqlite_replay_us(path, statements, sample[2]["webhook-id"], options.count)
            parts.append((f"the store's work: its {len(statements)} statements on bare sqlite3", replay))
        else:
            parts.append(("the store's work: PostgreSQL backends' CPU per webhook", server))
        parts += [("the answer encoded (`json.dumps`)", encode),
                  ("the request's JSON log line", log_line),
                  ("the request's metrics (3 multiprocess observations)", metrics)]
        floor = sum(us for _, us in parts)

        print(f"\nin process, one at a time, {options.count} calls each (µs per message webhook):")
        for label, us in parts:
            row(label, us)
        row("floor: the sum", floor)
        if flush is not None:
            row("(not in the floor) a WAL flush, shared by the commits waiting on it", flush)
        print()
        row("whole webhook through the Flask test client (wall time: waits for the store included)", whole)
        row("no-op app through the Flask test client (Flask + werkzeug)", noop_in_process)
        own = whole - noop_in_process - floor - (flush or 0)
        row("the adapter's own Python: whole - no-op - floor" + (" - a flush" if flush else ""), own)
        print()
        for name, _ in TARGETS[store_kind]:
            verdict = "below" if floor <= allowed[name] else "ABOVE"
            print(f"  a message's floor, {floor:.0f} µs, is {verdict} what the {name} target allows "
                  f"({allowed[name]:.0f} µs): {floor / allowed[name]:.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())

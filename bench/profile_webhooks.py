"""Profile the adapter's webhook path in process: SQL statements per webhook and cProfile hotspots.

Not a test: it prints figures. It creates orders through `app.test_client()`, then posts signed
webhooks of each kind through the test client (the full Flask path, signatures verified):
first one of each kind with every SQL statement listed, then `--count` of the steady-state
`fulfillment_order.message` (and `--mix-count` of the accept/ship/event mix) under cProfile.

    python bench/profile_webhooks.py                     # SQLite, under a minute
    python bench/profile_webhooks.py --database postgresql://postgres@127.0.0.1:5432/bench_prof
"""

import argparse
import cProfile
import io
import logging
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import _common as c

SERVICE = "bench"


class QueryLog(logging.Handler):
    """Collect the statements peewee logs (every query it executes)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.statements = []
        self.enabled = False

    def emit(self, record):
        if self.enabled and record.name == "peewee":  # not the pool's own lines
            message = record.msg
            sql = message[0] if isinstance(message, tuple) else str(message)
            self.statements.append(sql)


class RoundTrips:
    """Count what goes to the database: each `execute` on a cursor of the store is one round trip
    (BEGIN and COMMIT included, and statements sent together counted once)."""

    def __init__(self, db):
        self.count = 0
        make_cursor = db.cursor

        def counted(*args, **kwargs):
            return _CountedCursor(make_cursor(*args, **kwargs), self)

        db.cursor = counted


class _CountedCursor:
    def __init__(self, cursor, trips):
        self._cursor, self._trips = cursor, trips

    def execute(self, *args):
        self._trips.count += 1
        return self._cursor.execute(*args)

    def __iter__(self):
        return iter(self._cursor)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


def order_payload(index):
    return {
        "external_id": f"prof-{index}",
        "currency": "USD",
        "shipping_address": {"name": "Bench", "address1": "1 Loop Rd", "city": "Bangkok",
                             "country_code": "TH"},
        "line_items": [
            {"sku": "MUG-1", "title": "Mug", "quantity": 2, "price": "12.50",
             "fulfillment_service": SERVICE},
            {"sku": "CARD", "title": "Gift card", "quantity": 1, "price": "20.00",
             "fulfillment_service": None},
        ],
    }


def post(client, delivery):
    method, path, headers, body = delivery[:4]
    return client.open(path, method=method, headers=headers, data=body)


def events_for(prefix, fo):
    when = datetime.now(UTC).replace(tzinfo=None)
    shipment = f"{prefix}shp-{fo}"
    return [
        ("fulfillment_request.accepted", {"fulfillment_order_id": fo, "message": "ok"}),
        ("fulfillment.created", {"fulfillment_order_id": fo, "external_id": shipment,
                                 "tracking": {"number": "1Z1", "company": "UPS"}}),
        ("fulfillment.event", {"external_id": shipment, "status": "in_transit",
                               "happened_at": (when - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}),
        ("fulfillment.tracking_updated", {"external_id": shipment,
                                          "tracking": {"number": "1Z2", "company": "UPS"}}),
        ("fulfillment_order.message", {"fulfillment_order_id": fo, "message": "hello"}),
    ]


def shorten(sql):
    sql = " ".join(sql.split())
    return sql if len(sql) < 150 else sql[:147] + "..."


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--count", type=int, default=2000, help="message webhooks profiled (2000)")
    parser.add_argument("--mix-count", type=int, default=200, help="FOs given the 5-event mix (200)")
    parser.add_argument("--intake", type=int, default=200, help="orders posted for the intake profile (200)")
    parser.add_argument("--lists", type=int, default=30, help="GET /orders?limit=50 profiled (30)")
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-prof-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        config = c.write_config(f"{directory}/adapter.toml", {
            SERVICE: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/hooks",
                      "secret": c.SECRET, "timeout_seconds": 1}})
        app = c.make_inprocess_app(url, config)
        client = app.test_client()
        auth = {"Authorization": f"Bearer {c.TOKEN}"}
        fos = []
        for index in range(options.mix_count + 50):
            order = client.post("/orders", json=order_payload(index), headers=auth).get_json()
            fo = next(f["id"] for f in order["fulfillment_orders"] if f["service"])
            client.post(f"/fulfillment_orders/{fo}/fulfillment_request", json={}, headers=auth)
            fos.append(fo)
        steady_fos, mix_fos = fos[:50], fos[50:]

        log = QueryLog()
        peewee_log = logging.getLogger("peewee")
        peewee_log.addHandler(log)
        peewee_log.setLevel(logging.DEBUG)
        peewee_log.propagate = False

        print("\nSQL statements and round trips (executes, BEGIN and COMMIT included) per webhook"
              " (first delivery of each kind, full HTTP path):")
        from adapter import store

        trips = RoundTrips(store.database.obj)
        rid = c.run_id()
        per_kind = {}
        for number, (event_type, data) in enumerate(events_for(f"q{rid}", mix_fos[0])):
            delivery = c.signed_delivery(SERVICE, c.SECRET, f"q{rid}-{number}", event_type, data)
            log.statements, log.enabled, trips.count = [], True, 0
            response = post(client, delivery)
            log.enabled = False
            per_kind[event_type] = list(log.statements)
            kinds = Counter(s.split()[0].upper() for s in log.statements)
            print(f"  {event_type:<32} HTTP {response.status_code}  {len(log.statements):3d} statements "
                  f"({', '.join(f'{k} {v}' for k, v in kinds.most_common())}), "
                  f"{trips.count} round trips")
        print("\n  statements of fulfillment.created:")
        for sql in per_kind["fulfillment.created"]:
            print("    " + shorten(sql))
        print("\n  statements of fulfillment_order.message:")
        for sql in per_kind["fulfillment_order.message"]:
            print("    " + shorten(sql))

        # The statement log costs a LogRecord per query: off before timing anything.
        peewee_log.removeHandler(log)
        peewee_log.setLevel(logging.WARNING)

        # Steady state: messages, timed and profiled.
        deliveries = [c.signed_delivery(SERVICE, c.SECRET, f"p{rid}-{n}", "fulfillment_order.message",
                                        {"fulfillment_order_id": steady_fos[n % len(steady_fos)],
                                         "message": f"profile {n}"}) for n in range(options.count)]
        for delivery in deliveries[:50]:
            post(client, delivery)
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        statuses = Counter(post(client, d).status_code for d in deliveries[50:])
        profiler.disable()
        seconds = time.perf_counter() - began
        done = options.count - 50
        print(f"\nmessages in process: {done} in {seconds:.2f} s = {done / seconds:,.0f}/s, "
              f"{seconds / done * 1000:.2f} ms each (under cProfile), statuses {dict(statuses)}")
        report(profiler, options.top)

        mix = []
        for fo in mix_fos[1:]:
            for number, (event_type, data) in enumerate(events_for(f"m{rid}", fo)):
                mix.append(c.signed_delivery(SERVICE, c.SECRET, f"m{rid}-{fo}-{number}", event_type, data))
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        statuses = Counter(post(client, d).status_code for d in mix)
        profiler.disable()
        seconds = time.perf_counter() - began
        print(f"\nmix in process: {len(mix)} in {seconds:.2f} s = {len(mix) / seconds:,.0f}/s, "
              f"{seconds / len(mix) * 1000:.2f} ms each (under cProfile), statuses {dict(statuses)}")
        report(profiler, options.top)

        # Without the profiler, for the plain per-request cost.
        plain = [c.signed_delivery(SERVICE, c.SECRET, f"x{rid}-{n}", "fulfillment_order.message",
                                   {"fulfillment_order_id": steady_fos[n % len(steady_fos)],
                                    "message": f"plain {n}"}) for n in range(options.count)]
        began = time.perf_counter()
        for delivery in plain:
            post(client, delivery)
        seconds = time.perf_counter() - began
        print(f"\nmessages in process without profiler: {options.count / seconds:,.0f}/s, "
              f"{seconds / options.count * 1000:.2f} ms each")

        # Intake: POST /orders (3 lines, 2 services), and the listing of 50 full orders.
        intake = [{**order_payload(f"in-{n}"), "line_items": [
            {"sku": "MUG-1", "title": "Mug", "quantity": 2, "price": "12.50", "fulfillment_service": SERVICE},
            {"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "price": "20.00",
             "fulfillment_service": SERVICE},
            {"sku": "CAP-1", "title": "Cap", "quantity": 1, "price": "15.00", "fulfillment_service": None}]}
            for n in range(options.intake)]
        log.statements = []
        peewee_log.addHandler(log)
        peewee_log.setLevel(logging.DEBUG)
        log.enabled = True
        client.post("/orders", json=intake[0], headers=auth)
        log.enabled = False
        peewee_log.removeHandler(log)
        peewee_log.setLevel(logging.WARNING)
        kinds = Counter(s.split()[0].upper() for s in log.statements)
        print(f"\nPOST /orders (3 lines, 2 FOs): {len(log.statements)} statements "
              f"({', '.join(f'{k} {v}' for k, v in kinds.most_common())})")
        began = time.perf_counter()
        for payload in intake[1:options.intake // 2]:
            client.post("/orders", json=payload, headers=auth)
        plain = (time.perf_counter() - began) / max(1, options.intake // 2 - 1) * 1000
        profiler = cProfile.Profile()
        profiler.enable()
        for payload in intake[options.intake // 2:]:
            client.post("/orders", json=payload, headers=auth)
        profiler.disable()
        print(f"POST /orders in process: {plain:.2f} ms each without the profiler")
        report(profiler, options.top)

        began = time.perf_counter()
        for _ in range(options.lists):
            client.get("/orders?limit=50", headers=auth)
        plain = (time.perf_counter() - began) / options.lists * 1000
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(options.lists):
            client.get("/orders?limit=50", headers=auth)
        profiler.disable()
        print(f"\nGET /orders?limit=50 in process: {plain:.2f} ms each without the profiler")
        report(profiler, options.top)
        store.database.close()


CATEGORIES = (
    ("database driver (C: sqlite3/psycopg2 execute, commit)", ("sqlite3.", "psycopg2", "_psycopg")),
    ("peewee (building SQL, reading rows)", ("peewee.py", "playhouse")),
    ("marshmallow (schemas)", ("marshmallow",)),
    ("werkzeug/flask (HTTP, routing, test client)", ("werkzeug", "/flask/")),
    ("json", ("/json/", "_json")),
    ("signatures (hmac, hashlib, base64, standardwebhooks)",
     ("hmac", "hashlib", "base64", "standardwebhooks")),
    ("adapter/ (core)", ("/adapter/",)),
    ("handlers/ (HTTP layer)", ("/handlers/",)),
    ("logging", ("/logging/",)),
    ("uuid/datetime/re/other stdlib", ("/python3.11/", "uuid", "datetime", "<built-in", "<method")),
)

# Functions whose inclusive time tells where a webhook's cost goes: (file suffix, name, label).
INCLUSIVE = (
    ("handlers/orders.py", "create_order", "handlers.orders.create_order (POST /orders view)"),
    ("adapter/orders.py", "import_order", "orders.import_order (the transaction)"),
    ("handlers/io.py", "json_body", "io.json_body (parse + validate the body)"),
    ("handlers/orders.py", "list_orders", "handlers.orders.list_orders (GET /orders view)"),
    ("adapter/order_list.py", "list_orders", "order_list.list_orders (the list query)"),
    ("adapter/rendering.py", "listed_order_views", "rendering.listed_order_views (read parts, render views)"),
    ("adapter/rendering.py", "_parts_of", "rendering._parts_of (one SELECT per table)"),
    ("adapter/rendering.py", "new_order_view", "rendering.new_order_view (201 from the rows written)"),
    ("handlers/io.py", "rendered", "io.rendered (json.dumps of a rendered view)"),
    ("handlers/webhooks.py", "receive", "handlers.webhooks.receive (whole view)"),
    ("adapter/signing.py", "verify", "signing.verify (signature check)"),
    ("handlers/webhooks.py", "_parse", "webhooks._parse (JSON + envelope/data schemas)"),
    ("adapter/receipts.py", "earlier_answer", "receipts.earlier_answer (receipt lookups)"),
    ("adapter/receipts.py", "apply_once", "receipts.apply_once (transaction: handler, answer, receipt)"),
    ("adapter/locks.py", "locked_row", "locks.locked_row (lock the order, read the row)"),
    ("adapter/service_events.py", "_locked_fulfillment", "service_events._locked_fulfillment"),
    ("adapter/derived.py", "refresh", "derived.refresh (recompute derived columns)"),
    ("adapter/timeline.py", "record", "timeline.record"),
    ("handlers/webhooks.py", "_respond", "webhooks._respond (render the answer)"),
    ("adapter/rendering.py", "applied_views", "rendering.applied_views (FO lines, current request)"),
    ("adapter/receipts.py", "_keep", "receipts._keep (store the delivery)"),
    ("peewee.py", "commit", "peewee commit"),
    ("peewee.py", "execute_sql", "peewee execute_sql (driver call, incl. C time)"),
)


def category_of(path, name):
    text = f"{path} {name}"
    for label, needles in CATEGORIES:
        if any(needle in text for needle in needles):
            return label
    return "other"


def report(profiler, top):
    stats = pstats.Stats(profiler)
    total = sum(tt for (_, _, tt, _, _) in stats.stats.values())
    by_category = Counter()
    for (path, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        by_category[category_of(path, name)] += tt
    print(f"\n  self time by category (of {total:.2f} s profiled):")
    for label, seconds in by_category.most_common():
        print(f"    {seconds / total * 100:5.1f}%  {label}")
    print("\n  inclusive time of the webhook path's parts:")
    for suffix, name, label in INCLUSIVE:
        ct = sum(value[3] for (path, _line, func), value in stats.stats.items()
                 if func == name and path.endswith(suffix))
        calls = sum(value[1] for (path, _line, func), value in stats.stats.items()
                    if func == name and path.endswith(suffix))
        if calls:
            print(f"    {ct / total * 100:5.1f}%  {label}  ({calls} calls)")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    print(f"\n  top {top} functions by self time:")
    print("\n".join("  " + line for line in text[text.find("   ncalls"):].splitlines() if line.strip()))


if __name__ == "__main__":
    sys.exit(main())

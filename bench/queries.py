"""Order listing at scale: `GET /orders` filters and cursor paging on 100,000 and 1,000,000 orders.

Not a test: it prints figures and never fails on time. Orders are seeded in bulk, not through
the API: rows go straight into the tables of `adapter.models` with peewee `insert_many` in
chunks, with every derived column (`payment_state`, `fulfillment_state`, `scheduled_until`,
`return_state`, `needs_attention`, `archived`, `auth_expires_at`, ...) computed by the adapter's
own pure status functions from the seeded facts (lines, FOs, FO lines, transactions,
fulfillments, returns, merchant requests), so the listing sees consistent data.

Sizes grow the history backwards: the first size is the newest N orders (ids at the top), each
later size adds older orders below them, as a store that has been running longer would have.
Recent orders are mostly open work (unpaid, unfulfilled, in progress); older ones are mostly
paid, fulfilled and archived, with a tail of leftovers (overdue, expired, returns) that grows
with the history.

At each size every filter combination is timed through `app.test_client()` (the full Flask
path, 50 orders a page) `--repeat` times, and the list query alone (`adapter.order_list.
list_orders`) as well; then two listings are paged 50 pages deep with the cursor. The SQL of
each combination is captured from peewee as the adapter runs it and explained (EXPLAIN QUERY
PLAN on SQLite, EXPLAIN on PostgreSQL). The searches (`q=`) look for one order of the smallest
size by each of its keys (name, external_id, email in another case, phone, tracking number),
once with filters, and for an email no order has.

    python bench/queries.py                                  # 100k then 1M on SQLite (~10 min)
    python bench/queries.py --sizes 100000                   # ~1 minute
    python bench/queries.py --database postgresql://postgres@127.0.0.1:5432/bench_queries
"""

import argparse
import logging
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta

import _common as c

TARGET_P95_MS = 25.0
TARGET_GROWTH = 1.5
SECONDS_PER_ORDER = 95  # 1,000,000 orders span about three years
SERVICES = (("acme", 0.55), ("globex", 0.25), ("initech", 0.05), (None, 0.15))

COMBINATIONS = (
    "",
    "payment_status=unpaid",
    "fulfillment_status=unfulfilled,partially_fulfilled",
    "return_status=return_requested",
    "needs_attention=true",
    "service=globex",
    "service=initech",
    "order_status=open&payment_status=paid",
    "payment_status=expiring",
    "order_status=open&fulfillment_status=in_progress&service=acme",
)
PAGED = ("", "order_status=open&payment_status=paid", "payment_status=unpaid")


def phone_of(order_id):
    return f"+66 8{order_id % 10**8:08d}"


def search_combinations(url, order_id):
    """`q` searches for one seeded order by each of its keys, with a filter, and a miss."""
    [(tracking,)] = c.query_rows(
        url, "SELECT tracking_number FROM fulfillment WHERE tracking_number IS NOT NULL "
             f"AND order_id <= {order_id} ORDER BY order_id DESC LIMIT 1")
    email = f"C{order_id}@Example.com"
    return (
        f"q=%23{1000 + order_id}",
        f"q=shop-{order_id}",
        f"q={email}",
        f"q={phone_of(order_id).replace('+', '%2B').replace(' ', '%20')}",
        f"q={tracking}",
        f"q={email}&order_status=open&payment_status=paid",
        "q=nobody@example.com",
    )


# ---- seeding --------------------------------------------------------------------------------

def pick(rng, weighted):
    x = rng.random()
    for value, weight in weighted:
        x -= weight
        if x < 0:
            return value
    return weighted[-1][0]


def band_of(rank):
    days = rank * SECONDS_PER_ORDER / 86400
    return "recent" if days < 3 else "mid" if days < 30 else "old"


PAYMENTS = {
    "recent": (("paid", .55), ("authorized", .20), ("pending", .15), ("partially_paid", .03),
               ("voided", .02), ("refunded", .02), ("partially_refunded", .03)),
    "mid": (("paid", .85), ("authorized", .03), ("pending", .03), ("partially_paid", .01),
            ("refunded", .03), ("partially_refunded", .03), ("voided", .02)),
    "old": (("paid", .90), ("refunded", .03), ("partially_refunded", .02), ("pending", .02),
            ("authorized", .01), ("partially_paid", .003), ("voided", .017)),
}
WORK_PAID = {
    "recent": (("unfulfilled", .35), ("in_progress", .45), ("partially_fulfilled", .05), ("fulfilled", .15)),
    "mid": (("fulfilled", .85), ("in_progress", .05), ("partially_fulfilled", .03), ("unfulfilled", .05),
            ("scheduled", .02)),
    "old": (("fulfilled", .97), ("unfulfilled", .01), ("partially_fulfilled", .01), ("in_progress", .01)),
}
WORK_UNPAID = {
    "recent": (("unfulfilled", .80), ("on_hold", .12), ("scheduled", .08)),
    "mid": (("unfulfilled", .80), ("on_hold", .12), ("scheduled", .08)),
    "old": (("unfulfilled", .90), ("on_hold", .10)),
}
RETURNS = {
    "recent": (("return_requested", .01), (None, .99)),
    "mid": (("return_requested", .02), ("return_in_progress", .02), ("inspection_complete", .005),
            ("returned", .03), (None, .925)),
    "old": (("returned", .04), ("return_requested", .001), ("return_in_progress", .002),
            ("inspection_complete", .001), (None, .956)),
}
ATTENTION = {"recent": .005, "mid": .003, "old": .001}
ARCHIVED_DONE = {"recent": 0.0, "mid": .30, "old": .85}
RETURN_OF_STATE = {"return_requested": "requested", "return_in_progress": "in_progress",
                   "inspection_complete": "inspection_complete", "returned": "returned"}


class Seeder:
    """Build consistent rows for orders with given ids and insert them with insert_many."""

    def __init__(self, now):
        from adapter import models

        self.m = models
        self.now = now
        self.next_id = {}

    def start_ids(self):
        for model in (self.m.LineItem, self.m.FulfillmentOrder, self.m.FulfillmentOrderLine,
                      self.m.MerchantRequest, self.m.Fulfillment, self.m.FulfillmentLine,
                      self.m.ShipmentEvent, self.m.Return, self.m.ReturnLine, self.m.Transaction):
            top = model.select(model.id).order_by(model.id.desc()).limit(1).scalar() or 0
            self.next_id[model] = top + 1

    def new_id(self, model):
        value = self.next_id[model]
        self.next_id[model] = value + 1
        return value

    def order_rows(self, order_id, newest_id, rng, rows):
        from adapter import search_keys
        from adapter.statuses import (
            FulfillmentFacts,
            PaymentFacts,
            fulfillment_state_of,
            payment_state_of,
            return_status_of,
        )

        m = self.m
        rank = newest_id - order_id
        band = band_of(rank)
        created = self.now - timedelta(seconds=rank * SECONDS_PER_ORDER + rng.randint(0, 60))
        pay = pick(rng, PAYMENTS[band])
        cancelled = pay == "voided"
        work = "cancelled" if cancelled else pick(
            rng, WORK_PAID[band] if pay in ("paid", "refunded", "partially_refunded") else WORK_UNPAID[band])
        if work in ("fulfilled", "partially_fulfilled") and band != "recent":
            wanted_return = pick(rng, RETURNS[band])
        elif work in ("fulfilled", "partially_fulfilled"):
            wanted_return = pick(rng, RETURNS["recent"])
        else:
            wanted_return = None

        lines = []
        for _ in range(pick(rng, ((1, .5), (2, .35), (3, .15)))):
            line_id = self.new_id(m.LineItem)
            quantity = rng.randint(1, 3)
            price = rng.randint(500, 10000)
            service = pick(rng, SERVICES)
            lines.append((line_id, quantity, price, service))
            rows[m.LineItem].append((line_id, order_id, f"SKU-{rng.randint(1, 500)}", "Item", quantity,
                                     price, service))
        total = sum(q * p for _, q, p, _ in lines)

        fulfill_at = created + timedelta(days=30) if work == "scheduled" else None
        fo_status, request_status = {
            "unfulfilled": ("open", "unsubmitted"), "in_progress": ("in_progress", "accepted"),
            "partially_fulfilled": ("in_progress", "accepted"), "fulfilled": ("closed", "accepted"),
            "on_hold": ("on_hold", "unsubmitted"), "scheduled": ("scheduled", "unsubmitted"),
            "cancelled": ("cancelled", "unsubmitted"),
        }[work]
        needs_attention = rng.random() < ATTENTION[band]
        fo_facts, line_fulfilled = [], {}
        services = list(dict.fromkeys(service for _, _, _, service in lines))
        for number, service in enumerate(services):
            fo_id = self.new_id(m.FulfillmentOrder)
            status, req = fo_status, request_status
            if service is None and req == "accepted":
                req = "unsubmitted"
                status = "open" if work == "in_progress" else status
            request_id = None
            if service is not None and status in ("in_progress", "closed"):
                request_id = self.new_id(m.MerchantRequest)
                rows[m.MerchantRequest].append((request_id, fo_id, "fulfillment_request", None,
                                                "accepted", created, created + timedelta(hours=1), None))
            fo_lines = [line for line in lines if line[3] == service]
            remaining = 0
            shipped = []
            for index, (line_id, quantity, _, _) in enumerate(fo_lines):
                if work == "fulfilled":
                    done = quantity
                elif work == "partially_fulfilled" and number == 0 and index == 0:
                    done = max(1, quantity // 2)
                else:
                    done = 0
                remaining += quantity - done
                line_fulfilled[line_id] = done
                rows[m.FulfillmentOrderLine].append((self.new_id(m.FulfillmentOrderLine), fo_id, line_id,
                                                     quantity, done))
                if done:
                    shipped.append((line_id, done))
            if work == "partially_fulfilled" and remaining == 0:
                status = "closed"
            flagged = needs_attention and number == 0
            rows[m.FulfillmentOrder].append((
                fo_id, order_id, service, "new" if service else None, status, req, fulfill_at,
                "awaiting_payment" if status == "on_hold" else None, None, flagged, request_id,
                created, created))
            fo_facts.append((status, fulfill_at, remaining))
            if shipped:
                fulfillment_id = self.new_id(m.Fulfillment)
                old = band == "old"
                rows[m.Fulfillment].append((
                    fulfillment_id, order_id, fo_id, service, f"shp-{fo_id}" if service else None,
                    "service" if service else "merchant", "success", "delivered" if old else "in_transit",
                    created + timedelta(days=2), None, f"1Z{fo_id:010d}", "UPS", None,
                    created + timedelta(days=1)))
                for line_id, quantity in shipped:
                    rows[m.FulfillmentLine].append((self.new_id(m.FulfillmentLine), fulfillment_id,
                                                    line_id, quantity))

        authorized = captured = refunded = 0
        voided = False
        expires = None
        due = None

        def tx(kind, amount, expires_at=None):
            rows[m.Transaction].append((self.new_id(m.Transaction), order_id, kind, amount, expires_at,
                                        None, created + timedelta(minutes=5)))

        if pay in ("paid", "refunded", "partially_refunded"):
            tx("sale", total)
            captured = total
            if pay == "refunded":
                tx("refund", total)
                refunded = total
            elif pay == "partially_refunded":
                refunded = total // 3
                tx("refund", refunded)
        elif pay == "authorized":
            expires = created + timedelta(days=7)
            tx("authorization", total, expires)
            authorized = total
        elif pay == "partially_paid":
            captured = total // 2
            tx("sale", captured)
        elif pay == "voided":
            tx("authorization", total, created + timedelta(days=7))
            tx("void", 0)
            authorized, voided = total, True
            expires = created + timedelta(days=7)
        elif pay == "pending" and rng.random() < 0.5:
            due = created + timedelta(days=30)

        return_statuses = []
        if wanted_return and line_fulfilled:
            line_id = next(line for line, done in line_fulfilled.items() if done)
            return_id = self.new_id(m.Return)
            status = RETURN_OF_STATE[wanted_return]
            return_statuses.append(status)
            rows[m.Return].append((return_id, order_id, status, "customer", created + timedelta(days=5),
                                   created + timedelta(days=6)))
            rows[m.ReturnLine].append((self.new_id(m.ReturnLine), return_id, line_id, 1, "size_too_small"))

        payment = PaymentFacts(total=total, authorized=authorized, captured=captured, refunded=refunded,
                               voided=voided, auth_expires_at=expires, payment_due_at=due)
        payment_state = payment_state_of(payment)
        fulfillment_state, scheduled_until = fulfillment_state_of(FulfillmentFacts(
            lines=tuple((q, line_fulfilled.get(line_id, 0)) for line_id, q, _, _ in lines),
            fulfillment_orders=tuple(fo_facts)))
        done = payment_state == "paid" and fulfillment_state == "fulfilled"
        archived = rng.random() < (ARCHIVED_DONE[band] if done else ARCHIVED_DONE[band] / 3)
        rows[m.Order].append((
            order_id, f"#{1000 + order_id}", f"shop-{order_id}", f"c{order_id}@example.com", "USD",
            {"name": "Customer", "address1": "1 Main St", "city": "Bangkok", "country_code": "TH",
             "phone": phone_of(order_id)},
            due, created, created + timedelta(days=1), archived,
            created + timedelta(hours=2) if cancelled else None, "customer" if cancelled else None,
            total, authorized, captured, refunded, voided, expires, payment_state, fulfillment_state,
            scheduled_until, return_status_of(return_statuses), needs_attention,
            search_keys.email_key(f"c{order_id}@example.com"), search_keys.phone_key(phone_of(order_id))))

    def fields(self):
        m = self.m
        return {
            m.Order: [m.Order.id, m.Order.name, m.Order.external_id, m.Order.email, m.Order.currency,
                      m.Order.shipping_address, m.Order.payment_due_at, m.Order.created_at,
                      m.Order.updated_at, m.Order.archived, m.Order.cancelled_at, m.Order.cancel_reason,
                      m.Order.total_minor, m.Order.authorized_minor, m.Order.captured_minor,
                      m.Order.refunded_minor, m.Order.voided, m.Order.auth_expires_at,
                      m.Order.payment_state, m.Order.fulfillment_state, m.Order.scheduled_until,
                      m.Order.return_state, m.Order.needs_attention, m.Order.email_key,
                      m.Order.phone_key],
            m.LineItem: [m.LineItem.id, m.LineItem.order, m.LineItem.sku, m.LineItem.title,
                         m.LineItem.quantity, m.LineItem.price_minor, m.LineItem.fulfillment_service],
            m.FulfillmentOrder: [m.FulfillmentOrder.id, m.FulfillmentOrder.order, m.FulfillmentOrder.service,
                                 m.FulfillmentOrder.workflow, m.FulfillmentOrder.status,
                                 m.FulfillmentOrder.request_status, m.FulfillmentOrder.fulfill_at,
                                 m.FulfillmentOrder.hold_reason, m.FulfillmentOrder.hold_note,
                                 m.FulfillmentOrder.needs_attention, m.FulfillmentOrder.current_request_id,
                                 m.FulfillmentOrder.created_at, m.FulfillmentOrder.updated_at],
            m.FulfillmentOrderLine: [m.FulfillmentOrderLine.id, m.FulfillmentOrderLine.fulfillment_order,
                                     m.FulfillmentOrderLine.line_item, m.FulfillmentOrderLine.quantity,
                                     m.FulfillmentOrderLine.fulfilled_quantity],
            m.MerchantRequest: [m.MerchantRequest.id, m.MerchantRequest.fulfillment_order,
                                m.MerchantRequest.kind, m.MerchantRequest.message, m.MerchantRequest.status,
                                m.MerchantRequest.sent_at, m.MerchantRequest.answered_at,
                                m.MerchantRequest.answer_message],
            m.Fulfillment: [m.Fulfillment.id, m.Fulfillment.order, m.Fulfillment.fulfillment_order,
                            m.Fulfillment.service, m.Fulfillment.external_id, m.Fulfillment.created_by,
                            m.Fulfillment.status, m.Fulfillment.shipment_status,
                            m.Fulfillment.shipment_status_at, m.Fulfillment.estimated_delivery_at,
                            m.Fulfillment.tracking_number, m.Fulfillment.tracking_company,
                            m.Fulfillment.tracking_url, m.Fulfillment.created_at],
            m.FulfillmentLine: [m.FulfillmentLine.id, m.FulfillmentLine.fulfillment,
                                m.FulfillmentLine.line_item, m.FulfillmentLine.quantity],
            m.Return: [m.Return.id, m.Return.order, m.Return.status, m.Return.requested_by,
                       m.Return.created_at, m.Return.updated_at],
            m.ReturnLine: [m.ReturnLine.id, m.ReturnLine.return_, m.ReturnLine.line_item,
                           m.ReturnLine.quantity, m.ReturnLine.reason],
            m.Transaction: [m.Transaction.id, m.Transaction.order, m.Transaction.kind,
                            m.Transaction.amount_minor, m.Transaction.expires_at, m.Transaction.return_,
                            m.Transaction.created_at],
        }

    def seed(self, first_id, last_id, newest_id, rng, chunk_orders=5000, progress=None):
        """Insert orders first_id..last_id (inclusive) and their parts; return rows inserted."""
        from adapter import store

        fields = self.fields()
        order_of_tables = list(fields)  # parents before children
        inserted = 0
        with store.database.connection_context():
            self.start_ids()
            for start in range(first_id, last_id + 1, chunk_orders):
                rows = {model: [] for model in fields}
                for order_id in range(start, min(start + chunk_orders, last_id + 1)):
                    self.order_rows(order_id, newest_id, rng, rows)
                with store.database.atomic():
                    for model in order_of_tables:
                        batch = rows[model]
                        size = max(1, 30000 // len(fields[model]))
                        for at in range(0, len(batch), size):
                            bulk_insert(model, fields[model], batch[at:at + size])
                        inserted += len(batch)
                if progress:
                    progress(min(start + chunk_orders, last_id + 1) - first_id)
        return inserted


_TEMPLATES = {}


def bulk_insert(model, fields, rows):
    """`model.insert_many(rows, fields=fields)`, with peewee's statement built once per table.

    Building a many-row INSERT in peewee costs ~25 us per value, most of a 1M-order seed; the
    statement is the same for every chunk but for the number of value groups, so the one-row
    statement from insert_many is widened to len(rows) groups and the values are converted with
    each field's own db_value, as insert_many does.
    """
    import re

    from adapter import store

    if not rows:
        return
    if model not in _TEMPLATES:
        sql, _ = model.insert_many(rows[:1], fields=fields).sql()
        match = re.fullmatch(r"(.* VALUES )(\([^()]*\))(.*)", sql, re.S)
        _TEMPLATES[model] = (match.group(1), match.group(2), match.group(3))
    head, group, tail = _TEMPLATES[model]
    converters = [field.db_value for field in fields]
    params = [convert(value) for row in rows for convert, value in zip(converters, row, strict=True)]
    store.database.execute_sql(head + ", ".join([group] * len(rows)) + tail, params)


def fix_sequences():
    """On PostgreSQL, move each id sequence past the explicit ids inserted."""
    from adapter import models, store

    if not store.is_postgres():
        return
    with store.database.connection_context():
        for model in models.ALL_MODELS:
            table = model._meta.table_name
            store.database.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f"GREATEST((SELECT max(id) FROM \"{table}\"), 1))")


def analyze():
    from adapter import store

    with store.database.connection_context():
        store.database.execute_sql("ANALYZE")


def seeded_sizes(url, sizes, seed):
    """Grow the store to each of `sizes` (ascending) in turn; yield (size, rows, seconds, analyzed).

    Ids are seeded downwards from the newest: the first size is the newest orders, each later
    one adds older history below them. PostgreSQL gets an ANALYZE after each size, as
    autovacuum would; SQLite none (the adapter never runs it).
    """
    seeder = Seeder(datetime.utcnow().replace(microsecond=0))
    rng = random.Random(seed)
    newest = sizes[-1]
    done_below = newest + 1
    for size in sizes:
        first = newest - size + 1
        began = time.perf_counter()
        last_print = [began]

        def progress(n, first=first, last=done_below - 1, began=began, last_print=last_print):
            if time.perf_counter() - last_print[0] > 30:
                last_print[0] = time.perf_counter()
                print(f"  ... {n:,} of {last - first + 1:,} orders seeded "
                      f"({time.perf_counter() - began:.0f} s)", flush=True)

        rows = seeder.seed(first, done_below - 1, newest, rng, progress=progress)
        done_below = first
        fix_sequences()
        analyzed = c.is_postgres_url(url)
        if analyzed:
            analyze()
        yield size, rows, time.perf_counter() - began, analyzed


# ---- measuring ------------------------------------------------------------------------------

class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record.msg)


def list_query_sql(app, query_string):
    """Run `order_list.list_orders` as the handler would and return the (sql, params) it executed."""
    from urllib.parse import parse_qsl

    from werkzeug.datastructures import MultiDict

    from adapter import order_list, store
    from adapter.times import utcnow
    from handlers import schemas
    from handlers.parsing import load

    args = load(schemas.OrderQuerySchema(), MultiDict(parse_qsl(query_string)).to_dict())
    capture = Capture()
    log = logging.getLogger("peewee")
    log.addHandler(capture)
    level = log.level
    log.setLevel(logging.DEBUG)
    try:
        with app.app_context(), store.database.connection_context():
            order_list.list_orders(args, args["limit"], None, utcnow(),
                                app.extensions["adapter_settings"].expiring_days)
    finally:
        log.removeHandler(capture)
        log.setLevel(level)
    return capture.records[0], args


def explain(sql, params):
    from adapter import store

    with store.database.connection_context():
        if store.is_postgres():
            rows = store.database.execute_sql("EXPLAIN " + sql, params).fetchall()
            return [row[0] for row in rows]
        rows = store.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return [f"{'  ' * (0 if row[1] == 0 else 1)}{row[-1]}" for row in rows]


def time_query_only(app, args, repeat):
    from adapter import order_list, store
    from adapter.times import utcnow

    times = []
    with app.app_context(), store.database.connection_context():
        for _ in range(repeat):
            began = time.perf_counter()
            order_list.list_orders(args, args["limit"], None, utcnow(),
                                app.extensions["adapter_settings"].expiring_days)
            times.append((time.perf_counter() - began) * 1000)
    return times


def measure(app, combinations, repeat, pages):
    client = app.test_client()
    auth = {"Authorization": f"Bearer {c.TOKEN}"}
    results = {}
    for combo in combinations:
        path = "/orders" + (f"?{combo}" if combo else "")
        for _ in range(3):
            response = client.get(path, headers=auth)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        count = len(response.get_json()["orders"])
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            client.get(path, headers=auth)
            times.append((time.perf_counter() - began) * 1000)
        (sql, params), args = list_query_sql(app, combo)
        query_times = time_query_only(app, args, repeat)
        results[combo] = {
            "count": count, "p50": percentile(times, 50), "p95": percentile(times, 95),
            "q50": percentile(query_times, 50), "q95": percentile(query_times, 95),
            "sql": sql, "params": params, "plan": explain(sql, params),
        }
    paging = {}
    for combo in PAGED:
        base = "/orders?limit=50" + (f"&{combo}" if combo else "")
        times, cursor, got = [], None, 0
        for _ in range(pages):
            path = base + (f"&cursor={cursor}" if cursor else "")
            began = time.perf_counter()
            response = client.get(path, headers=auth)
            times.append((time.perf_counter() - began) * 1000)
            body = response.get_json()
            got += len(body["orders"])
            cursor = body["next_cursor"]
            if not cursor:
                break
        paging[combo] = {"pages": len(times), "orders": got, "p50": percentile(times, 50),
                         "p95": percentile(times, 95), "last": times[-1]}
    return results, paging


percentile = c.percentile


def verdict(small_p95, large_p95):
    """Return (growth large/small, "met" or "NOT met") against the p95 and growth targets."""
    growth = large_p95 / small_p95
    met = large_p95 <= TARGET_P95_MS and growth <= TARGET_GROWTH
    return growth, "met" if met else "NOT met"


def distribution(url):
    rows = c.query_rows(url, "SELECT payment_state, fulfillment_state, count(*) FROM orders "
                        "GROUP BY payment_state, fulfillment_state ORDER BY 3 DESC")
    return ", ".join(f"{p}/{f} {n:,}" for p, f, n in rows[:8])


def sized_run_parser(description):
    """The options of a run at several store sizes: --database, --sizes, --seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--database")
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated order counts, ascending (100000,1000000)")
    parser.add_argument("--seed", type=int, default=1)
    return parser


def sizes_of(options):
    """The --sizes asked for, smallest first."""
    return sorted(int(size) for size in options.sizes.split(","))


def inprocess_app(url, directory, services, extra=None):
    """The adapter in this process on `url`, with `services` (new workflow, sending nowhere)."""
    config = c.write_config(f"{directory}/adapter.toml", {
        name: {"workflow": "new", "url": f"http://{c.LOOPBACK}:9/{name}", "secret": c.SECRET}
        for name in services}, extra=extra)
    return c.make_inprocess_app(url, config)


def main():
    parser = sized_run_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="timed requests per filter (100)")
    parser.add_argument("--pages", type=int, default=50, help="cursor pages (50)")
    parser.add_argument("--no-plans", action="store_true", help="do not print the query plans")
    options = parser.parse_args()
    sizes = sizes_of(options)

    with tempfile.TemporaryDirectory(prefix="bench-queries-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        app = inprocess_app(url, directory, ("acme", "globex", "initech"))
        newest = sizes[-1]
        all_results = {}
        combinations = COMBINATIONS
        for size, rows, seconds, analyzed in seeded_sizes(url, sizes, options.seed):
            if combinations is COMBINATIONS:
                # An order of the smallest size, so every size searches for the same one.
                combinations += search_combinations(url, newest - sizes[0] // 2)
            print(f"\n== {size:,} orders (seeded {rows:,} rows in {seconds:.0f} s"
                  f"{', ANALYZE run' if analyzed else ', no ANALYZE (the adapter never runs it on SQLite)'})")
            print(f"   most common payment/fulfillment states: {distribution(url)}")
            results, paging = measure(app, combinations, options.repeat, options.pages)
            all_results[size] = (results, paging)
            print(f"   {'filter':<60} {'rows':>4} {'HTTP p50':>9} {'HTTP p95':>9} {'query p50':>9} "
                  f"{'query p95':>9}")
            for combo, r in results.items():
                print(f"   {combo or '(none)':<60} {r['count']:>4} {r['p50']:>7.1f}ms {r['p95']:>7.1f}ms "
                      f"{r['q50']:>7.1f}ms {r['q95']:>7.1f}ms")
            for combo, p in paging.items():
                print(f"   paging {combo or '(none)':<45} {p['pages']} pages, {p['orders']:,} orders: "
                      f"page p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms, last page {p['last']:.1f} ms")
            if not options.no_plans:
                print("   query plans:")
                for combo, r in results.items():
                    print(f"   -- {combo or '(none)'}")
                    for line in r["plan"]:
                        print(f"        {line}")

        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            print(f"\n== growth {large:,} / {small:,} (HTTP p95), targets: p95 <= {TARGET_P95_MS:g} ms at "
                  f"{large:,} and <= {TARGET_GROWTH}x the {small:,} figure")
            for combo in combinations:
                a, b = all_results[small][0][combo], all_results[large][0][combo]
                growth, met = verdict(a["p95"], b["p95"])
                print(f"   {combo or '(none)':<60} {a['p95']:7.1f} -> {b['p95']:7.1f} ms  "
                      f"x{growth:5.2f}  {met}")
            for combo in PAGED:
                a, b = all_results[small][1][combo], all_results[large][1][combo]
                growth, met = verdict(a["p95"], b["p95"])
                print(f"   paging {combo or '(none)':<53} {a['p95']:7.1f} -> {b['p95']:7.1f} ms  "
                      f"x{growth:5.2f}  {met}")
        from adapter import store

        store.database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

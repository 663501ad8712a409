"""Cost of one webhook delivery against the history behind it: time, statements, answer and stored bytes.

Not a test: it prints two curves and whether each stays within 1.2x of its first point
(issue target: flat from 10 to 3,000 events on one fulfillment, and from 1 to 200 merchant
requests on one FO). In process through `app.test_client()`, the full Flask path with
signatures verified:

- events: one fulfillment receives `fulfillment.event` deliveries; once it holds 10, 100, 300,
  1,000 and 3,000 events, the next `--sample` are timed;
- requests: one FO is requested and rejected again and again; at each checkpoint (1, 10, 50,
  100, 200 requests) `--sample` `fulfillment_order.message` deliveries and one request-reject
  round are timed.

For each point: median and p95 time per delivery, SQL statements per delivery (a round trip
each, plus BEGIN and COMMIT on PostgreSQL), the answer's bytes and the bytes the delivery
stored (the receipt's remembered answer, the kept delivery's headers and body, the timeline
event's data and message).

    python bench/history.py
    python bench/history.py --database postgresql://postgres@127.0.0.1:5432/bench_history
"""

import argparse
import logging
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import _common as c

SERVICE = "bench"
EVENT_POINTS = (10, 100, 300, 1000, 3000)
REQUEST_POINTS = (1, 10, 50, 100, 200)
TARGET_GROWTH = 1.2


class StatementCount(logging.Handler):
    """Count the statements peewee executes (it logs each one at DEBUG)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        self.count += 1


class Bench:
    def __init__(self, client, url):
        self.client = client
        self.url = url
        self.auth = {"Authorization": f"Bearer {c.TOKEN}"}
        self.sequence = 0
        self.run = c.run_id()
        self.statements = StatementCount()
        peewee_log = logging.getLogger("peewee")
        peewee_log.addHandler(self.statements)
        peewee_log.propagate = False

    def deliver(self, event_type, data):
        """Post one signed delivery; return (seconds, statements, answer bytes, webhook id)."""
        self.sequence += 1
        webhook_id = f"h{self.run}-{self.sequence}"
        method, path, headers, body = c.signed_delivery(
            SERVICE, c.SECRET, webhook_id, event_type, data)[:4]
        peewee_log = logging.getLogger("peewee")
        self.statements.count = 0
        peewee_log.setLevel(logging.DEBUG)
        began = time.perf_counter()
        response = self.client.open(path, method=method, headers=headers, data=body)
        seconds = time.perf_counter() - began
        peewee_log.setLevel(logging.WARNING)
        if response.status_code != 200:
            raise SystemExit(f"{event_type}: HTTP {response.status_code} {response.get_data(as_text=True)}")
        return seconds, self.statements.count, len(response.get_data()), webhook_id

    def merchant(self, path):
        response = self.client.post(path, json={}, headers=self.auth)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code} {response.get_data(as_text=True)}")

    def new_fo(self, name):
        order = self.client.post("/orders", headers=self.auth, json={
            "external_id": f"{name}-{self.run}", "currency": "USD",
            "shipping_address": {"name": "Bench", "address1": "1 Loop Rd", "city": "Bangkok",
                                 "country_code": "TH"},
            "line_items": [{"sku": "MUG-1", "title": "Mug", "quantity": 2, "price": "12.50",
                            "fulfillment_service": SERVICE}],
        }).get_json()
        return order["fulfillment_orders"][0]["id"]

    def stored_bytes(self, webhook_ids):
        """Bytes the deliveries stored, each: answer kept, delivery kept, timeline event."""
        from peewee import fn

        from adapter import store
        from adapter.models import TimelineEvent, WebhookDelivery, WebhookReceipt

        with store.database.connection_context():
            answers = (WebhookReceipt.select(fn.SUM(fn.LENGTH(WebhookReceipt.response_body)))
                       .where(WebhookReceipt.webhook_id.in_(webhook_ids)).scalar())
            kept = (WebhookDelivery.select(fn.SUM(fn.LENGTH(WebhookDelivery.body)
                                                  + fn.LENGTH(WebhookDelivery.headers)).coerce(False))
                    .where(WebhookDelivery.webhook_id.in_(webhook_ids)).scalar())
            # The timeline events of these deliveries are the latest ones written.
            timeline = (TimelineEvent.select(fn.LENGTH(TimelineEvent.data).coerce(False),
                                             fn.LENGTH(TimelineEvent.message).coerce(False))
                        .order_by(TimelineEvent.id.desc()).limit(len(webhook_ids)).tuples())
            noted = sum((data or 0) + (message or 0) for data, message in timeline)
        return (answers + kept + noted) / len(webhook_ids)


def summary(samples, bench):
    seconds = sorted(s[0] for s in samples)
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": c.percentile(seconds, 95) * 1000,
        "statements": statistics.median(s[1] for s in samples),
        "answer_bytes": statistics.median(s[2] for s in samples),
        "stored_bytes": bench.stored_bytes([s[3] for s in samples]),
    }


def print_curve(title, unit, rows):
    print(f"\n{title}")
    print(f"  {unit:>9} {'median ms':>10} {'p95 ms':>8} {'statements':>11} {'answer B':>9} {'stored B':>9}")
    for point, row in rows:
        print(f"  {point:>9,} {row['median_ms']:>10.2f} {row['p95_ms']:>8.2f} {row['statements']:>11.0f} "
              f"{row['answer_bytes']:>9,.0f} {row['stored_bytes']:>9,.0f}")
    first, last = rows[0][1], rows[-1][1]
    for key, label in (("median_ms", "time (median)"), ("answer_bytes", "answer bytes"),
                       ("stored_bytes", "stored bytes"), ("statements", "statements")):
        growth = last[key] / first[key]
        verdict = "met" if growth <= TARGET_GROWTH else "MISSED"
        print(f"  {label:<14} {rows[-1][0]:,} / {rows[0][0]:,} {unit}: {growth:.2f}x "
              f"(target <= {TARGET_GROWTH}x: {verdict})")


def events_curve(bench, sample):
    fo = bench.new_fo("events")
    bench.merchant(f"/fulfillment_orders/{fo}/fulfillment_request")
    bench.deliver("fulfillment_request.accepted", {"fulfillment_order_id": fo})
    shipment = f"shp-{bench.run}"
    bench.deliver("fulfillment.created", {"fulfillment_order_id": fo, "external_id": shipment,
                                          "tracking": {"number": "1Z1", "company": "UPS"}})
    start = datetime.now(UTC) - timedelta(days=30)
    recorded = 0

    def event():
        nonlocal recorded
        recorded += 1
        happened = (start + timedelta(seconds=recorded)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return bench.deliver("fulfillment.event", {
            "external_id": shipment, "status": "in_transit", "happened_at": happened,
            "message": f"scan {recorded:05}", "location": {"city": "Bangkok"}})

    rows = []
    for point in EVENT_POINTS:
        while recorded < point:
            event()
        rows.append((point, summary([event() for _ in range(sample)], bench)))
    print_curve("fulfillment.event against the events the fulfillment already holds", "events", rows)


def requests_curve(bench, sample):
    fo = bench.new_fo("requests")
    made = 0

    def request_and_reject():
        nonlocal made
        made += 1
        bench.merchant(f"/fulfillment_orders/{fo}/fulfillment_request")
        return bench.deliver("fulfillment_request.rejected",
                             {"fulfillment_order_id": fo, "reason": "other", "message": f"no {made}"})

    def message(n):
        return bench.deliver("fulfillment_order.message",
                             {"fulfillment_order_id": fo, "message": f"m {n:05}"})

    rejects, messages = [], []
    for point in REQUEST_POINTS:
        while made < point:
            rejected = request_and_reject()
        messages.append((point, summary([message(n) for n in range(sample)], bench)))
        rejects.append((point, summary([rejected], bench)))
    print_curve("fulfillment_order.message against the FO's merchant requests", "requests", messages)
    print_curve("fulfillment_request.rejected (one each) against the FO's merchant requests",
                "requests", rejects)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--sample", type=int, default=50, help="deliveries timed at each point (50)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        config = c.write_config(f"{directory}/adapter.toml", {
            SERVICE: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/hooks",
                      "secret": c.SECRET, "timeout_seconds": 1}})
        bench = Bench(c.make_inprocess_app(url, config).test_client(), url)
        events_curve(bench, options.sample)
        requests_curve(bench, options.sample)
        from adapter import store

        store.database.close()


if __name__ == "__main__":
    main()

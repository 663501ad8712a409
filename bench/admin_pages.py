"""Admin pages at scale: the orders list in every saved view, and one large order page, at 100k and 1M.

Not a test: it prints figures and never fails on time. The store is grown with the seeding of
`bench/queries.py` (the same orders, newest first then older history), plus one timeline event
per seeded order and one delivered outbox message per requested FO (inserted with one
INSERT ... SELECT each), so the order page's timeline and delivery look-ups read tables as long
as the store. Then one large order is built through the adapter's own API and signed webhooks,
in process: 10 fulfillment orders (one per service), each requested, accepted and shipped in 3
shipments (30 in all), each shipment with 4 delivery events, then service messages and merchant
comments up to exactly 200 timeline events.

Timed through `app.test_client()` signed in as the tests sign in (the sign-in form with its
CSRF token and the merchant token), `--repeat` times each after 3 warm-up requests: the server
time of `/admin/orders` in each saved view of SPEC 8 (first page, 50 orders), of the large
order's page `/admin/orders/<id>`, and of that page's poll (`/live`, unchanged: 204). Then the
order page's transfer: the HTML and every resource it loads (stylesheets, icons, scripts,
images, and what the stylesheets load), fetched through the test client; a resource from
outside the app is reported.

    python bench/admin_pages.py                              # 100k then 1M on SQLite (~4 min)
    python bench/admin_pages.py --sizes 10000 --repeat 20    # under a minute
    python bench/admin_pages.py --database postgresql://postgres@127.0.0.1:5432/bench_admin_pages
"""

import gzip
import html as markup
import os
import re
import sys
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import _common as c
import queries

# The large order: one FO per service, each line shipped one unit at a time; one unit is left
# so every FO stays in progress and its card shows all its actions.
SERVICES = ("acme", "globex", "initech", "hooli", "umbrella", "stark", "wayne", "wonka", "tyrell",
            "cyberdyne")
SHIPMENTS_PER_FO = 3
DELIVERY_EVENTS = ("label_printed", "carrier_picked_up", "in_transit", "out_for_delivery")
TIMELINE_EVENTS = 200
ORIGIN = "http://localhost"  # the test client's
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
POLL = re.compile(r'<div id="order-live" hx-get="([^"]+)"')
ORDER_PAGE = "order page (large order)"
ORDER_POLL = "order page poll, unchanged (204)"
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


# ---- the store ------------------------------------------------------------------------------

def add_history(url):
    """Give every seeded order not yet covered one timeline event, and every requested FO of those
    orders one delivered outbox message. Sizes grow downwards, so "not yet covered" is every
    order below the lowest one that has an event."""
    [(bound,)] = c.query_rows(url, "SELECT COALESCE((SELECT MIN(order_id) FROM timeline_event), "
                                   "(SELECT MAX(id) + 1 FROM orders))")
    c.execute(url, "INSERT INTO timeline_event (order_id, at, actor, kind, data) "
                   "SELECT id, created_at, 'merchant', 'order.created', '{}' FROM orders WHERE id < ?",
              (bound,))
    c.execute(url, "INSERT INTO outbox_message (message_id, target, type, body, order_id, "
                   "fulfillment_order_id, request_id, status, attempts, next_attempt_at, created_at, "
                   "finished_at) "
                   "SELECT 'seed-' || id, service, 'fulfillment_request.submitted', '{}', order_id, id, "
                   "current_request_id, 'delivered', 1, created_at, created_at, created_at "
                   "FROM fulfillment_order WHERE current_request_id IS NOT NULL AND order_id < ?",
              (bound,))


def big_order_payload():
    return {
        "external_id": "bench-large-order",
        "currency": "USD",
        "email": "large.order@example.com",
        "shipping_address": {"name": "Somchai Jaidee", "address1": "99 Sukhumvit Rd",
                             "city": "Bangkok", "country_code": "TH", "phone": "+66 812345678"},
        "line_items": [
            {"sku": f"SKU-{n}", "title": f"Item {n} from {service}", "quantity": SHIPMENTS_PER_FO + 1,
             "price": "12.50", "fulfillment_service": service}
            for n, service in enumerate(SERVICES, 1)
        ],
        "transactions": [{"kind": "sale", "amount": f"{len(SERVICES) * (SHIPMENTS_PER_FO + 1) * 12.5:.2f}"}],
    }


class Builder:
    """Sends the large order's requests through the test client; any answer but 2xx stops the run."""

    def __init__(self, app):
        self.client = app.test_client()
        self.auth = {"Authorization": f"Bearer {c.TOKEN}"}
        self.sent = 0

    def api(self, path, body):
        return self.check(path, self.client.post(path, json=body, headers=self.auth))

    def webhook(self, service, event_type, data):
        self.sent += 1
        _, path, headers, body = c.signed_delivery(service, c.SECRET, f"bench-large-{self.sent}",
                                                   event_type, data)
        return self.check(path, self.client.post(path, headers=headers, data=body))

    @staticmethod
    def check(path, response):
        if not 200 <= response.status_code < 300:
            raise SystemExit(f"POST {path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response.get_json()


def events_of(url, order_id):
    return c.count_rows(url, "SELECT COUNT(*) FROM timeline_event WHERE order_id = ?", (order_id,))


def add_big_order(app, url):
    """Build the large order through the API and webhooks; return its id."""
    build = Builder(app)
    order = build.api("/orders", big_order_payload())
    order_id = order["id"]
    shipments = []
    for fo in order["fulfillment_orders"]:
        [line] = fo["line_items"]
        build.api(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
        build.webhook(fo["service"], "fulfillment_request.accepted",
                      {"fulfillment_order_id": fo["id"], "message": "Picking today."})
        for n in range(SHIPMENTS_PER_FO):
            external_id = f"large-{fo['id']}-{n}"
            number = f"1Z{fo['id']:06d}{n:04d}"
            build.webhook(fo["service"], "fulfillment.created", {
                "fulfillment_order_id": fo["id"], "external_id": external_id,
                "line_items": [{"id": line["id"], "quantity": 1}],
                "tracking": {"number": number, "company": "UPS", "url": f"https://ups.example/{number}"}})
            shipments.append((fo["service"], external_id))
    for hours, status in enumerate(DELIVERY_EVENTS):
        for service, external_id in shipments:
            build.webhook(service, "fulfillment.event", {
                "external_id": external_id, "status": status, "message": f"{status} at hub {hours}",
                "happened_at": c.rfc3339_now()})
    fos = order["fulfillment_orders"]
    for n in range(TIMELINE_EVENTS - events_of(url, order_id)):
        fo = fos[n % len(fos)]
        if n % 2:
            build.api(f"/orders/{order_id}/comments", {"message": f"Customer called about parcel {n}."})
        else:
            build.webhook(fo["service"], "fulfillment_order.message",
                          {"fulfillment_order_id": fo["id"], "message": f"Note {n} from the warehouse."})
    # The dispatcher is off in the bench: the messages to the services count as delivered.
    c.execute(url, "UPDATE outbox_message SET status = 'delivered', attempts = 1, finished_at = created_at "
                   "WHERE order_id = ?", (order_id,))
    parts = {
        "fulfillment orders": c.count_rows(url, "SELECT COUNT(*) FROM fulfillment_order WHERE order_id = ?",
                                           (order_id,)),
        "shipments": c.count_rows(url, "SELECT COUNT(*) FROM fulfillment WHERE order_id = ?", (order_id,)),
        "timeline events": events_of(url, order_id),
    }
    expected = {"fulfillment orders": len(SERVICES), "shipments": len(SERVICES) * SHIPMENTS_PER_FO,
                "timeline events": TIMELINE_EVENTS}
    if parts != expected:
        raise SystemExit(f"the large order has {parts}, not {expected}")
    return order_id, parts


# ---- measuring ------------------------------------------------------------------------------

def signed_in_client(app):
    """A test client with an admin session, opened through the sign-in form as a browser would."""
    client = app.test_client()
    form = client.get("/admin/login").get_data(as_text=True)
    response = client.post("/admin/login", data={"csrf_token": CSRF_FIELD.search(form).group(1),
                                                  "token": c.TOKEN})
    if response.status_code != 302:
        raise SystemExit(f"sign-in: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return client


def timed(client, path, repeat, status=200):
    """GET `path` 3 times to warm up, then `repeat` times timed; return its figures and last answer."""
    for _ in range(3):
        response = client.get(path)
    if response.status_code != status:
        raise SystemExit(f"GET {path}: {response.status_code}, not {status}: "
                         f"{response.get_data(as_text=True)[:300]}")
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
    html = response.get_data(as_text=True)
    return {"path": path, "p50": c.percentile(times, 50), "p95": c.percentile(times, 95),
            "rows": html.count('<th scope="row">'), "bytes": len(response.data), "html": html}


def list_reads(filters):
    """What `/admin/orders` reads for a view: the list query and the listed orders' parts."""
    from flask import current_app

    from adapter import order_list, rendering
    from handlers.admin.orders import PAGE_SIZE, order_query
    from handlers.parsing import load, now

    settings = current_app.extensions["adapter_settings"]
    args = load(order_query, {**filters, "limit": PAGE_SIZE})
    found, _ = order_list.list_orders(args, PAGE_SIZE, None, now(), settings.expiring_days)
    rendering.order_summaries(found, now())


def order_reads(order_id):
    """What `/admin/orders/<id>` reads: the order with its parts, its timeline, its live version."""
    from adapter import rendering, timeline
    from handlers.admin.orders import live_version
    from handlers.parsing import now

    rendering.order_view_by_id(order_id, now())
    timeline.events_of(order_id)
    live_version(order_id)


def timed_reads(app, read, repeat):
    """Time `read()` in one snapshot, as the handler runs it, without the rest of the request."""
    from adapter import store

    times = []
    with app.test_request_context(), store.database.connection_context():
        for _ in range(repeat + 3):
            began = time.perf_counter()
            with store.snapshot():
                read()
            times.append((time.perf_counter() - began) * 1000)
    return {"r50": c.percentile(times[3:], 50), "r95": c.percentile(times[3:], 95)}


def measure(app, order_id, repeat):
    """Time every saved view of the orders list, the large order's page and its poll."""
    from handlers.admin.orders import SAVED_VIEWS

    client = signed_in_client(app)
    results = {}
    for view in SAVED_VIEWS:
        query = f"?{urlencode(view.filters)}" if view.filters else ""
        results[f"orders: {view.key}"] = {**timed(client, "/admin/orders" + query, repeat),
                                          **timed_reads(app, lambda v=view: list_reads(v.filters), repeat)}
    page = results[ORDER_PAGE] = {**timed(client, f"/admin/orders/{order_id}", repeat),
                                  **timed_reads(app, lambda: order_reads(order_id), repeat)}
    # The URL the open page polls every 2 s, as the page drew it: nothing changed, so 204.
    results[ORDER_POLL] = timed(client, markup.unescape(POLL.search(page["html"]).group(1)), repeat,
                                status=204)
    return results


class Resources(HTMLParser):
    """Collect the URLs a browser loads when it draws the page (not the links it may follow)."""

    LOADED_LINKS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload",
                    "manifest", "mask-icon"}

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and self.LOADED_LINKS & set((attrs.get("rel") or "").lower().split()):
            self.urls.append(attrs.get("href"))
        elif tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "track", "input"):
            self.urls.append(attrs.get("src"))
        if tag == "video":
            self.urls.append(attrs.get("poster"))
        for candidate in (attrs.get("srcset") or "").split(","):
            self.urls.append(candidate.split()[0] if candidate.strip() else None)
        if "style" in attrs:
            self.urls += [a or b for a, b in CSS_URL.findall(attrs["style"])]


def transfer(client, page_path, html):
    """Fetch what the page loads, as a browser would.

    Return [(kind, path, bytes, gzip bytes)] of the page and each resource, and the URLs outside.
    """
    parser = Resources()
    parser.feed(html)
    pending = [(page_path, url) for url in parser.urls if url]
    body = html.encode()
    rows, outside, seen = [("page HTML", page_path, len(body), len(gzip.compress(body)))], [], set()
    while pending:
        base, url = pending.pop(0)
        absolute = urljoin(ORIGIN + base, url)
        parts = urlsplit(absolute)
        if parts.scheme == "data" or absolute in seen:
            continue
        seen.add(absolute)
        if f"{parts.scheme}://{parts.netloc}" != ORIGIN:
            outside.append(absolute)
            continue
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = client.get(path)
        body = response.data
        if response.status_code != 200:
            raise SystemExit(f"resource {path}: {response.status_code}")
        rows.append((response.mimetype, path, len(body), len(gzip.compress(body))))
        if response.mimetype == "text/css":
            pending += [(parts.path, a or b) for a, b in CSS_URL.findall(body.decode())]
    return rows, outside


def main():
    parser = queries.sized_run_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="timed requests per page (100)")
    options = parser.parse_args()
    sizes = queries.sizes_of(options)

    with tempfile.TemporaryDirectory(prefix="bench-admin-pages-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        app = queries.inprocess_app(url, directory, SERVICES,
                                    extra={"admin": {"secret_key": "bench-admin-key-" + "0" * 32}})
        order_id = None
        all_results = {}
        for size, rows, seconds, analyzed in queries.seeded_sizes(url, sizes, options.seed):
            began = time.perf_counter()
            add_history(url)
            if order_id is None:
                order_id, parts = add_big_order(app, url)
            if analyzed:
                queries.analyze()
            print(f"\n== {size:,} orders (seeded {rows:,} rows in {seconds:.0f} s, history and the large "
                  f"order in {time.perf_counter() - began:.0f} s"
                  f"{', ANALYZE run' if analyzed else ', no ANALYZE (the adapter never runs it on SQLite)'})")
            print(f"   large order {order_id}: " + ", ".join(f"{n} {k}" for k, n in parts.items())
                  + f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            results = measure(app, order_id, options.repeat)
            all_results[size] = results
            print(f"   {'page':<36} {'rows':>4} {'bytes':>8} {'p50':>9} {'p95':>9} {'reads p50':>9} "
                  f"{'reads p95':>9}")
            for label, r in results.items():
                shown = r["rows"] if label.startswith("orders:") else ""
                reads = f"{r['r50']:>7.1f}ms {r['r95']:>7.1f}ms" if "r50" in r else ""
                print(f"   {label:<36} {shown:>4} {r['bytes']:>8,} {r['p50']:>7.1f}ms {r['p95']:>7.1f}ms "
                      + reads)

        page = all_results[sizes[-1]][ORDER_PAGE]
        rows, outside = transfer(signed_in_client(app), page["path"], page["html"])
        print(f"\n== order page transfer (large order, {sizes[-1]:,} orders; no compression by the app, "
              "gzip -6 for comparison)")
        for kind, path, size, zipped in rows:
            print(f"   {kind:<24} {path:<44} {size:>9,} B  gzip {zipped:>8,} B")
        print(f"   {'total':<69} {sum(r[2] for r in rows):>9,} B  gzip {sum(r[3] for r in rows):>8,} B")
        print("   resources from outside the app: " + (", ".join(outside) if outside else "none (met)"))

        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            print(f"\n== growth {large:,} / {small:,} (p95), targets: p95 <= {queries.TARGET_P95_MS:g} ms "
                  f"at {large:,} and <= {queries.TARGET_GROWTH}x the {small:,} figure")
            for label in all_results[small]:
                a, b = all_results[small][label]["p95"], all_results[large][label]["p95"]
                growth, met = queries.verdict(a, b)
                print(f"   {label:<36} {a:7.1f} -> {b:7.1f} ms  x{growth:5.2f}  {met}")
        from adapter import store

        store.database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Memory of the gunicorn workers over `--count` (100,000) mixed webhooks with the admin pages in use.

Not a test: it prints figures and never fails on time. The adapter runs as deployed, on
127.0.0.1 and a fresh store: gunicorn with the repository's gunicorn.conf.py and the worker class
it sets (2 gevent workers; `--worker-class` overrides it, `--gunicorn-conf ''` reads no config
file), JSON logs, metrics with a token (`/metrics` is scraped once at the end), and each worker's
in-app outbox dispatcher delivering the merchant's requests to `bench/sink.py`.

Webhooks: the mix of `ingest.mix_deliveries` on fresh FOs whose requests were submitted through
the merchant API: accept, shipment with tracking, two delivery events and a message, 5 per FO,
in that order, with unique webhook-ids. Rounds are bounded in time (`--round-seconds`; wrk, or
Python threads without it) and hold about twice what the previous round applied; the steps a
round did not get applied are sent first in the next (same webhook-ids, signed afresh), as a
service retries, but for an accept that its own shipment overtook (409, SPEC 2.3). Before each
round the FOs it needs are made through the API (the time is printed). The run ends when
`--count` webhooks have been applied after the warm-up (counted in `webhook_receipt`) or after
`--max-seconds`; then the store is checked for exactly-once as `ingest.py` does.

Admin pages: during the warm-up and every round a merchant signs in through the sign-in form
(CSRF token, merchant token) with a `requests.Session` of its own and browses, one page at a
time, until the round ends: the orders list in every saved view, each followed by a search
(`q=`) for the name of an order the mix is at and that order's page, whose poll URL it fetches
2 s later, as the open page would. Pages served and failures (an answer not 2xx, none, or a
search not listing its order) are printed per round.

VmRSS of every worker (from /proc/<pid>/status) after start, after the warm-up and after each
round. Target: every worker <= 120 MB, and no growth over the second half of the run (<= 5%).

    python bench/memory.py                              # ~10 min on SQLite
    python bench/memory.py --count 30000
    python bench/memory.py --database postgresql://postgres@127.0.0.1:5432/bench_memory
"""

import argparse
import collections
import html
import json
import math
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import _common as c
import admin_pages
import ingest
import outbox
import requests

TARGET_MIB = 120
GROWTH_LIMIT = 0.05
STEPS = 5  # deliveries per FO in the mix
FIRST_RATE = 500  # webhooks/s assumed before one is measured, to size the warm-up
METRICS_TOKEN = "bench-metrics-token-0123456789"
MAX_PAGES = 100_000  # a merchant's bound in one round, far above what one session can fetch
PAGE_KINDS = ("sign-in", "list", "search", "order", "poll")
POLL_SECONDS = 2  # an open order page polls this often (hx-trigger of admin/_order_live.html)
APPLIED = "SELECT count(*) FROM webhook_receipt WHERE webhook_id LIKE ?"


def rss(server):
    return {pid: c.rss_kib(pid) for pid in server.worker_pids()}


def show(label, sizes, done, note=""):
    text = "  ".join(f"pid {pid}: {kib / 1024:6.1f} MiB" for pid, kib in sorted(sizes.items()) if kib)
    print(f"{label:<20} {done:>8,} applied   {text}" + (f"   {note}" if note else ""), flush=True)


class Mix:
    """The webhook mix on submitted FOs made through the merchant API, carried from round to round."""

    def __init__(self, base_url, url, tag):
        self.base_url, self.url, self.tag = base_url, url, tag
        self.prefix = f"mem-{tag}-"
        self.made = []  # every FO made, for the exactly-once check
        self.active = []  # FOs with a step not done yet, oldest first
        self.order_of = {}  # FO id -> (order id, order name)
        self.seconds = 0.0  # spent making FOs

    def make(self, count):
        """Make `count` orders with one FO each and submit their requests through the API."""
        began = time.monotonic()
        first = len(self.made)
        orders = c.create_orders(self.base_url, count,
                                 lambda i: ingest.order_payload(first + i, self.tag),
                                 request_fulfillment=True, clients=8)
        ids = [order_id for order_id, _ in orders]
        names = dict(c.query_rows(self.url, "SELECT id, name FROM orders WHERE id BETWEEN ? AND ?",
                                  (min(ids), max(ids))))
        for order_id, fos in orders:
            for fo in fos:
                self.order_of[fo] = (order_id, names[order_id])
                self.made.append(fo)
                self.active.append(fo)
        self.seconds += time.monotonic() - began
        return len(orders)

    def webhook_id(self, step, fo):
        return f"{self.prefix}{step}-{fo}"  # as ingest.mix_deliveries names them

    def prepare(self, budget, cap=None):
        """Return the next round's signed deliveries: the steps not done yet, then new FOs' up to
        about `budget` deliveries (and at most `cap` in all); and how many FOs were made.

        A step is done once applied, or refused as an invalid transition (an accept that its own
        shipment overtook, SPEC 2.3); any other refusal (an event that overtook its shipment: 404)
        is sent again, as a service retries.
        """
        rows = c.query_rows(self.url, "SELECT webhook_id FROM webhook_delivery WHERE webhook_id LIKE ? "
                            "AND (outcome_status < 400 OR outcome_code = 'invalid_transition')",
                            (self.prefix + "%",))
        done = {webhook_id for (webhook_id,) in rows}
        left = {fo: sum(self.webhook_id(step, fo) not in done for step in range(STEPS))
                for fo in self.active}
        self.active = [fo for fo in self.active if left[fo]]
        outstanding = sum(left.values())
        wanted = budget if cap is None else min(budget, cap)
        made = self.make(math.ceil((wanted - outstanding) / STEPS)) if wanted > outstanding else 0
        deliveries = [d for d in ingest.mix_deliveries(self.prefix, self.active)
                      if d[2]["webhook-id"] not in done]
        return deliveries, made

    def orders_at(self, rate, began):
        """A function of a turn: (id, name) of an order the mix is at now, estimated from the rate."""
        fos = list(self.active) or self.made[-1:]

        def order(turn):
            tick = int(rate * (time.monotonic() - began) / STEPS)
            index = tick - (turn % STEPS) * ingest.MIX_GAP
            return self.order_of[fos[min(max(index, 0), len(fos) - 1)]]

        return order


class Merchant(threading.Thread):
    """A merchant in the admin pages: signed in through the form, browsing one page at a time until
    `stop()` or `deadline` (and at most MAX_PAGES pages)."""

    def __init__(self, base_url, order_at, deadline):
        super().__init__(name="merchant", daemon=True)
        self.base_url, self.order_at, self.deadline = base_url, order_at, deadline
        self.halt = threading.Event()
        self.pages = collections.Counter()
        self.refused = collections.Counter()

    def stop(self):
        self.halt.set()
        self.join(30)

    def browsing(self):
        return (not self.halt.is_set() and time.monotonic() < self.deadline
                and self.pages.total() < MAX_PAGES)

    def fetch(self, session, kind, path, method="GET", data=None, expect=range(200, 300)):
        """Send one request unless the round is over; return the answer if it is as expected."""
        if not self.browsing():
            return None
        self.pages[kind] += 1
        try:
            response = session.request(method, self.base_url + path, data=data, timeout=10,
                                        allow_redirects=False)
        except requests.RequestException as exc:
            self.refused[f"{kind}: {type(exc).__name__}"] += 1
            return None
        if response.status_code not in expect:
            self.refused[f"{kind}: {response.status_code}"] += 1
            return None
        if kind == "poll" and response.status_code == 204:
            self.pages["poll 204"] += 1
        return response

    def run(self):
        from handlers.admin.orders import SAVED_VIEWS

        session = requests.Session()
        form = self.fetch(session, "sign-in", "/admin/login")
        token = form and admin_pages.CSRF_FIELD.search(form.text)
        if not token or not self.fetch(session, "sign-in", "/admin/login", "POST",
                                       {"csrf_token": token.group(1), "token": c.TOKEN}, expect=(302,)):
            return
        opened = collections.deque()  # (when drawn, poll URL) of the order pages open
        turn = 0
        while self.browsing():
            view = SAVED_VIEWS[turn % len(SAVED_VIEWS)]
            order_id, name = self.order_at(turn)
            turn += 1
            query = f"?{urlencode(view.filters)}" if view.filters else ""
            self.fetch(session, "list", "/admin/orders" + query)
            found = self.fetch(session, "search", "/admin/orders?" + urlencode({"q": name}))
            if found and f'href="/admin/orders/{order_id}"' not in found.text:
                self.refused["search: its order not listed"] += 1
            page = self.fetch(session, "order", f"/admin/orders/{order_id}")
            poll = page and admin_pages.POLL.search(page.text)
            if poll:
                opened.append((time.monotonic(), html.unescape(poll.group(1))))
            # A page polls POLL_SECONDS after it was drawn, when the mix has often changed its order.
            if opened and time.monotonic() - opened[0][0] >= POLL_SECONDS:
                self.fetch(session, "poll", opened.popleft()[1])

    def summary(self):
        kinds = ", ".join(f"{kind} {self.pages[kind]}" for kind in PAGE_KINDS)
        bad = sum(self.refused.values())
        return (f"admin {self.served():,} pages ({kinds}, {self.pages['poll 204']} of them 204), "
                f"failed {bad}" + (f" {dict(self.refused)}" if bad else ""))

    def served(self):
        return self.pages.total() - self.pages["poll 204"]


def one_round(adapter, url, mix, seconds, rate, options, directory, cap=None):
    """Prepare and send one round of the mix while a merchant browses; return its figures."""
    began = time.monotonic()
    deliveries, made = mix.prepare(int(min(ingest.MAX_RATE, 2 * rate) * seconds), cap)
    prepared = time.monotonic() - began
    before = c.count_rows(url, APPLIED, (mix.prefix + "%",))
    began = time.monotonic()
    merchant = Merchant(adapter.base_url, mix.orders_at(rate, began), began + seconds + 60)
    merchant.start()
    try:
        result = c.run_load(adapter.base_url, deliveries, connections=options.connections,
                            duration=max(seconds, 1), generator=options.generator, directory=directory)
    finally:
        merchant.stop()
    applied = c.wait_quiet(url, APPLIED, (mix.prefix + "%",), settle=0.5)
    return {"result": result, "merchant": merchant, "applied": applied, "rate": (applied - before) / seconds,
            "made": made, "prepared": prepared, "exhausted": result["exhausted"]}


def next_rate(figures):
    """The rate the next round is sized for: measured, or twice that when the list ran out."""
    return figures["rate"] * (2 if figures["exhausted"] else 1)


def scrape(base_url):
    """Read /metrics with the token; return a line saying what it holds."""
    response = requests.get(base_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                            timeout=30)
    if response.status_code != 200:
        return f"/metrics answered {response.status_code}: metrics NOT on"
    webhooks = collections.Counter()
    admin = 0
    for line in response.text.splitlines():
        if line.startswith("adapter_webhooks_received_total{"):
            webhooks[re.search(r'outcome="([^"]*)"', line).group(1)] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("adapter_http_requests_total{") and 'route="/admin' in line:
            admin += float(line.rsplit(" ", 1)[1])
    received = ", ".join(f"{outcome} {count:,.0f}" for outcome, count in webhooks.most_common())
    return (f"/metrics 200 ({len(response.content):,} bytes): adapter_webhooks_received_total "
            f"{received}; adapter_http_requests_total under /admin {admin:,.0f}")


def log_summary(path):
    """Count the server log's lines by level; return a line saying so, with the first warning."""
    levels = collections.Counter()
    first = None
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            try:
                record = json.loads(line)
            except ValueError:
                levels["not JSON"] += 1
                continue
            levels[record.get("level")] += 1
            if first is None and record.get("level") in ("warning", "error", "critical"):
                first = f"{record.get('logger')}: {record.get('message', '')[:200]}"
    counts = ", ".join(f"{level} {count:,}" for level, count in levels.most_common())
    return (f"server log {sum(levels.values()):,} lines ({counts})"
            + (f"; first warning: {first}" if first else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--warmup-seconds", type=float, default=10)
    parser.add_argument("--round-seconds", type=float, default=30)
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="limit of the rounds, making their FOs included (1800)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--gunicorn-conf", default=str(c.REPO / "gunicorn.conf.py"),
                        help="gunicorn config file (the repository's); '' for none")
    parser.add_argument("--worker-class", choices=("sync", "gthread", "gevent"),
                        help="-k for gunicorn (default: the config file's, else sync)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    options = parser.parse_args()
    conf = options.gunicorn_conf or None
    worker_class = options.worker_class or (None if conf else "sync")

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        sink = outbox.sink("sink", "ok", directory)
        config = c.write_config(f"{directory}/adapter.toml", {
            ingest.SERVICE: {"workflow": "new", "url": sink.base_url + "/hooks", "secret": c.SECRET,
                             "timeout_seconds": 1}},
            in_app_dispatcher=True, extra={"metrics": {"token": METRICS_TOKEN}})
        env = c.adapter_env(url, config)
        env["LOG_FORMAT"] = "json"
        for name in ("METRICS_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)  # the config's token; a metrics directory of gunicorn.conf.py's own
        adapter = c.gunicorn_server("adapter", "app:create_app()", env, directory, worker_class=worker_class,
                                    workers=options.workers, threads=options.threads, conf=conf)
        rid = c.run_id()
        command = (f"gunicorn -c {Path(conf).name if conf else '(none)'} -w {options.workers}"
                   + (f" -k {worker_class}" if worker_class else "")
                   + (f" --threads {options.threads}" if worker_class == "gthread" else ""))
        with sink, adapter:
            used = re.search(r"Using worker: ([\w.]+)", Path(adapter.log_path).read_text())
            print(f"`{command}` (worker {used.group(1) if used else 'unknown'}), "
                  f"{'PostgreSQL' if c.is_postgres_url(url) else 'SQLite'}, "
                  f"{options.connections} connections, JSON logs, metrics token set, in-app dispatcher on")
            show("after start", rss(adapter), 0)
            mix = Mix(adapter.base_url, url, f"mem{rid}")
            warm = one_round(adapter, url, mix, options.warmup_seconds, FIRST_RATE, options, directory)
            before = rss(adapter)
            show("after warm-up", before, warm["applied"],
                 f"{warm['made']:,} FOs made in {warm['prepared']:.1f} s; " + warm["merchant"].summary())
            rate, ok, start = next_rate(warm), warm["result"]["ok"], warm["applied"]
            began = time.monotonic()
            samples, done, number, pages, refused, idle, stopped = [], 0, 0, 0, 0, 0, None
            while done < options.count and time.monotonic() - began < options.max_seconds:
                seconds = min(options.round_seconds, options.max_seconds - (time.monotonic() - began))
                figures = one_round(adapter, url, mix, seconds, rate, options, directory,
                                    cap=options.count - done)
                done = figures["applied"] - start
                ok += figures["result"]["ok"]
                pages += figures["merchant"].served()
                refused += sum(figures["merchant"].refused.values())
                sizes = rss(adapter)
                samples.append((done, sizes))
                number += 1
                show(f"round {number} ({figures['rate']:.0f}/s)", sizes, done,
                     f"{figures['made']:,} FOs made in {figures['prepared']:.1f} s; "
                     + figures["merchant"].summary())
                # A round may apply nothing when all it had left were steps refused before (an
                # accept its shipment overtook); the next one makes new FOs. Two in a row: stop.
                idle = 0 if figures["result"]["ok"] else idle + 1
                if idle == 2:
                    stopped = "nothing was applied in two rounds in a row"
                    break
                rate = next_rate(figures)
            elapsed = time.monotonic() - began
            if done < options.count and not stopped:
                stopped = "--max-seconds"
            metrics = scrape(adapter.base_url)
            _, checked = ingest.verify_mix(url, mix.prefix, mix.made, {"ok": ok})
            delivered = c.count_rows(url, "SELECT count(*) FROM outbox_message WHERE status = 'delivered'")
        after = samples[-1][1] if samples else before
        seen = [before, *(sizes for _, sizes in samples)]
        peak = max(kib for sizes in seen for kib in sizes.values() if kib) / 1024
        half = next((sizes for count, sizes in samples if count >= done / 2), before)
        growth = max(((after[pid] - half[pid]) / half[pid] for pid in after if half.get(pid) and after[pid]),
                     default=0)
        print(f"\n{done:,} webhooks applied after the warm-up in {elapsed:.0f} s"
              + (f" (stopped before {options.count:,}: {stopped})" if stopped else "")
              + f"; the merchant fetched {pages:,} admin pages in the rounds, {refused} failed")
        print(f"  {len(mix.made):,} submitted FOs made through the merchant API, in {mix.seconds:.0f} s "
              "in all (warm-up included)")
        print(f"  mix, warm-up included: {checked}")
        print(f"  outbox messages delivered to the sink by the in-app dispatchers: {delivered:,}")
        print(f"  {metrics}")
        print(f"  {log_summary(adapter.log_path)}")
        if set(after) != set(before):
            print(f"  the workers changed during the run (one exited and gunicorn started another): "
                  f"{sorted(before)} after the warm-up, {sorted(after)} at the end")
        for pid in sorted(after):
            print(f"  worker {pid}: {before.get(pid, 0) / 1024:.1f} MiB before -> "
                  f"{after[pid] / 1024:.1f} MiB after "
                  f"(+{(after[pid] - before.get(pid, 0)) / 1024:.1f} MiB)")
        print(f"  largest worker RSS seen {peak:.1f} MiB; target <= {TARGET_MIB} MiB: "
              f"{'met' if peak <= TARGET_MIB else 'NOT met'}")
        print(f"  growth over the second half of the run {growth * 100:+.1f}%; not growing (<= "
              f"{GROWTH_LIMIT * 100:.0f}%): {'met' if growth <= GROWTH_LIMIT else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

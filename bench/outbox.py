"""Outbox delivery: messages/s of one `flask outbox work` process, and request-to-receipt latency.

Not a test: it prints figures and never fails on time. Everything runs on 127.0.0.1:
`bench/sink.py` plays the services (one answering 200 at once, one that never answers).

1. Throughput: `--messages` (10,000) `merchant.message`s are stored with the adapter's own
   `outbox.enqueue` (spread over `--fos` fulfillment orders made through the merchant API), then
   one `flask --app app outbox work` process delivers them to the sink; the rate is taken from
   the sink's first to last arrival. Target >= 1,500/s on SQLite, >= 1,000/s on PostgreSQL.
2. Isolation: the same again with a second service whose sink never answers
   (`timeout_seconds = 1`) holding `--slow-messages` due messages; the healthy service's rate
   may drop by at most 10%.
3. Latency with the in-app dispatcher: the adapter under gunicorn with the repository's
   gunicorn.conf.py (each worker starts its dispatcher); `POST .../fulfillment_request` on fresh
   FOs, one every `--interval` s; latency is the sink's arrival time minus the moment the
   merchant request was sent. Target p50 <= 50 ms.

    python bench/outbox.py                       # SQLite, about 2-3 minutes
    python bench/outbox.py --database postgresql://postgres@127.0.0.1:5432/bench_outbox
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time

import _common as c
import requests

TARGET_RATE = {"SQLite": 1500, "PostgreSQL": 1000}
TARGET_DROP = 0.10
TARGET_P50_MS = 50
SET_ASIDE = "UPDATE outbox_message SET status = 'failed' WHERE status IN ('pending', 'sending')"


def order_payload(index, tag):
    return {
        "external_id": f"{tag}-{index}",
        "currency": "USD",
        "shipping_address": {"name": "Bench", "address1": "1 Loop Rd", "city": "Bangkok",
                             "country_code": "TH"},
        "line_items": [
            {"sku": "A", "title": "A", "quantity": 1, "price": "10.00", "fulfillment_service": "good"},
            {"sku": "B", "title": "B", "quantity": 1, "price": "10.00", "fulfillment_service": "slow"},
        ],
    }


def sink(name, mode, directory):
    port = c.free_port()
    argv = [sys.executable, str(c.BENCH / "sink.py"), "--port", str(port), "--mode", mode]
    return c.Server(name, argv, None, f"{directory}/{name}.log", port, health_path="/stats")


def sink_records(server):
    return requests.get(server.base_url + "/stats", timeout=30).json()["records"]


def enqueue(app, target, fo_pairs, count, tag):
    """Store `count` merchant.message rows for `target`, round-robin over (order_id, fo_id)."""
    from adapter import outbox, store
    from adapter.times import utcnow

    with app.app_context(), store.database.connection_context():
        for start in range(0, count, 500):
            with store.transaction():
                now = utcnow()
                for number in range(start, min(start + 500, count)):
                    order_id, fo_id = fo_pairs[number % len(fo_pairs)]
                    outbox.enqueue(target, "merchant.message",
                                   {"fulfillment_order_id": fo_id, "message": f"{tag} {number}"}, now,
                                   order_id=order_id, fulfillment_order_id=fo_id)


def claim_diagnostics(app, target):
    """Time the claim queries (`claims.abandoned`, `claims.claimable`) and explain them."""
    from adapter import claims, store
    from adapter.times import utcnow

    pending = c.count_rows(store_url[0], "SELECT count(*) FROM outbox_message WHERE status = 'pending'")
    limit = app.extensions["adapter_settings"].batch_size
    with app.app_context(), store.database.connection_context():
        for select in (claims.abandoned, claims.claimable):
            query = select(target, utcnow()).limit(limit)
            sql, params = query.sql()
            times = []
            for _ in range(3):
                began = time.perf_counter()
                list(query.clone())
                times.append((time.perf_counter() - began) * 1000)
            if store.is_postgres():
                plan = [row[0].strip() for row in store.database.execute_sql("EXPLAIN " + sql, params)]
            else:
                plan = [row[-1] for row in store.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
            print(f"   claim query `{select.__name__}` with {pending:,} pending: {min(times):.1f} ms "
                  "(best of 3); plan: " + " | ".join(plan))


store_url = [None]


def delivered(url, target, since_id):
    return c.count_rows(url, "SELECT count(*) FROM outbox_message WHERE target = ? AND status = "
                        "'delivered' AND id > ?", (target, since_id))


def max_id(url):
    return c.count_rows(url, "SELECT coalesce(max(id), 0) FROM outbox_message")


def run_worker(url, env, directory, good_sink, count, since_id, timeout, label):
    """Start one `flask outbox work`, wait until `count` good messages are delivered; return rate."""
    before = len(sink_records(good_sink))
    log = open(f"{directory}/worker-{label}.log", "ab")  # noqa: SIM115 - closed in the finally
    began = time.time()
    worker = subprocess.Popen([str(c.BIN / "flask"), "--app", "app", "outbox", "work"], cwd=c.REPO,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        done = 0
        while time.time() < deadline:
            done = delivered(url, "good", since_id)
            if done >= count or worker.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(40)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    wall = time.time() - began
    arrivals = sorted(r[0] for r in sink_records(good_sink)[before:])
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0
    rate = (len(arrivals) - 1) / span if span else 0.0
    return {"delivered": done, "arrived": len(arrivals), "rate": rate, "span": span, "wall": wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--fos", type=int, default=500, help="FOs the messages are about (500)")
    parser.add_argument("--slow-messages", type=int, default=200)
    parser.add_argument("--latency-requests", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between requests (0.05)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for part 3 (2)")
    parser.add_argument("--timeout", type=float, default=120, help="limit per delivery run, s (120)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        good = sink("sink-good", "ok", directory)
        slow = sink("sink-slow", "hang", directory)
        with good, slow:
            services = {
                "good": {"workflow": "new", "url": good.base_url + "/hooks", "secret": c.SECRET,
                         "timeout_seconds": 1},
                "slow": {"workflow": "new", "url": slow.base_url + "/hooks", "secret": c.SECRET,
                         "timeout_seconds": 1},
            }
            config = c.write_config(f"{directory}/adapter.toml", services)
            env = c.adapter_env(url, config)
            app = c.make_inprocess_app(url, config)
            client = app.test_client()
            auth = {"Authorization": f"Bearer {c.TOKEN}"}
            good_pairs, slow_pairs = [], []
            for index in range(options.fos):
                order = client.post("/orders", json=order_payload(index, "ob"), headers=auth).get_json()
                for fo in order["fulfillment_orders"]:
                    (good_pairs if fo["service"] == "good" else slow_pairs).append((order["id"], fo["id"]))
            from adapter import store

            store.database.close()

            print(f"\n1. one `flask outbox work`, {options.messages:,} messages over {len(good_pairs)} FOs "
                  "to a sink answering 200")
            since = max_id(url)
            enqueue(app, "good", good_pairs, options.messages, "alone")
            store_url[0] = url
            claim_diagnostics(app, "good")
            alone = run_worker(url, env, directory, good, options.messages, since, options.timeout, "alone")
            target = TARGET_RATE["PostgreSQL" if c.is_postgres_url(url) else "SQLite"]
            print(f"   delivered {alone['delivered']:,}, sink received {alone['arrived']:,} in "
                  f"{alone['span']:.1f} s: {alone['rate']:,.0f} messages/s (worker wall time incl. start "
                  f"{alone['wall']:.1f} s); target >= {target:,}/s: "
                  f"{'met' if alone['rate'] >= target else 'NOT met'}")

            print(f"\n2. the same with {options.slow_messages} messages due to a service that never answers "
                  "(timeout_seconds 1)")
            # Start from the same empty queue as part 1 (what part 1 left undelivered is set aside).
            c.execute(url, SET_ASIDE)
            since = max_id(url)
            enqueue(app, "slow", slow_pairs, options.slow_messages, "slow")
            enqueue(app, "good", good_pairs, options.messages, "beside")
            beside = run_worker(url, env, directory, good, options.messages, since, options.timeout, "beside")
            slow_attempts = c.count_rows(url, "SELECT coalesce(sum(attempts), 0) FROM outbox_message "
                                         "WHERE target = 'slow'")
            drop = 1 - beside["rate"] / alone["rate"] if alone["rate"] else 0
            print(f"   delivered {beside['delivered']:,} in {beside['span']:.1f} s: {beside['rate']:,.0f} "
                  f"messages/s; slow service attempts made {slow_attempts} (each a 1 s timeout)")
            print(f"   healthy service's rate {alone['rate']:,.0f} -> {beside['rate']:,.0f}/s: drop "
                  f"{drop * 100:.1f}%; target <= {TARGET_DROP * 100:.0f}%: "
                  f"{'met' if drop <= TARGET_DROP else 'NOT met'}")

            print(f"\n3. in-app dispatcher (gunicorn -w {options.workers} -k sync, repository "
                  f"gunicorn.conf.py): merchant request -> sink arrival")
            config = c.write_config(f"{directory}/adapter-inapp.toml", services, in_app_dispatcher=True,
                                    outbox={"poll_seconds": 1.0})
            env = c.adapter_env(url, config)
            # Nothing else pending, so the latency is the dispatcher's alone.
            c.execute(url, SET_ASIDE)
            adapter = c.gunicorn_server("adapter-inapp", "app:create_app()", env, directory,
                                        workers=options.workers, conf=str(c.REPO / "gunicorn.conf.py"))
            pending_slow = c.count_rows(url, "SELECT count(*) FROM outbox_message WHERE target = 'slow' "
                                        "AND status IN ('pending', 'sending')")
            with adapter:
                fresh = c.create_orders(adapter.base_url, options.latency_requests,
                                        lambda i: {**order_payload(i, "lat"), "line_items": [
                                            {"sku": "A", "title": "A", "quantity": 1, "price": "10.00",
                                             "fulfillment_service": "good"}]})
                before = len(sink_records(good))
                session = c.api_session()
                sent_at = {}
                request_ms = []
                for _, fos in fresh:
                    fo_id = fos[0]
                    began = time.time()
                    response = session.post(
                        f"{adapter.base_url}/fulfillment_orders/{fo_id}/fulfillment_request",
                                            json={"message": "bench"}, timeout=30)
                    request_ms.append((time.time() - began) * 1000)
                    if response.status_code == 200:
                        sent_at[fo_id] = began
                    time.sleep(options.interval)
                deadline = time.time() + 30
                arrived = {}
                while time.time() < deadline:
                    arrived = {r[2]: r[0] for r in sink_records(good)[before:]
                               if r[1] == "fulfillment_request.submitted"}
                    if len(arrived) >= len(sent_at):
                        break
                    time.sleep(0.5)
            latencies = [(arrived[fo] - t) * 1000 for fo, t in sent_at.items() if fo in arrived]
            p50 = c.percentile(latencies, 50)
            longest = max(latencies) if latencies else None
            print(f"   {len(sent_at)} requests (HTTP p50 {c.fmt(c.percentile(request_ms, 50), ' ms')}), "
                  f"{len(latencies)} "
                  f"arrived; request -> arrival p50 {c.fmt(p50, ' ms')}, p99 "
                  f"{c.fmt(c.percentile(latencies, 99), ' ms')}, max {c.fmt(longest, ' ms')}"
                  + (f" ({pending_slow} messages still pending meanwhile)" if pending_slow else ""))
            met = p50 is not None and p50 <= TARGET_P50_MS
            print(f"   target p50 <= {TARGET_P50_MS} ms: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

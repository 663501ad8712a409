"""Stalled clients: does the server keep answering `/healthz` and webhooks while some stall?

Not a test: it prints figures and never fails on time. One command starts the adapter on
127.0.0.1 on a fresh store under the chosen server (`--worker-class sync|gthread|gevent|waitress`,
the same choices as `ingest.py`), then for each count in `--stalled` (4, 16, 64) and each way of
stalling (`line`: half a request line and headers; `body`: whole headers announcing a 4 KB body,
then half of it) opens that many connections that send their half and stop, and for
`--duration` seconds (30) sends, one after the other on new connections, `GET /healthz` and a
signed `fulfillment_order.message` webhook, each with a 5 s timeout (a service's patience).
Prints p50, p99, the worst latency, how many answers took over 1 s and how many none came to.

    python bench/slow_clients.py --worker-class gevent
    python bench/slow_clients.py --worker-class gthread --threads 8 --stalled 16 --duration 10
"""

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import time

import _common as c

SERVICE = "bench"
PATIENCE_SECONDS = 5.0


def stall(port, count, how):
    """Open `count` connections that each send half a request and stop; return them."""
    if how == "line":
        half = b"POST /webhooks/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
    else:
        half = (b"POST /webhooks/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4096\r\n\r\n" + b"{" + b" " * 2047)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((c.LOOPBACK, port), timeout=5)
        sock.sendall(half)
        sockets.append(sock)
    return sockets


def timed(call):
    """Return (seconds, status or None when no answer came within the patience)."""
    import requests

    began = time.perf_counter()
    try:
        status = call().status_code
    except requests.RequestException:
        status = None
    return time.perf_counter() - began, status


def probe(base_url, fo_id, duration, prefix):
    """Alternate /healthz and a signed webhook for `duration` seconds; return both latency lists."""
    import requests

    health, hooks = [], []
    deadline = time.monotonic() + duration
    number = 0
    while time.monotonic() < deadline:
        health.append(timed(lambda: requests.get(base_url + "/healthz", timeout=PATIENCE_SECONDS)))
        method, path, headers, body = c.signed_delivery(
            SERVICE, c.SECRET, f"{prefix}{number}", "fulfillment_order.message",
            {"fulfillment_order_id": fo_id, "message": f"slow {prefix}{number}"})
        hooks.append(timed(lambda path=path, headers=headers, body=body: requests.post(
            base_url + path, headers=headers, data=body, timeout=PATIENCE_SECONDS)))
        number += 1
        time.sleep(0.2)
    return health, hooks


def summary(samples, ok_statuses):
    seconds = [s for s, status in samples if status is not None]
    unanswered = sum(1 for _, status in samples if status is None)
    wrong = sum(1 for _, status in samples if status is not None and status not in ok_statuses)
    slow = sum(1 for s in seconds if s > 1.0)
    return (f"n {len(samples):>3}  p50 {c.fmt(c.percentile([s * 1000 for s in seconds], 50), ' ms', 1):>10}"
            f"  p99 {c.fmt(c.percentile([s * 1000 for s in seconds], 99), ' ms', 0):>9}"
            f"  max {c.fmt(max(seconds) * 1000 if seconds else None, ' ms', 0):>9}"
            f"  >1s {slow:>3}  unanswered {unanswered:>3}" + (f"  non-2xx {wrong}" if wrong else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="sqlite:///new.db (default: a temporary SQLite file) or "
                        "postgresql://user@127.0.0.1:5432/NEWDB (created and dropped)")
    parser.add_argument("--worker-class", default="sync", choices=c.SERVERS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--gunicorn-conf", help="gunicorn config file (default: none)")
    parser.add_argument("--stalled", default="4,16,64", help="stalled connection counts (4,16,64)")
    parser.add_argument("--how", default="line,body", help="line, body or both (line,body)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of probing per case (30)")
    options = parser.parse_args()
    command = c.describe_gunicorn(options.worker_class, options.workers, options.threads)
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        print(f"server `{command}`; {options.duration:g} s of probes per case, "
              f"patience {PATIENCE_SECONDS:g} s")
        config = c.write_config(f"{directory}/adapter.toml", {
            SERVICE: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/hooks",
                      "secret": c.SECRET, "timeout_seconds": 1}})
        env = c.adapter_env(url, config)
        adapter = c.gunicorn_server("adapter", "app:create_app()", env, directory,
                                    worker_class=options.worker_class, workers=options.workers,
                                    threads=options.threads, conf=options.gunicorn_conf)
        rid = c.run_id()
        with adapter:
            orders = c.create_orders(adapter.base_url, 1, lambda i: {
                "external_id": f"slow-{rid}", "currency": "USD", "email": "bench@example.com",
                "shipping_address": {"name": "Bench", "address1": "1 Loop Rd", "city": "Bangkok",
                                     "country_code": "TH"},
                "line_items": [{"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "12.50",
                                "fulfillment_service": SERVICE}]})
            fo_id = orders[0][1][0]
            for how in options.how.split(","):
                for count in (int(n) for n in options.stalled.split(",")):
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    sockets = stall(adapter.port, count, how)
                    try:
                        health, hooks = probe(adapter.base_url, fo_id, options.duration,
                                              f"slow-{rid}-{how}-{count}-")
                    finally:
                        for sock in sockets:
                            with contextlib.suppress(OSError):
                                sock.close()
                    print(f"{how:<4} x{count:<3} (load {load})")
                    print(f"    /healthz  {summary(health, {200})}")
                    print(f"    webhook   {summary(hooks, {200, 204})}")
                    time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

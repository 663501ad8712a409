"""Order intake: `POST /orders` (3 lines, 2 services) per second, one client and 8 clients.

Not a test: it prints figures and never fails on time. The adapter runs under gunicorn on
127.0.0.1 on a fresh store; each request imports a new order (unique `external_id`) of three
lines split over two services, so two FOs are created per order. The load generator is wrk
replaying pre-built requests (`apt-get update && apt-get install -y wrk`), or Python threads
with requests.Session without it. Afterwards the orders in the store are counted against the
201 answers.

    python bench/intake.py                        # SQLite, under a minute
    python bench/intake.py --database postgresql://postgres@127.0.0.1:5432/bench_intake
"""

import argparse
import json
import sys
import tempfile

import _common as c

MAX_RATE = 2000


def order_request(external_id):
    body = json.dumps({
        "external_id": external_id,
        "currency": "USD",
        "email": "buyer@example.com",
        "shipping_address": {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
                             "country_code": "TH"},
        "line_items": [
            {"sku": "MUG-1", "title": "Mug", "quantity": 2, "price": "12.50", "fulfillment_service": "acme"},
            {"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "price": "20.00",
             "fulfillment_service": "acme"},
            {"sku": "CAP-1", "title": "Cap", "quantity": 1, "price": "15.00",
             "fulfillment_service": "globex"},
        ],
    }).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {c.TOKEN}"}
    return ("POST", "/orders", headers, body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--clients", default="1,8", help="client counts to run (1,8)")
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-intake-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        services = {name: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/{name}",
                           "secret": c.SECRET, "timeout_seconds": 1} for name in ("acme", "globex")}
        config = c.write_config(f"{directory}/adapter.toml", services)
        env = c.adapter_env(url, config)
        gunicorn = c.describe_gunicorn(options.worker_class, options.workers, options.threads)
        adapter = c.gunicorn_server("adapter", "app:create_app()", env, directory,
                                    worker_class=options.worker_class, workers=options.workers,
                                    threads=options.threads)
        rid = c.run_id()
        print(f"store {'PostgreSQL' if c.is_postgres_url(url) else 'SQLite'}, `{gunicorn}`, "
              f"{options.duration:g} s per run")
        with adapter:
            for clients in (int(x) for x in options.clients.split(",")):
                prefix = f"in-{rid}-{clients}-"
                count = int(MAX_RATE * options.duration)
                requests_list = [order_request(f"{prefix}{n}") for n in range(count)]
                result = c.run_load(adapter.base_url, requests_list, connections=clients,
                                    duration=options.duration, generator=options.generator,
                                    directory=directory, wrk_threads=min(2, clients))
                print(result.line(f"POST /orders, {clients} client{'s' if clients > 1 else ''}"))
                stored = c.wait_quiet(url, "SELECT count(*) FROM orders WHERE external_id LIKE ?",
                                      (prefix + "%",))
                fos = c.count_rows(url, "SELECT count(*) FROM fulfillment_order f JOIN orders o ON "
                                   "o.id = f.order_id WHERE o.external_id LIKE ?", (prefix + "%",))
                print(f"    201 answers {result['ok']:,}, orders stored {stored:,} (in flight at stop "
                      f"{stored - result['ok']}), FOs {fos:,} (2 per order: "
                      f"{'OK' if fos == 2 * stored else 'MISMATCH'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

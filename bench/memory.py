"""Memory of the gunicorn workers over `--count` (100,000) signed webhooks: VmRSS before and after.

Not a test: it prints figures and never fails on time. The adapter runs under gunicorn on
127.0.0.1 on a fresh store (`-w 2 -k sync` by default); after a warm-up of `--warmup-seconds`
of deliveries the VmRSS of every worker is read from /proc/<pid>/status, then signed
`fulfillment_order.message` webhooks with unique ids are sent in time-bounded rounds (wrk, or
Python threads without it) until `--count` have been applied (counted in `webhook_receipt`) or
`--max-seconds` have passed; RSS is read after every round. Target: every worker <= 120 MB at
the end, and no growth over the second half of the run (<= 5%).

At the adapter's SQLite rate on a shared 2-core machine (150-300 webhooks/s) 100,000 take 6-11
minutes; `--count 30000` gives the trend in about two.

    python bench/memory.py
    python bench/memory.py --count 30000
    python bench/memory.py --database postgresql://postgres@127.0.0.1:5432/bench_memory
"""

import argparse
import sys
import tempfile
import time

import _common as c
import ingest

TARGET_MIB = 120
GROWTH_LIMIT = 0.05


def rss(server):
    return {pid: c.rss_kib(pid) for pid in server.worker_pids()}


def show(label, sizes, done):
    text = "  ".join(f"pid {pid}: {kib / 1024:6.1f} MiB" for pid, kib in sorted(sizes.items()) if kib)
    print(f"{label:<18} {done:>8,} applied   {text}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--warmup-seconds", type=float, default=10)
    parser.add_argument("--round-seconds", type=float, default=30)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        config = c.write_config(f"{directory}/adapter.toml", {
            ingest.SERVICE: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/hooks",
                             "secret": c.SECRET, "timeout_seconds": 1}})
        env = c.adapter_env(url, config)
        adapter = c.gunicorn_server("adapter", "app:create_app()", env, directory,
                                    worker_class=options.worker_class, workers=options.workers,
                                    threads=options.threads)
        rid = c.run_id()
        print(f"`{c.describe_gunicorn(options.worker_class, options.workers, options.threads)}`, "
              f"{'PostgreSQL' if c.is_postgres_url(url) else 'SQLite'}, {options.connections} connections")
        applied_sql = "SELECT count(*) FROM webhook_receipt WHERE webhook_id LIKE ?"
        with adapter:
            orders = c.create_orders(adapter.base_url, 200, lambda i: ingest.order_payload(i, f"mem{rid}"))
            fo_ids = [fo for _, fos in orders for fo in fos]
            show("after start", rss(adapter), 0)
            warm = ingest.message_deliveries(f"warm-{rid}-", fo_ids,
                                             int(ingest.MAX_RATE * options.warmup_seconds))
            c.run_load(adapter.base_url, warm, connections=options.connections,
                       duration=options.warmup_seconds, generator=options.generator, directory=directory)
            before = rss(adapter)
            show("before (warm)", before, c.wait_quiet(url, applied_sql, (f"warm-{rid}-%",)))
            began = time.monotonic()
            samples = []
            number = 0
            done = 0
            while done < options.count and time.monotonic() - began < options.max_seconds:
                # Rounds are bounded in time with more deliveries than can be sent, so the run
                # ends at the first round that reaches --count (it may pass it by one round).
                seconds = min(options.round_seconds, options.max_seconds - (time.monotonic() - began))
                batch = ingest.message_deliveries(f"mem-{rid}-{number}-", fo_ids,
                                                  int(ingest.MAX_RATE * seconds))
                result = c.run_load(adapter.base_url, batch, connections=options.connections,
                                    duration=max(seconds, 1), generator=options.generator,
                                    directory=directory)
                done = c.wait_quiet(url, applied_sql, (f"mem-{rid}-%",), settle=0.5)
                sizes = rss(adapter)
                samples.append((done, sizes))
                show(f"round {number + 1} ({result['rps']:.0f}/s)", sizes, done)
                number += 1
                if result["ok"] == 0:
                    print("nothing was applied in the last round; stopping")
                    break
            elapsed = time.monotonic() - began
        after = samples[-1][1] if samples else before
        peak = max(kib for _, sizes in samples for kib in sizes.values() if kib) / 1024 if samples else 0
        half = next((sizes for count, sizes in samples if count >= done / 2), before)
        growth = max((after[pid] - half[pid]) / half[pid] for pid in after if half.get(pid) and after[pid])
        print(f"\n{done:,} webhooks applied in {elapsed:.0f} s"
              + ("" if done >= options.count else f" (stopped by --max-seconds before {options.count:,})"))
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

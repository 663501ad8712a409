"""Sample the gunicorn workers with py-spy while wrk sends signed webhooks: where the time goes.

Not a test: it prints figures. Needs py-spy (`/tmp/venv/bin/pip install py-spy`) and uses wrk
when installed (`apt-get update && apt-get install -y wrk`; else Python threads). It starts the
adapter under gunicorn on a fresh store, prepares FOs through the merchant API, drives it at
`--connections` with steady-state messages (or `--mix`), and records every worker with
`py-spy record --idle --nonblocking` for `--seconds`. Stacks are split into "serving a request"
and "idle, waiting for one"; the serving time is broken down by the leaf frame's module and by
the inclusive time of the webhook path's parts. Time inside the database driver (C) shows as the
peewee `execute_sql`/`commit` frame: it includes SQLite lock waits and PostgreSQL round trips.

    python bench/profile_live.py                         # SQLite, messages, about a minute
    python bench/profile_live.py --mix
    python bench/profile_live.py --database postgresql://postgres@127.0.0.1:5432/bench_live
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import _common as c
import ingest

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

LEAF_CATEGORIES = (
    ("database driver call (peewee execute_sql/commit/begin: C time, lock waits, round trips)",
     lambda f, n: "peewee.py" in f and n in ("execute_sql", "_execute_cursor", "commit", "begin",
                                             "rollback", "_connect", "connect", "close", "_close",
                                             "_initialize_connection", "is_connection_closed")),
    ("peewee (building SQL, reading rows)", lambda f, n: "peewee.py" in f or "playhouse" in f),
    ("marshmallow (schemas)", lambda f, n: "marshmallow" in f),
    ("werkzeug/flask", lambda f, n: "werkzeug" in f or "/flask/" in f),
    ("gunicorn (HTTP parsing, sockets)", lambda f, n: "gunicorn" in f),
    ("json", lambda f, n: "/json/" in f),
    ("signatures (hmac, hashlib, base64, standardwebhooks)",
     lambda f, n: any(x in f for x in ("hmac", "hashlib", "base64", "standardwebhooks"))),
    ("adapter/ (core)", lambda f, n: "/adapter/" in f),
    ("handlers/", lambda f, n: "/handlers/" in f),
    ("psycopg2", lambda f, n: "psycopg2" in f),
    ("other stdlib", lambda f, n: "python3" in f),
)

PARTS = (
    ("webhooks.py", "receive", "handlers.webhooks.receive (whole view)"),
    ("signing.py", "verify", "signing.verify"),
    ("webhooks.py", "_parse", "webhooks._parse (JSON + schemas)"),
    ("receipts.py", "earlier_answer", "receipts.earlier_answer (receipt lookups)"),
    ("receipts.py", "apply_once", "receipts.apply_once (the transaction)"),
    ("locks.py", "locked_row", "locks.locked_row"),
    ("service_events.py", "_locked_fulfillment", "service_events._locked_fulfillment"),
    ("derived.py", "refresh", "derived.refresh"),
    ("timeline.py", "record", "timeline.record"),
    ("webhooks.py", "_respond", "webhooks._respond (render the answer)"),
    ("rendering.py", "applied_views", "rendering.applied_views"),
    ("receipts.py", "_keep", "receipts._keep (store the delivery)"),
    ("peewee.py", "_execute_cursor", "peewee _execute_cursor (driver: statement execution)"),
    ("peewee.py", "commit", "peewee commit"),
    ("peewee.py", "begin", "peewee begin (BEGIN IMMEDIATE: waits for the write lock)"),
    ("store.py", "before_request", "store connect"),
    ("app.py", "full_dispatch_request", "flask full_dispatch_request"),
)


def named(func, name):
    """py-spy qualifies methods (`SqliteDatabase.begin`): match the bare name too."""
    return func == name or func.endswith("." + name)


def parse_raw(path):
    stacks = []
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for part in stack.split(";"):
            match = FRAME.match(part)
            frames.append((match["func"], match["file"]) if match else (part, ""))
        stacks.append((frames, int(count)))
    return stacks


def summarize(stacks, out=print):
    # Under gevent the WAL flush runs in a thread of gevent's pool: its samples are the pool's,
    # not the requests' (it waits for work most of the time).
    pool = [(f, n) for f, n in stacks if any("gevent/threadpool.py" in file for _, file in f)]
    if pool:
        stacks = [(f, n) for f, n in stacks if not any("gevent/threadpool.py" in file for _, file in f)]
        pooled = sum(n for _, n in pool)
        flushing = sum(n for f, n in pool if any(named(func, "flush") and file.endswith("wal_flush.py")
                                                 for func, file in f))
        out(f"  gevent's thread pool (the WAL flush): {pooled:,} samples, flushing in "
            f"{flushing / pooled * 100:.0f}% of them")
    serving = [(f, n) for f, n in stacks if any(named(func, "handle") and "gunicorn" in file
                                                 for func, file in f)]
    total = sum(n for _, n in stacks)
    busy = sum(n for _, n in serving)
    out(f"  samples of the request threads {total:,}; serving a request {busy:,} "
        f"({busy / total * 100:.0f}%), idle/waiting for a connection {total - busy:,}")
    if not busy:
        return
    categories = Counter()
    leaves = Counter()
    for frames, n in serving:
        func, file = frames[-1]
        bare = func.rpartition(".")[2]
        label = next((lab for lab, test in LEAF_CATEGORIES if test(file, bare)), "other")
        categories[label] += n
        leaves[f"{func} ({Path(file).name})"] += n
    out("  serving time by leaf frame (self time):")
    for label, n in categories.most_common():
        out(f"    {n / busy * 100:5.1f}%  {label}")
    out("  inclusive share of serving time:")
    for suffix, name, label in PARTS:
        n = sum(count for frames, count in serving
                if any(named(func, name) and file.endswith(suffix) for func, file in frames))
        if n:
            out(f"    {n / busy * 100:5.1f}%  {label}")
    db_label = LEAF_CATEGORIES[0][0]
    by_site = Counter()
    for frames, n in serving:
        func, file = frames[-1]
        if not LEAF_CATEGORIES[0][1](file, func.rpartition(".")[2]):
            continue
        site = next((f"{Path(f).stem}.{fn.rpartition('.')[2]}" for fn, f in reversed(frames)
                     if "/adapter/" in f or "/handlers/" in f), "outside adapter/ and handlers/")
        by_site[site] += n
    if by_site:
        out(f"  {db_label.split(' (')[0]} time by the adapter function that issued it (share of serving):")
        for site, n in by_site.most_common(10):
            out(f"    {n / busy * 100:5.1f}%  {site}")
    out("  top leaf functions:")
    for leaf, n in leaves.most_common(12):
        out(f"    {n / busy * 100:5.1f}%  {leaf}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--gunicorn-conf", help="gunicorn config file, its worker class instead of "
                        "--worker-class (as deployed: gunicorn.conf.py, gevent)")
    parser.add_argument("--mix", action="store_true", help="accept/ship/event mix instead of messages")
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument("--keep", help="copy the raw py-spy stacks to this directory")
    options = parser.parse_args()
    spy = shutil.which("py-spy") or str(c.BIN / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: /tmp/venv/bin/pip install py-spy")

    with tempfile.TemporaryDirectory(prefix="bench-live-") as directory, \
            c.bench_database(options.database, directory) as url:
        c.print_machine(url)
        config = c.write_config(f"{directory}/adapter.toml", {
            ingest.SERVICE: {"workflow": "new", "url": f"http://{c.LOOPBACK}:{c.free_port()}/hooks",
                             "secret": c.SECRET, "timeout_seconds": 1}})
        env = c.adapter_env(url, config)
        worker_class = None if options.gunicorn_conf else options.worker_class
        adapter = c.gunicorn_server("adapter", "app:create_app()", env, directory,
                                    worker_class=worker_class, workers=options.workers,
                                    threads=options.threads, conf=options.gunicorn_conf)
        rid = c.run_id()
        with adapter:
            if options.mix:
                fresh = c.create_orders(adapter.base_url, 1000, lambda i: ingest.order_payload(i, f"l{rid}"),
                                        request_fulfillment=True)
                deliveries = ingest.mix_deliveries(f"live-{rid}-", [fo for _, fs in fresh for fo in fs])
            else:
                orders = c.create_orders(adapter.base_url, 200, lambda i: ingest.order_payload(i, f"l{rid}"))
                fo_ids = [fo for _, fs in orders for fo in fs]
                deliveries = ingest.message_deliveries(f"live-{rid}-", fo_ids,
                                                       int(ingest.MAX_RATE * (options.seconds + 4)))
            result = {}

            def load():
                result.update(c.run_load(adapter.base_url, deliveries, connections=options.connections,
                                         duration=options.seconds + 4, generator=options.generator,
                                         directory=directory))

            loader = threading.Thread(target=load)
            loader.start()
            time.sleep(2)
            pids = adapter.worker_pids()
            spies = [subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(options.seconds)),
                                       "-r", "200", "--idle", "--nonblocking", "--full-filenames",
                                       "-f", "raw", "-o", f"{directory}/spy-{pid}.txt"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for pid in pids]
            for process in spies:
                process.wait(options.seconds + 60)
            loader.join(options.seconds + 120)
        print(c.LoadResult(result).line("load during sampling") if result else "load did not finish")
        gunicorn = c.describe_gunicorn(worker_class, options.workers, options.threads)
        if options.gunicorn_conf:
            gunicorn += f" -c {options.gunicorn_conf}"
        print(f"{gunicorn}, "
              f"{'mix' if options.mix else 'messages'}, {len(pids)} workers sampled for "
              f"{options.seconds:g} s")
        stacks = []
        for pid in pids:
            path = Path(f"{directory}/spy-{pid}.txt")
            if path.exists():
                stacks += parse_raw(path)
                if options.keep:
                    Path(options.keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, Path(options.keep) / path.name)
        summarize(stacks)
    return 0


if __name__ == "__main__":
    sys.exit(main())

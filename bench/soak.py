"""Soak run: mixed merchant and webhook traffic against gunicorn, with a fault every few minutes.

Not a test: it prints figures and never fails on time. Everything runs on 127.0.0.1: the adapter
under `gunicorn 'app:create_app()'` with the repository's gunicorn.conf.py (2 gevent workers, each
with its in-app dispatcher) and a threaded sink playing the fulfillment service.

`--clients` threads (4) each walk orders through their life: create an order, request its
fulfillment, then as the service accept it, ship it and send a message, and list orders, as a
merchant and a service would: an answer of 503 or none at all is retried with the same body (a
webhook keeps its webhook-id) for up to 30 s. Every `--fault-every` seconds (120) one fault, in
turn:

- `kill`: kill -9 one gunicorn worker (the master boots another; its claimed messages are
  taken over);
- `lock` (SQLite): another connection holds the write lock (`BEGIN EXCLUSIVE`) for
  `--lock-seconds` (8), beyond the 5 s busy timeout;
- `disk` (SQLite): the database's filesystem, a tmpfs mounted for the run (needs root; skipped
  otherwise), is filled with a ballast file for `--disk-seconds` (10), then the file is removed;
- `restart` (`--database postgresql`): the private PostgreSQL cluster is restarted.

Every `--report-seconds` (30) a row: requests, answers by class, webhooks acknowledged, messages
delivered to the sink and resent, each worker's RSS. At the end: acknowledged webhooks against
those stored, the outbox drained, overlapping sends, and on SQLite `PRAGMA integrity_check`.

    python bench/soak.py                          # 10 minutes on SQLite
    python bench/soak.py --minutes 3 --fault-every 40
    python bench/soak.py --database postgresql    # a private cluster (PostgreSQL server binaries)
"""

import argparse
import contextlib
import errno
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import _common as c
import psycopg2
import requests

from tests.stress.procs import (
    PrivateCluster,
    Remote,
    Server,
    Sink,
    _environ,
    make_secret,
    outbox_rows,
    postgres_bin_dir,
    wait_until,
    write_config,
)

RETRY_FOR_SECONDS = 30
MAX_FLOWS_PER_CLIENT = 100_000  # bounded in count as well as in time
SERVICE_TIMEOUT_SECONDS = 2


class Traffic:
    """Clients walking orders through their life; counts every answer."""

    def __init__(self, remote, clients, deadline):
        self.remote, self.clients, self.deadline = remote, clients, deadline
        self.lock = threading.Lock()
        self.answers = Counter()
        self.acknowledged = set()
        self.last_write_2xx = time.monotonic()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def join(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(RETRY_FOR_SECONDS + 30)

    def _count(self, kind, status):
        label = ("no answer" if status is None else "2xx" if status < 300 else "4xx" if status < 500
                 else "503" if status == 503 else "other 5xx")
        with self.lock:
            self.answers[label] += 1
            if label == "2xx" and kind != "read":
                self.last_write_2xx = time.monotonic()

    def _call(self, kind, send):
        """Send until answered other than 503 (or RETRY_FOR_SECONDS pass); return the last response."""
        give_up = time.monotonic() + RETRY_FOR_SECONDS
        pause = 0.1
        while True:
            try:
                response = send()
            except requests.RequestException:
                response = None
            self._count(kind, None if response is None else response.status_code)
            if response is not None and response.status_code != 503:
                return response
            if time.monotonic() >= give_up or self.stop.is_set():
                return response
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _webhook(self, event_type, data):
        delivery = self.remote.delivery("acme", event_type, data)
        response = self._call("webhook", lambda: self.remote.send(delivery))
        if response is not None and 200 <= response.status_code <= 299:
            with self.lock:
                self.acknowledged.add(delivery.webhook_id)
        return response

    def _client(self, number):
        for flow in range(MAX_FLOWS_PER_CLIENT):
            if self.stop.is_set() or time.monotonic() >= self.deadline:
                return
            order = {
                "external_id": f"soak-{number}-{flow}-{secrets.token_hex(4)}", "currency": "USD",
                "shipping_address": {"name": "Soak", "address1": "1 Loop Rd", "city": "Bangkok",
                                     "country_code": "TH"},
                "line_items": [{"sku": "MUG", "title": "Mug", "quantity": 2, "price": "12.50",
                                "fulfillment_service": "acme"}],
            }
            created = self._call("merchant", lambda body=order: self.remote.merchant("POST", "/orders", body))
            if created is None or created.status_code not in (200, 201):
                continue
            fo_id = created.json()["fulfillment_orders"][0]["id"]
            path = f"/fulfillment_orders/{fo_id}/fulfillment_request"
            self._call("merchant", lambda path=path: self.remote.merchant("POST", path, {"message": "soak"}))
            self._webhook("fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
            self._webhook("fulfillment_order.message", {"fulfillment_order_id": fo_id, "message": "packing"})
            self._webhook("fulfillment.created", {"fulfillment_order_id": fo_id,
                                                  "external_id": f"soak-ship-{fo_id}"})
            self._call("read", lambda: self.remote.merchant("GET", "/orders?limit=20"))


def workers_of(master_pid):
    """Return the pids of the gunicorn master's children (its workers)."""
    try:
        text = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def small_disk(size_mb):
    """Yield (folder, mounted): a tmpfs of `size_mb` when this process may mount one, else a plain folder."""
    folder = tempfile.mkdtemp(prefix="adapter-soak-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", folder],
                             capture_output=True, timeout=30).returncode == 0
    try:
        yield folder, mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", folder], capture_output=True, timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def hold_write_lock(path, seconds):
    with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        db.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        db.execute("COMMIT")


def fill_disk(folder, seconds):
    """Fill the filesystem of `folder` with a ballast file for `seconds`; return the bytes written."""
    ballast, written = Path(folder) / "ballast", 0
    try:
        with open(ballast, "wb") as out:
            for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
                with contextlib.suppress(OSError):
                    while True:
                        out.write(chunk)
                        out.flush()
                        written += len(chunk)
        time.sleep(seconds)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        time.sleep(seconds)
    finally:
        ballast.unlink(missing_ok=True)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault-every", type=float, default=120)
    parser.add_argument("--report-seconds", type=float, default=30)
    parser.add_argument("--lock-seconds", type=float, default=8)
    parser.add_argument("--disk-seconds", type=float, default=10)
    parser.add_argument("--disk-mb", type=int, default=512)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.minutes} min on {args.database}, "
          f"{args.clients} clients, {args.workers} workers, a fault every {args.fault_every:.0f} s",
          flush=True)
    with contextlib.ExitStack() as stack:
        disk, mounted = stack.enter_context(small_disk(args.disk_mb))
        if args.database == "postgresql":
            if postgres_bin_dir() is None:
                sys.exit("--database postgresql needs the PostgreSQL server binaries (initdb, pg_ctl)")
            os.chmod(disk, 0o755)
            cluster = PrivateCluster(f"{disk}/pg").init().start()
            stack.callback(cluster.close)
            url, faults = cluster.url, ["kill", "restart"]
        else:
            cluster = None
            url = f"sqlite:///{disk}/adapter.db"
            faults = ["kill", "lock", "disk"] if mounted else ["kill", "lock"]
            if not mounted:
                print("not allowed to mount a tmpfs: the disk fault is left out", flush=True)
        run(args, stack, disk, url, faults, cluster)


def run(args, stack, disk, url, faults, cluster=None):
    sink = stack.enter_context(Sink())
    token, secret = f"soak-{secrets.token_hex(8)}", make_secret()
    logs = Path(tempfile.mkdtemp(prefix="adapter-soak-logs-"))
    config = write_config(logs / "adapter.toml",
                          {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": secret,
                                    "timeout_seconds": SERVICE_TIMEOUT_SECONDS}},
                          outbox={"poll_seconds": 0.5})
    # Every worker must sign admin sessions with one key (a PostgreSQL deployment insists).
    os.environ.setdefault("ADMIN_SECRET_KEY", secrets.token_hex(32))
    started = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "init-db"], cwd=c.REPO,
                             env=_environ(config, url, [token]), capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        sys.exit(f"flask init-db failed: {started.stderr.strip()}")
    server = Server(config, url, token, logs / "gunicorn.log", workers=args.workers).wait_ready()
    stack.callback(server.stop)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    traffic = Traffic(Remote(server.base_url, token, {"acme": secret}), args.clients, deadline).start()
    print(f"{'t (s)':>6} {'requests':>8} {'2xx':>6} {'4xx':>5} {'503':>5} {'5xx':>4} {'no ans':>6} "
          f"{'acked':>6} {'sent':>6} {'resent':>6}  worker RSS (MB)  fault", flush=True)
    next_report, next_fault = started + args.report_seconds, started + args.fault_every
    fault_index, fault_note = 0, ""
    recoveries = []
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_fault and now + 20 < deadline:
            kind = faults[fault_index % len(faults)]
            fault_index += 1
            fault_note = inject(kind, server, url, disk, args, traffic, cluster, recoveries)
            next_fault = time.monotonic() + args.fault_every
        if time.monotonic() >= next_report:
            print(row(time.monotonic() - started, traffic, sink, server, fault_note), flush=True)
            fault_note = ""
            next_report += args.report_seconds
        time.sleep(0.2)
    traffic.join()
    print(row(time.monotonic() - started, traffic, sink, server, "traffic stopped"), flush=True)
    drained = wait_until(lambda: {s for (s,) in outbox_rows(url, "status")} <= {"delivered"}, 120, 0.5)
    summary(traffic, sink, url, drained, recoveries, server)


def inject(kind, server, url, disk, args, traffic, cluster, recoveries):
    """Inject one fault; return a note for the report, after the writes answered 2xx again."""
    began = time.monotonic()
    if kind == "kill":
        victim = workers_of(server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in workers_of(server.pid)
                   and len(workers_of(server.pid)) == args.workers, 60)
        note = f"kill -9 worker {victim}: replaced in {time.monotonic() - began:.1f} s"
    elif kind == "lock":
        hold_write_lock(url[len("sqlite:///"):], args.lock_seconds)
        note = f"write lock held {args.lock_seconds:.0f} s"
    elif kind == "disk":
        written = fill_disk(disk, args.disk_seconds)
        note = f"disk full {args.disk_seconds:.0f} s ({written >> 20} MB ballast)"
    else:
        cluster.restart()
        note = f"PostgreSQL restarted in {time.monotonic() - began:.1f} s"
    ended = time.monotonic()
    back = wait_until(lambda: traffic.last_write_2xx > ended, 60, 0.05)
    recovery = traffic.last_write_2xx - ended if back else None
    recoveries.append((kind, recovery))
    return f"{note}; writes 2xx again {c.fmt(recovery, ' s', 2)} after"


def row(elapsed, traffic, sink, server, note):
    with traffic.lock:
        answers, acked = Counter(traffic.answers), len(traffic.acknowledged)
    rss = " ".join(c.fmt(rss_mb(pid), "", 0) for pid in workers_of(server.pid))
    return (f"{elapsed:6.0f} {sum(answers.values()):8d} {answers['2xx']:6d} {answers['4xx']:5d} "
            f"{answers['503']:5d} {answers['other 5xx']:4d} {answers['no answer']:6d} {acked:6d} "
            f"{len({r.webhook_id for r in sink.ok_receipts()}):6d} {sink.resends():6d}  {rss:15s}  {note}")


def summary(traffic, sink, url, drained, recoveries, server):
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30)) as db:
            stored = {webhook_id for (webhook_id,) in db.execute("SELECT webhook_id FROM webhook_receipt")}
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    else:
        with contextlib.closing(psycopg2.connect(url)) as db, db.cursor() as cursor:
            cursor.execute("SELECT webhook_id FROM webhook_receipt")
            stored = {webhook_id for (webhook_id,) in cursor.fetchall()}
        integrity = "n/a (PostgreSQL)"
    lost = traffic.acknowledged - stored
    statuses = Counter(status for (status,) in outbox_rows(url, "status"))
    log = server.log_tail(10_000_000)
    print(f"acknowledged webhooks {len(traffic.acknowledged)}, stored {len(traffic.acknowledged & stored)}, "
          f"lost {len(lost)}")
    print(f"outbox {dict(statuses)} ({'drained' if drained else 'NOT drained within 120 s'}); "
          f"sends {len(sink.snapshot())}, resends (same webhook-id) {sink.resends()}, "
          f"overlapping sends {len(sink.overlapping())}")
    print(f"answers {dict(traffic.answers)}")
    print("recovery (fault over -> next 2xx write): "
          + ", ".join(f"{kind} {c.fmt(seconds, ' s', 2)}" for kind, seconds in recoveries))
    print(f"integrity_check: {integrity}; server log: {log.count('Traceback')} tracebacks, "
          f"{log.count('taking over')} take-overs, {log.count('the store is unavailable')} "
          f"dispatcher 'store unavailable' lines")


if __name__ == "__main__":
    main()

"""Shared helpers of the benchmark scripts: stores, servers, signed deliveries, load generators.

Every server started here listens on 127.0.0.1 only, and every load loop is bounded both in
count (a finite list of requests) and in time (a deadline).
"""

import base64
import contextlib
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse, urlunparse

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
BIN = Path(sys.executable).parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

def _exit_on_sigterm(signum, frame):
    # `timeout` and Ctrl-C alike: unwind, so the servers, sinks and databases of the run are
    # stopped and dropped by their context managers (they run in sessions of their own).
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

TOKEN = "bench-token-0123456789"
SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789-abcdefgh").decode()
LOOPBACK = "127.0.0.1"
WRK_INSTALL = "apt-get update && apt-get install -y wrk"


# ---- small things ---------------------------------------------------------------------------

def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def percentile(values, p):
    """Return the p-th percentile (0-100) of `values` by nearest rank, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value, unit="", digits=1):
    """Format a number or None for a table."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def rfc3339_now():
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_id():
    return secrets.token_hex(4)


# ---- the machine ----------------------------------------------------------------------------

def machine_description(database_url=None):
    """Return a dict describing the machine and the software versions the figures depend on."""
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as file:
        for line in file:
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        info["postgresql"] = postgres_version(database_url)
    return info


def print_machine(database_url=None):
    info = machine_description(database_url)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    return info


def postgres_version(url):
    import psycopg2

    with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


# ---- stores ---------------------------------------------------------------------------------

def is_postgres_url(url):
    return bool(url) and url.startswith(("postgresql://", "postgres://"))


@contextlib.contextmanager
def bench_database(url, directory, name="bench"):
    """Yield a database URL for one run, and remove the store afterwards.

    Without `url` (or with a `sqlite:///` one) the store is a new SQLite file in `directory`.
    With a `postgresql://.../DBNAME` URL the script creates DBNAME on that server (refusing
    to touch one that already exists) and drops it at the end.
    """
    if not url or url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):] if url else f"{directory}/{name}.db"
        if url and Path(path).exists():
            raise SystemExit(f"{path} exists already; give a new file (it is deleted at the end)")
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(path + suffix)
        return
    if not is_postgres_url(url):
        raise SystemExit(f"--database must be sqlite:///... or postgresql://..., not {url!r}")
    import psycopg2

    parsed = urlparse(url)
    dbname = parsed.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", dbname or ""):
        raise SystemExit("give the PostgreSQL URL a new database name (lower case), e.g. "
                         "postgresql://postgres@127.0.0.1:5432/bench_tmp")
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cursor.fetchone():
                raise SystemExit(f"database {dbname} exists already; the bench creates and drops "
                                 "its own, so name a new one")
            cursor.execute(f"CREATE DATABASE {dbname}")
        try:
            yield url
        finally:
            with contextlib.suppress(Exception):
                from adapter import store

                if store.database.obj is not None and hasattr(store.database.obj, "close_all"):
                    store.database.obj.close_all()
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    finally:
        admin.close()


def count_rows(url, sql, params=()):
    """Run one counting query on the store with a plain connection; return the first column."""
    if is_postgres_url(url):
        import psycopg2

        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return cursor.fetchone()[0]
    with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30)) as conn:
        return conn.execute(sql, params).fetchone()[0]


def execute(url, sql, params=()):
    """Run one writing statement on the store with a plain connection and commit it."""
    if is_postgres_url(url):
        import psycopg2

        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            conn.commit()
        return
    with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30)) as conn:
        conn.execute(sql, params)
        conn.commit()


def query_rows(url, sql, params=()):
    if is_postgres_url(url):
        import psycopg2

        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall()
    with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


# ---- configuration --------------------------------------------------------------------------

def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_config(path, services, *, in_app_dispatcher=False, outbox=None, extra=None):
    """Write an ADAPTER_CONFIG file: the given services, the sandbox disabled."""
    lines = ["[outbox]", f"in_app_dispatcher = {toml_value(in_app_dispatcher)}"]
    for key, value in (outbox or {}).items():
        lines.append(f"{key} = {toml_value(value)}")
    for table, values in (extra or {}).items():
        lines.append(f"\n[{table}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    lines.append("\n[services.sandbox]\nenabled = false")
    for key, values in services.items():
        lines.append(f"\n[services.{key}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return str(path)


def adapter_env(database_url, config_path):
    env = dict(os.environ)
    # PostgreSQL deployments need one admin key for every host (SPEC 8); SQLite makes its own.
    env.update(DATABASE_URL=database_url, ADAPTER_CONFIG=str(config_path), MERCHANT_API_TOKENS=TOKEN,
               ADMIN_SECRET_KEY="bench-admin-key-0123456789abcdef")
    env.pop("FLASK_DEBUG", None)
    return env


def make_inprocess_app(database_url, config_path):
    """Return the adapter app in this process with the bench configuration."""
    os.environ.update(adapter_env(database_url, config_path))
    from app import create_app

    return create_app()


# ---- servers --------------------------------------------------------------------------------

SERVERS = ("sync", "gthread", "gevent", "waitress")


def gunicorn_args(worker_class, workers, threads):
    """-w, and -k unless `worker_class` is None (then the config file's, or gunicorn's sync)."""
    args = ["-w", str(workers)] + (["-k", worker_class] if worker_class else [])
    if worker_class == "gthread":
        args += ["--threads", str(threads)]
    return args


def describe_gunicorn(worker_class, workers, threads):
    if worker_class == "waitress":
        return f"waitress-serve --threads {threads}"
    text = f"gunicorn -w {workers}" + (f" -k {worker_class}" if worker_class else "")
    return text + (f" --threads {threads}" if worker_class == "gthread" else "")


class Server:
    """A gunicorn (or other) server process on 127.0.0.1, stopped on exit."""

    def __init__(self, name, argv, env, log_path, port, health_path="/healthz", cwd=REPO):
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path, self.health_path, self.cwd = log_path, health_path, cwd
        self.process = None

    @property
    def base_url(self):
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout=60):
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited at start; see {self.log_path}:\n"
                                 + Path(self.log_path).read_text()[-2000:])
            try:
                requests.get(self.base_url + self.health_path, timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not answer within {timeout} s; see {self.log_path}")

    def worker_pids(self):
        """Return the pids of the master's children (gunicorn workers)."""
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def empty_gunicorn_conf(directory, worker_class="sync"):
    """A gunicorn config file with nothing in it, so ./gunicorn.conf.py is not read.

    For gevent it makes psycopg2 cooperative, as the repository's gunicorn.conf.py does: without
    it one PostgreSQL query stops every greenlet of the worker.
    """
    path = Path(directory) / f"gunicorn_empty_{worker_class}.conf.py"
    text = "# bench: no settings beyond the command line\n"
    if worker_class == "gevent":
        text += ("def post_fork(server, worker):\n"
                 "    from psycogreen.gevent import patch_psycopg\n\n"
                 "    patch_psycopg()\n")
    path.write_text(text)
    return str(path)


def gunicorn_server(name, app_spec, env, directory, worker_class="sync", workers=2, threads=4,
                    conf=None, health_path="/healthz", extra_args=()):
    """The app under gunicorn with `worker_class` (sync, gthread, gevent; None: the one `conf`
    sets), or under waitress."""
    port = free_port()
    if worker_class == "waitress":
        return waitress_server(name, app_spec, env, directory, port, threads, health_path, extra_args)
    argv = [str(BIN / "gunicorn"), "-c", conf or empty_gunicorn_conf(directory, worker_class),
            "-b", f"{LOOPBACK}:{port}", *gunicorn_args(worker_class, workers, threads),
            "--timeout", "60", "--graceful-timeout", "10", *extra_args, app_spec]
    return Server(name, argv, env, Path(directory) / f"{name}.log", port, health_path)


def waitress_server(name, app_spec, env, directory, port, threads, health_path, extra_args):
    """The app under waitress (one process, `threads` threads; it must be importable, e.g. from
    PYTHONPATH): gunicorn's `--pythonpath DIR` becomes PYTHONPATH, `factory()` becomes `--call`."""
    env = dict(env)
    args = list(extra_args)
    if "--pythonpath" in args:
        at = args.index("--pythonpath")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args[at + 1], env.get("PYTHONPATH")]))
        del args[at:at + 2]
    call = []
    if app_spec.endswith("()"):
        app_spec, call = app_spec[:-2], ["--call"]
    argv = [sys.executable, "-m", "waitress", f"--listen={LOOPBACK}:{port}", f"--threads={threads}",
            *args, *call, app_spec]
    return Server(name, argv, env, Path(directory) / f"{name}.log", port, health_path)


def rss_kib(pid):
    """Return VmRSS of a process in KiB from /proc/<pid>/status, or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# ---- deliveries -----------------------------------------------------------------------------

def signed_headers(secret, webhook_id, body, when=None):
    from standardwebhooks import Webhook

    when = when or datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, when, body.decode("utf-8")),
    }


def webhook_body(event_type, data):
    return json.dumps({"type": event_type, "timestamp": rfc3339_now(), "data": data},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_delivery(service, secret, webhook_id, event_type, data, when=None):
    """Return a request tuple (method, path, headers, body) for a signed webhook delivery."""
    body = webhook_body(event_type, data)
    headers = {"Content-Type": "application/json", **signed_headers(secret, webhook_id, body, when)}
    return ("POST", f"/webhooks/{service}", headers, body)


def lane_of(request, number):
    """A request's lane: its 5th item when it has one, else its position."""
    return request[4] if len(request) > 4 else number


def split_lanes(requests_list, parts):
    """Split into `parts` lists, each in list order, one lane always in one part."""
    slices = [[] for _ in range(parts)]
    for number, request in enumerate(requests_list):
        slices[lane_of(request, number) % parts].append(request)
    return slices


def raw_request(request, port):
    """Serialise (method, path, headers, body) as HTTP/1.1 bytes for wrk."""
    method, path, headers, body = request
    head = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + (body or b"")


# ---- load generators ------------------------------------------------------------------------

WRK_LUA = r"""
-- Written by bench/_common.py. Replays pre-built raw requests, one file per wrk thread.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  cycle = args[2] == "cycle"
  local f = assert(io.open(prefix .. tid .. ".req", "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    reqs[#reqs + 1] = data:sub(nl + 1, nl + len)
    pos = nl + 1 + len
  end
  n = #reqs
  idx = 0
  sent = 0
  exhausted = 0
  filler = "GET /bench-exhausted HTTP/1.1\r\nHost: " .. args[3] .. "\r\n\r\n"
  -- wrk calls request() once on thread 0 before it connects, to check that the request parses;
  -- that call gets the first request without using it up, or it would never be sent.
  verifying = tid == 0
end

function request()
  if verifying then
    verifying = false
    return reqs[1] or filler
  end
  idx = idx + 1
  if idx > n then
    if cycle and n > 0 then
      idx = 1
    else
      -- Bounded in count: this thread stops; the filler is never awaited or counted.
      exhausted = 1
      wrk.thread:stop()
      return filler
    end
  end
  sent = sent + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local total_sent, total_exhausted = 0, 0
  for _, t in ipairs(threads) do
    total_sent = total_sent + t:get("sent")
    total_exhausted = total_exhausted + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"completed": %d, "duration_us": %d, "sent": %d, "threads_exhausted": %d, ' ..
    '"status_errors": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, total_sent, total_exhausted, e.status, e.connect,
    e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def wrk_path():
    return shutil.which("wrk")


class LoadResult(dict):
    """Figures of one load run: rps, latency percentiles in ms, counts."""

    def line(self, label):
        return (f"{label:<34} {fmt(self['rps'], '', 0):>7} req/s  p50 {fmt(self['p50_ms'], ' ms', 2):>9}"
                f"  p99 {fmt(self['p99_ms'], ' ms', 2):>9}  2xx {self['ok']:>7,}  "
                f"errors {self['errors']:>4}  ({self['generator']}, {self['seconds']:.1f} s)")


def run_load(base_url, requests_list, *, connections=8, duration=10.0, cycle=False,
             generator="auto", directory=None, wrk_threads=2):
    """Send the requests (method, path, headers, body) with `connections` concurrent clients.

    Bounded in count (each request at most once unless `cycle`) and in time (`duration`).
    `generator` is `wrk`, `python` or `auto` (wrk when installed).
    """
    if generator == "auto":
        generator = "wrk" if wrk_path() else "python"
    if generator == "wrk":
        if not wrk_path():
            raise SystemExit(f"wrk is not installed ({WRK_INSTALL}); use --generator python")
        return _run_wrk(base_url, requests_list, connections, duration, cycle, directory,
                        wrk_threads)
    return _run_python(base_url, requests_list, connections, duration, cycle)


def _run_wrk(base_url, requests_list, connections, duration, cycle, directory, threads):
    threads = max(1, min(threads, connections))
    port = urlparse(base_url).port
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        prefix = f"{tmp}/t"
        files = [open(f"{prefix}{i}.req", "wb") for i in range(threads)]  # noqa: SIM115 - closed below
        # Each thread replays its share in list order; a request with a lane (5th item) goes to
        # thread `lane % threads`, so requests of one lane are never sent out of order.
        for number, request in enumerate(requests_list):
            raw = raw_request(request[:4], port)
            files[lane_of(request, number) % threads].write(f"{len(raw)}\n".encode() + raw)
        for file in files:
            file.close()
        script = Path(tmp) / "replay.lua"
        script.write_text(WRK_LUA)
        argv = [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{duration:.0f}s",
                "--timeout", "10s", "-s", str(script), base_url, "--", prefix,
                "cycle" if cycle else "stop", f"{LOOPBACK}:{port}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    match = re.search(r"BENCH_JSON (\{.*\})", done.stdout)
    if not match:
        raise SystemExit(f"wrk failed: {done.stdout}\n{done.stderr}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return LoadResult(
        generator="wrk",
        seconds=seconds,
        completed=raw["completed"],
        ok=raw["completed"] - raw["status_errors"],
        errors=raw["status_errors"] + socket_errors,
        status_errors=raw["status_errors"],
        socket_errors=socket_errors,
        sent=raw["sent"],
        exhausted=raw["threads_exhausted"] > 0,
        rps=raw["completed"] / seconds if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        statuses={},
    )


def _python_worker(args):
    """One load process: `len(slices)` threads, each with its own requests.Session."""
    base_url, slices, deadline, cycle = args
    import requests

    results = []
    lock = threading.Lock()

    def client(items):
        latencies, statuses, errors, sent = [], {}, 0, 0
        session = requests.Session()
        position = 0
        while time.time() < deadline and items:
            if position >= len(items):
                if not cycle:
                    break
                position = 0
            method, path, headers, body = items[position][:4]
            position += 1
            sent += 1
            began = time.perf_counter()
            try:
                response = session.request(method, base_url + path, headers=headers, data=body,
                                           timeout=10)
                latencies.append((time.perf_counter() - began) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            except requests.RequestException:
                errors += 1
        with lock:
            results.append((latencies, statuses, errors, sent))

    workers = [threading.Thread(target=client, args=(items,)) for items in slices]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def _run_python(base_url, requests_list, connections, duration, cycle):
    processes = min(2, connections)
    slices = split_lanes(requests_list, connections)
    per_process = [slices[p::processes] for p in range(processes)]
    began = time.time()
    deadline = began + duration
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        parts = pool.map(_python_worker, [(base_url, s, deadline, cycle) for s in per_process])
    seconds = time.time() - began
    latencies, statuses, errors, sent = [], {}, 0, 0
    for part in parts:
        for lat, st, err, snt in part:
            latencies += lat
            errors += err
            sent += snt
            for code, count in st.items():
                statuses[code] = statuses.get(code, 0) + count
    ok = sum(count for code, count in statuses.items() if 200 <= code <= 299)
    completed = sum(statuses.values())
    return LoadResult(
        generator="python",
        seconds=seconds,
        completed=completed,
        ok=ok,
        errors=errors + completed - ok,
        status_errors=completed - ok,
        socket_errors=errors,
        sent=sent,
        exhausted=sent >= len(requests_list) and not cycle,
        rps=completed / seconds if seconds else 0.0,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies) if latencies else None,
        statuses=statuses,
    )


# ---- merchant API helpers -------------------------------------------------------------------

def wait_quiet(url, sql, params=(), settle=2.0, limit=60.0):
    """Wait until a count has not changed for three reads `settle` seconds apart (requests in
    flight when the load stopped are still being applied, some of them waiting up to SQLite's
    5 s busy timeout for the write lock); return it. Bounded by `limit` s."""
    deadline = time.monotonic() + limit
    last, same = count_rows(url, sql, params), 0
    while time.monotonic() < deadline and same < 2:
        time.sleep(settle)
        now = count_rows(url, sql, params)
        same = same + 1 if now == last else 0
        last = now
    return last


def api_session():
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    return session


def create_orders(base_url, count, payload_of, request_fulfillment=False, clients=4, deadline_s=600):
    """Create `count` orders through the merchant API (and request fulfillment of their service FOs).

    Returns a list of (order_id, [service fo ids]). Runs `clients` threads; bounded by `deadline_s`.
    """
    results = [None] * count
    deadline = time.monotonic() + deadline_s
    failures = []

    def work(indices):
        session = api_session()
        for index in indices:
            if time.monotonic() > deadline:
                return
            response = session.post(base_url + "/orders", json=payload_of(index), timeout=30)
            if response.status_code not in (200, 201):
                failures.append(response.text[:300])
                continue
            order = response.json()
            fos = [fo["id"] for fo in order["fulfillment_orders"] if fo["service"]]
            if request_fulfillment:
                for fo_id in fos:
                    answer = session.post(f"{base_url}/fulfillment_orders/{fo_id}/fulfillment_request",
                                          json={"message": "bench"}, timeout=30)
                    if answer.status_code != 200:
                        failures.append(answer.text[:300])
            results[index] = (order["id"], fos)

    threads = [threading.Thread(target=work, args=(range(i, count, clients),)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} order preparations failed, e.g. {failures[0]}")
    return [r for r in results if r is not None]

"""Process-level test tools: a recording sink, servers and workers in process groups of their own,
databases of their own, a TCP proxy that can drop PostgreSQL, and signed webhooks over real HTTP.

Everything listens on or connects to loopback only. Every wait is bounded.
"""

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import requests
from standardwebhooks import Webhook

from adapter import settings as core_settings
from adapter import store
from adapter.models import OutboxMessage

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
LOOPBACK = "127.0.0.1"
NEEDS_POSTGRES = "needs TEST_DATABASE_URL (PostgreSQL) — set it to run this test"


def make_secret():
    """Return a fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def free_port():
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05):
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---- the sink: plays every fulfillment service and records what it was sent -------------------


@dataclass
class Receipt:
    """One POST the sink received: who sent what, and when it started and ended (monotonic)."""

    path: str
    webhook_id: str
    headers: dict
    body: str
    start: float
    end: float
    status: int

    @property
    def envelope(self):
        return json.loads(self.body)


class QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print a traceback when a sender dies mid-connection."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Sink:
    """A threaded loopback HTTP server that records every POST and answers 200 (or as `answer` says).

    `answer(receipt_so_far, attempt)` may return a status code to answer instead of 200; `attempt`
    counts earlier receipts of the same webhook-id (0 for the first).
    """

    def __init__(self, answer=None, delay_seconds=0.0):
        self.answer = answer
        self.delay_seconds = delay_seconds
        self.receipts = []
        self._lock = threading.Lock()
        self._seen = Counter()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real service would offer

            def do_POST(self):
                start = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = raw.decode("utf-8", errors="replace")
                webhook_id = self.headers.get("webhook-id", "")
                if len(raw) < length:
                    # The sender died mid-request: a service would not store this. Keep the interval
                    # (it was in flight) with status 0, and answer nothing.
                    self.close_connection = True
                    with sink._lock:
                        sink.receipts.append(Receipt(self.path, webhook_id, dict(self.headers.items()),
                                                     body, start, time.monotonic(), 0))
                    return
                with sink._lock:
                    attempt = sink._seen[webhook_id]
                    sink._seen[webhook_id] += 1
                status = 200
                if sink.answer is not None:
                    status = sink.answer(self.path, webhook_id, body, attempt) or 200
                try:
                    if sink.delay_seconds:
                        time.sleep(sink.delay_seconds)
                    payload = b'{"ok": true}' if status < 300 else b'{"error": "sink says no"}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the sender died while we answered
                finally:
                    # Recorded even if the sender vanished mid-answer: the service got the message.
                    receipt = Receipt(self.path, webhook_id, dict(self.headers.items()), body, start,
                                      time.monotonic(), status)
                    with sink._lock:
                        sink.receipts.append(receipt)

            def log_message(self, format, *args):
                pass

        self.server = QuietServer((LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="sink", daemon=True)

    def url(self, path="/"):
        return f"http://{LOOPBACK}:{self.port}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def snapshot(self):
        """Return a copy of the receipts so far."""
        with self._lock:
            return list(self.receipts)

    def ok_receipts(self):
        return [r for r in self.snapshot() if 200 <= r.status <= 299]

    def sends_per_id(self):
        """Return {webhook-id: number of times it was received}."""
        return Counter(r.webhook_id for r in self.snapshot())

    def resends(self):
        """Return how many receipts repeat a webhook-id received before."""
        return sum(count - 1 for count in self.sends_per_id().values())

    def overlapping(self):
        """Return the webhook-ids received while another receipt of the same id was in flight."""
        by_id = defaultdict(list)
        for receipt in self.snapshot():
            by_id[receipt.webhook_id].append(receipt)
        overlaps = []
        for webhook_id, receipts in by_id.items():
            receipts.sort(key=lambda r: r.start)
            for earlier, later in zip(receipts, receipts[1:], strict=False):
                if later.start < earlier.end:
                    overlaps.append((webhook_id, earlier.start, earlier.end, later.start))
        return overlaps


# ---- configuration, stores --------------------------------------------------------------------


def write_config(path, services, *, outbox=None):
    """Write an ADAPTER_CONFIG TOML file with `services` {key: {workflow, url, secret, ...}}."""
    lines = ["[services.sandbox]", "enabled = false", ""]
    for key, table in services.items():
        lines.append(f"[services.{key}]")
        lines.extend(f"{name} = {json.dumps(value)}" for name, value in table.items())
        lines.append("")
    if outbox:
        lines.append("[outbox]")
        lines.extend(f"{name} = {json.dumps(value)}" for name, value in outbox.items())
        lines.append("")
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return str(path)


@contextlib.contextmanager
def postgres_database(prefix):
    """Create a PostgreSQL database of our own next to TEST_DATABASE_URL; drop it WITH (FORCE) after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        base, _, _ = POSTGRES_URL.rpartition("/")
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@contextlib.contextmanager
def store_url(tmp_path, prefix):
    """Yield this test's store: a PostgreSQL database of its own with TEST_DATABASE_URL, else SQLite."""
    if POSTGRES_URL:
        with postgres_database(prefix) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path}/adapter.db"


@contextlib.contextmanager
def restored_binding():
    """Let a test bind the core to a store of its own; close it and put the previous binding back after."""
    previous_db, previous_settings = store.database.obj, core_settings._current
    try:
        yield
    finally:
        current = store.database.obj
        if current is not None and current is not previous_db:
            getattr(current, "close_all", current.close)()
        store.bind(previous_db)
        core_settings.configure(previous_settings)


def outbox_statuses(database_url):
    """Count the outbox rows per status, read straight from the store (no adapter code involved)."""
    query = f"SELECT status, COUNT(*) FROM {OutboxMessage._meta.table_name} GROUP BY status"
    if database_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(database_url[len("sqlite:///"):], timeout=10)) as db:
            return Counter(dict(db.execute(query).fetchall()))
    with contextlib.closing(psycopg2.connect(database_url)) as db, db.cursor() as cursor:
        cursor.execute(query)
        return Counter(dict(cursor.fetchall()))


def outbox_rows(database_url, *columns):
    """Return the outbox rows as tuples of `columns`, in id order, read straight from the store."""
    query = f"SELECT {', '.join(columns)} FROM {OutboxMessage._meta.table_name} ORDER BY id"
    if database_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(database_url[len("sqlite:///"):], timeout=10)) as db:
            return db.execute(query).fetchall()
    with contextlib.closing(psycopg2.connect(database_url)) as db, db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


# ---- processes in groups of their own ----------------------------------------------------------


def _environ(config_path, database_url, tokens=()):
    env = dict(os.environ)
    env.pop("TEST_DATABASE_URL", None)
    env.update(
        ADAPTER_CONFIG=str(config_path),
        DATABASE_URL=database_url,
        MERCHANT_API_TOKENS=",".join(tokens),
        PYTHONUNBUFFERED="1",
    )
    return env


class Group:
    """A child process started in a session (and process group) of its own, with its output in a file."""

    def __init__(self, argv, env, log_path):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 — closed in wait()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def log_tail(self, chars=4000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self):
        """SIGKILL every process of the group at once (a crash: no handler runs)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(15)

    def stop(self, timeout=20):
        """SIGTERM the group, then SIGKILL it if it is still there after `timeout` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
        return self.wait(15)

    def wait(self, timeout):
        try:
            code = self.process.wait(timeout)
        finally:
            self._log.close()
        # Orphaned members of the group (gunicorn workers) die with the signal; wait until the
        # group is empty so a restart never overlaps with them.
        wait_until(lambda: not _group_exists(self.pid), 10)
        return code


def _group_exists(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Server(Group):
    """`gunicorn -w N 'app:create_app()'` on a free loopback port, from the project root."""

    def __init__(self, config_path, database_url, token, log_path, workers=2):
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"{LOOPBACK}:{self.port}",
                "--timeout", "60", "--graceful-timeout", "5", "app:create_app()"]
        super().__init__(argv, _environ(config_path, database_url, [token]), log_path)

    def wait_ready(self, timeout=60):
        """Wait until /healthz answers 200 from the server; fail with its log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"gunicorn did not become ready in {timeout} s:\n{self.log_tail()}")


def start_server(config_path, database_url, token, log_path, workers=2):
    """Start gunicorn and wait until it answers; return the Server."""
    server = Server(config_path, database_url, token, log_path, workers)
    try:
        return server.wait_ready()
    except BaseException:
        server.kill()
        raise


def start_outbox_worker(config_path, database_url, log_path):
    """Start `flask --app app outbox work` in a group of its own."""
    argv = [sys.executable, "-m", "flask", "--app", "app", "outbox", "work"]
    return Group(argv, _environ(config_path, database_url), log_path)


# ---- talking to a running server ----------------------------------------------------------------


def envelope(event_type, data):
    """Return a webhook body (text) for `event_type`."""
    return json.dumps(
        {"type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": data},
        ensure_ascii=False,
    )


def signature_headers(secret, webhook_id, body):
    """Return Standard Webhooks headers for `body`, signed now."""
    at = datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
        "Content-Type": "application/json",
    }


@dataclass
class Delivery:
    """A webhook as a service sends it: same id and body on every retry, a fresh signature each time."""

    service: str
    webhook_id: str
    body: str
    event_type: str
    data: dict


class Remote:
    """Merchant API calls and signed webhooks against a running server, one session per thread."""

    def __init__(self, base_url, token, service_secrets, timeout=30):
        self.base_url = base_url
        self.token = token
        self.secrets = service_secrets
        self.timeout = timeout
        self._local = threading.local()

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def merchant(self, method, path, body=None, token=None):
        headers = {"Authorization": f"Bearer {token or self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        return self._session().request(method, self.base_url + path, data=data, headers=headers,
                                       timeout=self.timeout)

    def get(self, path):
        response = self.merchant("GET", path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def delivery(self, service, event_type, data, webhook_id=None):
        """Prepare a delivery (not sent yet)."""
        return Delivery(service, webhook_id or f"msg_{secrets.token_hex(10)}",
                        envelope(event_type, data), event_type, data)

    def send(self, delivery):
        """POST a delivery, signed now."""
        headers = signature_headers(self.secrets[delivery.service], delivery.webhook_id, delivery.body)
        return self._session().post(f"{self.base_url}/webhooks/{delivery.service}",
                                    data=delivery.body.encode(), headers=headers, timeout=self.timeout)

    def webhook(self, service, event_type, data, webhook_id=None):
        return self.send(self.delivery(service, event_type, data, webhook_id))


def race(*calls, timeout=60):
    """Start every call at the same moment on a thread of its own; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results, failures = [None] * len(calls), []

    def run(index, call):
        try:
            barrier.wait(timeout=timeout)
            results[index] = call()
        except BaseException as exc:  # reported below, as the test's failure
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    assert not failures, failures
    return results


# ---- a TCP proxy that can make PostgreSQL disappear --------------------------------------------


class TcpProxy:
    """Forward a loopback port to `target`; `drop()` closes every connection and stops listening."""

    def __init__(self, target_host, target_port, port=None):
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._listener = None
        self._sockets = set()
        self._lock = threading.Lock()
        self._thread = None

    def start(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, listener):
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink):
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop(self):
        """Stop listening and cut every forwarded connection (the database 'goes away')."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def postgres_bin_dir():
    """Return the folder of the installed PostgreSQL server binaries, or None."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


NEEDS_POSTGRES_BINARIES = "needs the PostgreSQL server binaries (initdb, pg_ctl) to run a private cluster"


class PrivateCluster:
    """A PostgreSQL cluster of the test's own, in a temporary folder on a free loopback port.

    Faults (stop, restart) are injected here, never into the shared server the rest of the suite
    uses. The server refuses to run as root, so as root it runs as the `postgres` user.
    """

    def __init__(self, folder):
        self.bin = postgres_bin_dir()
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _run(self, *args, timeout=60):
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def init(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", str(self.folder)], check=True)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        return self

    def _options(self):
        return (f"-p {self.port} -k {self.folder} -c listen_addresses={LOOPBACK} "
                "-c fsync=off -c max_connections=60")

    def start(self):
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.folder / "server.log"), "-w", "-t", "30", "start")
        return self

    def stop(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def restart(self):
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.folder / "server.log"), "-m", "fast", "-w", "-t", "30", "restart")

    def close(self):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop()


@contextlib.contextmanager
def private_cluster(folder):
    """Yield a started PrivateCluster; stop it afterwards whatever happened."""
    cluster = PrivateCluster(folder).init().start()
    try:
        yield cluster
    finally:
        cluster.close()

"""The recommended serving set-up (SPEC 1, 5): `gunicorn 'app:create_app()'` with gunicorn.conf.py.

A real server process on loopback, on the suite's store (SQLite, or PostgreSQL with
TEST_DATABASE_URL). Stalled clients never stop others from being served; headers up to 32 KB
reach the app; what gunicorn refuses on its own is a 4xx problem+json; a configuration error
stops the start with one line instead of rebooting workers forever. Every wait is bounded.
"""

import contextlib
import json
import secrets
import socket
import sys
import time

import pytest
import requests

from .procs import (
    LOOPBACK,
    ROOT,
    Group,
    Remote,
    _environ,
    free_port,
    make_secret,
    start_server,
    store_url,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.stress

TOKEN = f"serving-token-{secrets.token_hex(8)}"
SECRET = make_secret()
STALLED = 64
ANSWER_WITHIN_SECONDS = 1.0
SPEC_CODES = {"unauthorized", "not_found", "malformed_json", "validation_failed",
              "unsupported_media_type", "payload_too_large", "signature_invalid",
              "invalid_transition", "order_locked", "idempotency_conflict", "over_fulfillment",
              "method_not_allowed", "store_unavailable"}
HALF_REQUESTS = {
    "half-request-line": b"POST /webhooks/acme HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
    "half-body": (b"POST /webhooks/acme HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 4096\r\n\r\n{" + b" " * 2047),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The adapter under the repository's gunicorn.conf.py, with one service and one order."""
    tmp = tmp_path_factory.mktemp("serving")
    with store_url(tmp, "stress_serving") as url:
        config = write_config(tmp / "adapter.toml", {"acme": {
            "workflow": "new", "url": f"http://{LOOPBACK}:9/hooks", "secret": SECRET,
            "timeout_seconds": 1}}, outbox={"in_app_dispatcher": False})
        running = start_server(config, url, TOKEN, tmp / "gunicorn.log")
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def remote(server):
    return Remote(server.base_url, TOKEN, {"acme": SECRET}, timeout=ANSWER_WITHIN_SECONDS)


@pytest.fixture(scope="module")
def fo_id(server):
    body = {"external_id": f"serving-{secrets.token_hex(6)}", "currency": "USD",
            "email": "somchai@example.com",
            "shipping_address": {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
                                 "country_code": "TH"},
            "line_items": [{"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "12.50",
                            "fulfillment_service": "acme"}]}
    response = Remote(server.base_url, TOKEN, {}).merchant("POST", "/orders", body)
    assert response.status_code == 201, response.text
    return response.json()["fulfillment_orders"][0]["id"]


def raw_exchange(port, data, timeout=5.0):
    """Send raw bytes on a new connection; return (status, headers, body) of the answer."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", headers.get("content-length", "0")))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_problem(status, headers, body, expected_status, expected_code=None):
    assert status == expected_status, body
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert set(problem) >= {"type", "title", "status", "detail", "code"}
    assert problem["status"] == expected_status
    assert problem["code"] in SPEC_CODES
    if expected_code:
        assert problem["code"] == expected_code
    return problem


@contextlib.contextmanager
def stalled(port, half, count):
    """`count` connections that each sent `half` of a request and then stopped."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((LOOPBACK, port), timeout=5)
            sock.sendall(half)
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("half", list(HALF_REQUESTS.values()), ids=list(HALF_REQUESTS))
def test_stalled_clients_do_not_stop_healthz_or_webhooks(server, remote, fo_id, half):
    with stalled(server.port, half, STALLED):
        for number in range(5):
            began = time.monotonic()
            health = requests.get(server.base_url + "/healthz", timeout=ANSWER_WITHIN_SECONDS)
            assert health.status_code == 200
            webhook = remote.webhook("acme", "fulfillment_order.message",
                                     {"fulfillment_order_id": fo_id, "message": f"still here {number}"})
            assert webhook.status_code == 200, webhook.text
            assert time.monotonic() - began < 2 * ANSWER_WITHIN_SECONDS


@pytest.mark.parametrize(("size", "other"), [(20 * 1024, 0), (32 * 1024, 0), (32 * 1024, 31 * 1024)],
                         ids=["20KB", "32KB", "32KB-and-31KB-more-64KB-in-all"])
def test_oversized_signature_header_reaches_the_app_and_gets_401(server, size, other):
    body = b'{"type": "fulfillment_order.message", "data": {}}'
    signature = ("v1," + "A" * size)[:size]
    extra = f"X-Trace: {'b' * other}\r\n" if other else ""
    request = (f"POST /webhooks/acme HTTP/1.1\r\nHost: {LOOPBACK}\r\nContent-Type: application/json\r\n"
               f"webhook-id: msg_big\r\nwebhook-timestamp: {int(time.time())}\r\n{extra}"
               f"webhook-signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    assert_problem(*raw_exchange(server.port, request), 401, "signature_invalid")


REFUSED = {
    "raw-utf8-query": ("GET /orders?service=ก HTTP/1.1\r\nHost: h\r\n\r\n".encode(), 400),
    "control-char-in-header": (b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Note: a\x01b\r\n\r\n", 400),
    "header-over-32KB": (b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
    "request-line-over-8KB": (b"GET /orders?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
    "unknown-transfer-coding": (b"POST /orders HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: zip\r\n\r\n", 400),
    "garbage-request-line": (b"HELLO\r\n\r\n", 400),
    "unknown-expectation": (
        b"POST /orders HTTP/1.1\r\nHost: h\r\nExpect: x\r\nContent-Length: 2\r\n\r\n{}", 417),
}


@pytest.mark.parametrize(("request_bytes", "status"), list(REFUSED.values()), ids=list(REFUSED))
def test_what_gunicorn_refuses_is_a_4xx_problem(server, request_bytes, status):
    problem = assert_problem(*raw_exchange(server.port, request_bytes), status)
    assert problem["detail"]


def test_raw_utf8_query_is_told_to_percent_encode(server):
    answer = raw_exchange(server.port, "GET /orders?service=ก HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert "percent-encode" in assert_problem(*answer, 400)["detail"]


def gunicorn_group(tmp_path, env_extra, name, port=0):
    """`gunicorn 'app:create_app()'` with nothing but the repository's gunicorn.conf.py."""
    env = _environ(tmp_path / "none.toml", f"sqlite:///{tmp_path}/a.db")
    env.pop("ADAPTER_CONFIG")
    env.update(env_extra)
    argv = [sys.executable, "-m", "gunicorn", "-b", f"{LOOPBACK}:{port}", "app:create_app()"]
    return Group(argv, env, tmp_path / name)


def test_configuration_error_under_gunicorn_exits_quickly_with_one_line(tmp_path):
    config = tmp_path / "adapter.toml"
    config.write_text("[nonsense]\nkey = 1\n")
    group = gunicorn_group(tmp_path, {"ADAPTER_CONFIG": str(config), "MERCHANT_API_TOKENS": TOKEN},
                           "bad.log")
    try:
        code = group.process.wait(20)
    except BaseException:
        group.kill()
        raise
    group.wait(5)
    log = group.log_tail()
    assert code != 0
    errors = [line for line in log.splitlines() if "configuration error" in line]
    assert len(errors) == 1, log
    assert str(config) in errors[0] and "nonsense" in errors[0]
    assert "Booting worker" not in log and "Traceback" not in log


def test_no_tokens_under_gunicorn_warns_once_and_401_says_why(tmp_path):
    port = free_port()
    group = gunicorn_group(tmp_path, {"MERCHANT_API_TOKENS": ""}, "tokens.log", port)
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        # Each of the two workers answers some of these, so both have loaded the app.
        assert wait_until(lambda: healthy(base_url), 30), group.log_tail()
        answers = [requests.get(base_url + "/orders", headers={"Authorization": "Bearer guess"},
                                timeout=5) for _ in range(6)]
    finally:
        group.stop()
    log = group.log_tail()
    assert log.count("no merchant API tokens are configured") == 1, log
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json()["detail"] == "no merchant API tokens are configured; set MERCHANT_API_TOKENS"


def healthy(base_url):
    with contextlib.suppress(requests.RequestException):
        return requests.get(base_url + "/healthz", timeout=2).status_code == 200
    return False


SPEC9_FIELDS = {"time", "level", "logger", "message"}
NO_TOKENS_WARNING = "no merchant API tokens are configured (MERCHANT_API_TOKENS"
GUNICORN_LINES = ("Starting gunicorn", "Listening at", "Using worker", "Booting worker with pid",
                  "Invalid request from ip=", "Handling signal: term", "Worker exiting",
                  "Shutting down: Master")


def served_and_stopped(tmp_path, log_format):
    """Run gunicorn without merchant tokens, serve a request, refuse one, stop; return its output lines."""
    port = free_port()
    group = gunicorn_group(tmp_path, {"MERCHANT_API_TOKENS": "", "LOG_FORMAT": log_format},
                           f"{log_format}.log", port)
    try:
        assert wait_until(lambda: healthy(f"http://{LOOPBACK}:{port}"), 30), group.log_tail()
        assert_problem(*raw_exchange(port, REFUSED["control-char-in-header"][0]), 400)
    finally:
        group.stop()
    return [line for line in group.log_path.read_text(errors="replace").splitlines() if line.strip()]


def json_object(line):
    """The JSON object on `line`, or None when the line is not one."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def test_every_line_under_gunicorn_is_a_json_object_gunicorns_own_too(tmp_path):
    lines = served_and_stopped(tmp_path, "json")
    assert [line for line in lines if json_object(line) is None] == []
    written = [json_object(line) for line in lines]
    assert all(set(line) >= SPEC9_FIELDS for line in written), lines
    gunicorn = [line for line in written if line["logger"] == "gunicorn.error"]
    for text in GUNICORN_LINES:
        assert any(line["message"].startswith(text) for line in gunicorn), (text, lines)
    (refused,) = [line for line in gunicorn if line["message"].startswith("Invalid request from ip=")]
    assert refused["level"] == "warning"
    (warned,) = [line for line in written if line["message"].startswith(NO_TOKENS_WARNING)]
    assert (warned["logger"], warned["level"]) == ("adapter", "warning")
    assert any(line["logger"] == "adapter.http" and line["route"] == "/healthz" for line in written)


def test_log_format_text_under_gunicorn_makes_gunicorns_own_lines_text_too(tmp_path):
    lines = served_and_stopped(tmp_path, "text")
    assert [line for line in lines if json_object(line) is not None] == []
    for text in GUNICORN_LINES:
        assert any(f" gunicorn.error: {text}" in line for line in lines), (text, lines)
    assert any(" WARNING gunicorn.error: Invalid request from ip=" in line for line in lines), lines
    assert sum(f" WARNING adapter: {NO_TOKENS_WARNING}" in line for line in lines) == 1, lines


def test_store_that_refuses_the_start_under_gunicorn_halts_instead_of_rebooting(tmp_path):
    (tmp_path / "not-a-database").mkdir()
    group = gunicorn_group(tmp_path, {"DATABASE_URL": f"sqlite:///{tmp_path}/not-a-database",
                                      "MERCHANT_API_TOKENS": TOKEN}, "store.log")
    try:
        code = group.process.wait(30)
    except BaseException:
        group.kill()
        raise
    group.wait(5)
    log = group.log_tail()
    assert code != 0
    assert log.count("Booting worker") <= 2, log  # the two first workers, never a third
    assert 1 <= log.count("cannot open the database") <= 2, log
    # No trace of the adapter's code. (When both workers fail at once, gunicorn 27's arbiter
    # prints a HaltServer traceback of its own while it halts.)
    assert str(ROOT / "adapter") not in log and str(ROOT / "app.py") not in log

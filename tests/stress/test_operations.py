"""Operations over real processes (SPEC 9): metrics summed over gunicorn's workers, gauges reported
once, one log line per request and per outbox attempt, and the outbox worker's metrics port.

Loopback only; every wait is bounded.
"""

import json
import re
import secrets
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .procs import (
    LOOPBACK,
    Group,
    Sink,
    _environ,
    free_port,
    make_secret,
    start_server,
    store_url,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.stress

TOKEN = "ops-merchant-token-0123456789"
METRICS_TOKEN = "ops-metrics-token-" + secrets.token_hex(8)
ORDERS = 3
WORKER_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def samples(base_url):
    """Scrape /metrics; return {(name, (label, value)...): value}."""
    response = requests.get(base_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                            timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def json_lines(path):
    """The log's JSON lines."""
    lines = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def order_body(n):
    return {"external_id": f"ops-{n}", "currency": "USD",
            "line_items": [{"sku": "A", "title": "Mug", "quantity": 1, "price": "10.00",
                            "fulfillment_service": "acme"}]}


def sink_answer(path, webhook_id, body, attempt):
    """The first try of each message gets a 503, the next a 200."""
    return 503 if attempt == 0 else 200


def get_orders(base_url, request_id):
    # A connection per request, so the requests spread over the workers.
    response = requests.get(base_url + "/orders", timeout=30, headers={
        "Authorization": f"Bearer {TOKEN}", "X-Request-Id": request_id, "Connection": "close"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == request_id


def test_metrics_add_up_over_workers_and_the_log_has_a_line_per_request_and_attempt(tmp_path, monkeypatch):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Left by an earlier run: the start must clear it, or the scrape would fail on it.
    (metrics_dir / "counter_999999.db").write_bytes(b"stale, not a metrics file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    monkeypatch.setenv("METRICS_TOKEN", METRICS_TOKEN)
    log_path = tmp_path / "gunicorn.log"
    with Sink(answer=sink_answer) as sink, store_url(tmp_path, "stress_ops") as url:
        config = write_config(
            tmp_path / "adapter.toml",
            {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": make_secret(),
                      "timeout_seconds": 5}},
            outbox={"retry_schedule": [0, 0.2, 0.2], "poll_seconds": 0.1},
        )
        server = start_server(config, url, TOKEN, log_path, workers=2)
        try:
            assert not (metrics_dir / "counter_999999.db").exists()
            base = server.base_url
            assert requests.get(base + "/metrics", timeout=10).status_code == 401
            session = requests.Session()
            merchant = {"Authorization": f"Bearer {TOKEN}"}
            for n in range(ORDERS):
                created = session.post(base + "/orders", json=order_body(n), headers=merchant, timeout=30)
                assert created.status_code == 201, created.text
                fo_id = created.json()["fulfillment_orders"][0]["id"]
                requested = session.post(f"{base}/fulfillment_orders/{fo_id}/fulfillment_request", json={},
                                         headers=merchant, timeout=30)
                assert requested.status_code == 200, requested.text
            # Concurrent batches on fresh connections until both workers have answered some.
            sent = []

            def pids():
                return {WORKER_FILE.match(p.name).group(1) for p in metrics_dir.iterdir()
                        if WORKER_FILE.match(p.name)}

            deadline = time.monotonic() + 60
            while (len(pids()) < 2 or len(sent) < 40) and time.monotonic() < deadline:
                batch = [f"ops-{len(sent) + i}" for i in range(10)]
                threads = [threading.Thread(target=get_orders, args=(base, rid)) for rid in batch]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(30)
                sent.extend(batch)
            assert len(pids()) >= 2, f"only one worker answered: {sorted(pids())}"
            assert wait_until(lambda: len(sink.ok_receipts()) >= ORDERS, 60), sink.snapshot()

            key = ("adapter_http_requests_total", ("method", "GET"), ("route", "/orders"), ("status", "200"))
            attempts = ("adapter_outbox_attempts_total", ("outcome", "delivered"), ("service", "acme"),
                        ("type", "fulfillment_request.submitted"))
            retries = (attempts[0], ("outcome", "retry"), *attempts[2:])
            pending = ("adapter_outbox_messages", ("service", "acme"), ("state", "pending"))
            # Each scrape is answered by whichever worker; every one sums them all.
            assert wait_until(lambda: samples(base).get(attempts) == ORDERS, 20)
            for _ in range(6):
                scraped = samples(base)
                assert scraped[key] == len(sent)
                assert scraped[attempts] == ORDERS and scraped[retries] == ORDERS
                timed = ("adapter_outbox_attempt_duration_seconds_count", ("service", "acme"))
                assert scraped[timed] == 2 * ORDERS
                assert [k for k in scraped if k[0] == "adapter_outbox_messages" and ("service", "acme") in k
                        and ("state", "pending") in k] == [pending]
                assert scraped[("adapter_fulfillment_orders_needing_attention",)] == 0
                assert ("adapter_outbox_oldest_pending_age_seconds", ("service", "acme")) in scraped
        finally:
            server.stop()
        receipts = sink.snapshot()

    lines = json_lines(log_path)
    requests_logged = Counter(line["request_id"] for line in lines
                              if line.get("logger") == "adapter.http" and line.get("route") == "/orders"
                              and line.get("method") == "GET")
    assert {rid: requests_logged[rid] for rid in sent} == dict.fromkeys(sent, 1)
    attempt_lines = [line for line in lines if "outbox_message_id" in line]
    assert len(attempt_lines) == len(receipts) == 2 * ORDERS
    assert Counter(line["request_id"] for line in attempt_lines) == Counter(
        receipt.headers.get("X-Request-Id") for receipt in receipts)
    assert Counter((line["outcome"], line["status"]) for line in attempt_lines) == {
        ("retry", 503): ORDERS, ("delivered", 200): ORDERS}
    assert all({"outbox_message_id", "service", "type", "outcome", "status"} <= set(line)
               for line in attempt_lines)


def test_the_outbox_worker_serves_its_metrics_on_a_port_of_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with Sink() as sink, store_url(tmp_path, "stress_ops_worker") as url:
        config = write_config(
            tmp_path / "adapter.toml",
            {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": make_secret()}},
            outbox={"in_app_dispatcher": False, "poll_seconds": 0.1},
        )
        port = free_port()
        env = {**_environ(config, url, [TOKEN]), "METRICS_TOKEN": METRICS_TOKEN}
        argv = [sys.executable, "-m", "flask", "--app", "app", "outbox", "work", "--metrics-port", str(port)]
        server = start_server(config, url, TOKEN, tmp_path / "gunicorn.log", workers=1)
        worker = Group(argv, env, tmp_path / "worker.log")
        try:
            base = f"http://{LOOPBACK}:{port}"
            assert wait_until(lambda: _answers(base + "/metrics"), 30), worker.log_tail()
            assert requests.get(base + "/metrics", timeout=10).status_code == 401
            assert requests.get(base + "/metrics", headers={"Authorization": "Bearer nope"},
                                timeout=10).status_code == 401
            assert requests.get(base + "/other", timeout=10).status_code == 404
            merchant = {"Authorization": f"Bearer {TOKEN}"}
            created = requests.post(server.base_url + "/orders", json=order_body(0), headers=merchant,
                                    timeout=30)
            fo_id = created.json()["fulfillment_orders"][0]["id"]
            assert requests.post(f"{server.base_url}/fulfillment_orders/{fo_id}/fulfillment_request", json={},
                                 headers=merchant, timeout=30).status_code == 200
            assert wait_until(lambda: len(sink.ok_receipts()) == 1, 30)
            delivered = ("adapter_outbox_attempts_total", ("outcome", "delivered"), ("service", "acme"),
                         ("type", "fulfillment_request.submitted"))
            assert wait_until(lambda: samples(base).get(delivered) == 1, 10)
            assert samples(base)[("adapter_outbox_messages", ("service", "acme"), ("state", "pending"))] == 0
        finally:
            worker.stop()
            server.stop()


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 401
    except requests.RequestException:
        return False

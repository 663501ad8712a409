"""A full disk under a running SQLite server (SPEC 1, 5): 503, nothing acknowledged lost, no corruption.

The database lives on a small tmpfs mounted for the test (it needs root to mount one; without it
the test skips and says so). Webhooks and merchant requests are sent until the disk is full; every
answer is 2xx, 4xx or 503. Then the tmpfs is grown ("space returns"): the server recovers by itself,
every delivery it acknowledged is stored (a resend replays it), every fulfillment request message it
committed is delivered, and `PRAGMA integrity_check` says ok. The time to recover is printed (`-s`).
"""

import contextlib
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter

import pytest
import requests

from adapter import dispatcher, store
from adapter.errors import StoreUnavailable

from .procs import (
    Remote,
    Sink,
    make_secret,
    outbox_rows,
    start_server,
    wait_until,
    write_config,
)
from .test_processes import init_db, new_order

pytestmark = pytest.mark.stress

DISK_BYTES = 3 * 1024 * 1024
SENDERS = 4
NOTE = "ข้อความ " * 400  # about 9 KB of UTF-8 per webhook: the disk fills in a few hundred
FULL_FOR_SECONDS = 2.0  # keep sending this long once every answer is 503
SEND_LIMIT = 5000  # bounded whatever happens
RECOVERY_BOUND_SECONDS = 10


def report(text):
    print(f"\n[stress] {text}", flush=True)


@contextlib.contextmanager
def small_disk(size):
    """Mount a tmpfs of `size` bytes in a temporary folder; yield (folder, grow); unmount after."""
    folder = tempfile.mkdtemp(prefix="adapter-disk-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"needs to mount a small tmpfs (root): {mounted.stderr.strip()}")

    def grow(new_size):
        subprocess.run(["mount", "-o", f"remount,size={new_size}", folder], check=True, timeout=30)

    try:
        yield folder, grow
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True, timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_full_disk_answers_503_keeps_what_it_acknowledged_and_recovers(tmp_path):
    token, secret = f"stress-token-{secrets.token_hex(8)}", make_secret()
    with Sink() as sink, small_disk(DISK_BYTES) as (disk, grow):
        url = f"sqlite:///{disk}/adapter.db"
        config = write_config(
            tmp_path / "adapter.toml",
            {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": secret, "timeout_seconds": 2}},
            outbox={"poll_seconds": 0.2},
        )
        init_db(config, url)
        server = start_server(config, url, token, tmp_path / "gunicorn.log")
        try:
            remote = Remote(server.base_url, token, {"acme": secret}, timeout=30)
            order_id, fo_id, _ = new_order(remote)
            requested = remote.merchant("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request", {})
            assert requested.status_code == 200, requested.text
            lock, statuses, acknowledged, deliveries = threading.Lock(), [], [], []
            requests_2xx, last_2xx = [fo_id], [time.monotonic()]
            stop = threading.Event()

            def send(sender):
                for number in range(SEND_LIMIT // SENDERS):
                    if stop.is_set():
                        return
                    note = {"fulfillment_order_id": fo_id, "message": f"{sender}-{number} {NOTE}"}
                    delivery = remote.delivery("acme", "fulfillment_order.message", note)
                    answers = [remote.send(delivery).status_code]
                    if number % 10 == sender:  # merchant writes too: a new order and its request
                        answers.append(merchant_request(remote, requests_2xx, lock))
                    with lock:
                        deliveries.append(delivery)
                        statuses.extend(answers)
                        if 200 <= answers[0] <= 299:
                            acknowledged.append(delivery)
                        if any(200 <= status <= 299 for status in answers):
                            last_2xx[0] = time.monotonic()

            senders = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(SENDERS)]
            for thread in senders:
                thread.start()
            full = wait_until(lambda: statuses.count(503) >= 20
                              and time.monotonic() - last_2xx[0] > FULL_FOR_SECONDS, 120, interval=0.1)
            health_when_full = requests.get(server.base_url + "/healthz", timeout=10).status_code
            stop.set()
            for thread in senders:
                thread.join(60)
            assert full, f"the disk never filled: {Counter(statuses)}; {shutil.disk_usage(disk)}"
            assert all(200 <= s <= 299 or 400 <= s <= 499 or s == 503 for s in statuses), set(statuses)
            sent_when_full = len(deliveries)

            grow("64m")
            space_back = time.monotonic()
            probe = remote.delivery("acme", "fulfillment_order.message",
                                    {"fulfillment_order_id": fo_id, "message": "space is back"})
            recovered = wait_until(lambda: remote.send(probe).status_code == 200, RECOVERY_BOUND_SECONDS,
                                   interval=0.05)
            recovery = time.monotonic() - space_back
            assert recovered, f"no 2xx within {RECOVERY_BOUND_SECONDS} s of space returning"

            # Every acknowledged delivery is stored: its resend replays the original answer.
            for delivery in acknowledged:
                again = remote.send(delivery)
                assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true", (
                    delivery.webhook_id, again.status_code, again.text)
            timeline = remote.get(f"/orders/{order_id}/timeline")
            told = [event["message"] for event in timeline if event["kind"] == "fulfillment_order.message"]
            assert len(told) == len(set(told)), "a delivery was applied twice"
            assert {d.data["message"] for d in acknowledged} <= set(told)

            # Every committed request message reaches the service.
            def all_delivered():
                return {status for (status,) in outbox_rows(url, "status")} == {"delivered"}

            assert wait_until(all_delivered, 60, interval=0.2), outbox_rows(url, "status")
            sent_for = {r.envelope["data"]["fulfillment_order"]["id"] for r in sink.ok_receipts()
                        if r.envelope["type"] == "fulfillment_request.submitted"}
            assert set(requests_2xx) <= sent_for, sorted(set(requests_2xx) - sent_for)
        finally:
            server.stop()
        log = (tmp_path / "gunicorn.log").read_text(errors="replace")
        with contextlib.closing(sqlite3.connect(f"{disk}/adapter.db")) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        report(
            f"full disk ({DISK_BYTES // 1024} KB tmpfs): {sent_when_full} webhooks sent, "
            f"{len(acknowledged)} acknowledged, {statuses.count(503)} answered 503 (no other 5xx), "
            f"/healthz {health_when_full} while full; first 2xx {recovery:.2f} s after space returned; "
            f"all {len(acknowledged)} acknowledged replayed, {len(requests_2xx)} request messages delivered; "
            f"integrity ok; {log.count('the store is unavailable')} dispatcher warnings, "
            f"{log.count('Traceback')} tracebacks in the log"
        )


def merchant_request(remote, requested, lock):
    """Create an order and request its fulfillment; remember it when the request was acknowledged."""
    created = remote.merchant("POST", "/orders", {
        "external_id": f"disk-{secrets.token_hex(8)}", "currency": "USD",
        "line_items": [{"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "12.50",
                        "fulfillment_service": "acme"}],
    })
    if created.status_code != 201:
        return created.status_code
    fo_id = created.json()["fulfillment_orders"][0]["id"]
    answer = remote.merchant("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request", {})
    if answer.status_code == 200:
        with lock:
            requested.append(fo_id)
    return answer.status_code


def full_commit_then_failed_rollback():
    """Return what peewee meets when a COMMIT fails on a full disk: the failed ROLLBACK, caused by it."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.execute("CREATE TABLE filler (data BLOB)")
        db.execute("PRAGMA max_page_count = 2")  # the disk is full from here on
        try:
            db.execute("INSERT INTO filler VALUES (zeroblob(100000))")
        except sqlite3.OperationalError:
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("the database did not fill")


FULL = "the store is unavailable (database or disk is full)"


@pytest.mark.parametrize(("make_error", "level", "traceback", "says"), [
    (lambda: StoreUnavailable("busy"), "WARNING", False, "the store is unavailable (busy)"),
    (full_commit_then_failed_rollback, "WARNING", False, FULL),
    (lambda: ValueError("a bug"), "ERROR", True, "outbox dispatcher for acme failed; trying again"),
], ids=["store unavailable", "full disk behind a failed rollback", "anything else"])
def test_the_dispatcher_logs_one_line_while_the_store_is_away_and_a_traceback_otherwise(
    caplog, make_error, level, traceback, says
):
    error = make_error()
    if isinstance(error, sqlite3.Error):
        # The full disk is the ROLLBACK failure's context, as inside peewee's transaction.
        assert error.__context__ is not None and store.is_unavailable(error)
    with caplog.at_level("WARNING", logger="adapter.dispatcher"):
        dispatcher._log_failure("outbox dispatcher for acme", error)
    (record,) = caplog.records
    assert record.levelname == level and says in record.getMessage()
    assert (record.exc_info is not None) is traceback

"""A store that is locked or gone (README errors, SPEC 4.2 "retry 5xx later"): 503, never 500, no half change.

- SQLite locked beyond its busy timeout (another connection holds `BEGIN EXCLUSIVE`): a webhook and
  a merchant write answer 503 `store_unavailable` with `Retry-After`; after the lock is released
  the same webhook-id applies normally, as if it had never been seen.
- PostgreSQL unreachable: nothing listens on the store's port, or the database vanishes under a
  running app (a TCP proxy in front of it is cut): /healthz, a webhook and the merchant API answer
  503; once it is back, the app recovers without a restart.

These tests build apps of their own (the SQLite one even when TEST_DATABASE_URL is set) and put
the suite's store binding back afterwards.
"""

import sqlite3
import threading
import time
from urllib.parse import urlparse

import pytest
from conftest import SECRETS, Api, app_on, fo_of, order_payload

from .procs import (
    NEEDS_POSTGRES,
    POSTGRES_URL,
    TcpProxy,
    envelope,
    free_port,
    postgres_database,
    race,
    restored_binding,
    signature_headers,
    wait_until,
)

pytestmark = pytest.mark.stress

BUSY_TIMEOUT_SECONDS = 5  # adapter.store.SQLITE_BUSY_TIMEOUT_MS
# A webhook may wait out the busy timeout twice: applying it, then keeping the refused delivery.
LOCKED_CALL_BOUND_SECONDS = 4 * BUSY_TIMEOUT_SECONDS


@pytest.fixture
def own_binding():
    """Let the test bind the core to a store of its own; put the suite's binding back after."""
    with restored_binding():
        yield


def post_webhook(app, webhook_id, body):
    """POST a signed delivery through a test client of its own; return (response, seconds)."""
    started = time.monotonic()
    response = app.test_client().post(
        "/webhooks/acme", data=body.encode(), headers=signature_headers(SECRETS["acme"], webhook_id, body)
    )
    return response, time.monotonic() - started


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_store_unavailable(response, what):
    assert response.status_code == 503, (what, response.status_code, response.get_data(as_text=True))
    assert response.headers["Content-Type"].startswith("application/problem+json"), what
    assert response.get_json()["code"] == "store_unavailable", (what, response.get_json())
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit() and int(retry_after) > 0, (what, dict(response.headers))


def submitted_fo(api):
    created = api.post("/orders", order_payload())
    assert created.status_code == 201, created.body
    fo_id = fo_of(created.body, "acme")["id"]
    requested = api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {})
    assert requested.status_code == 200, requested.body
    return created.body["id"], fo_id


def test_sqlite_locked_beyond_the_busy_timeout_answers_503_and_applies_nothing(tmp_path, own_binding):
    path = tmp_path / "locked.db"
    app = app_on(f"sqlite:///{path}")
    api = Api(app.test_client())
    order_id, fo_id = submitted_fo(api)
    webhook_id = "msg_locked_store_1"
    body = envelope("fulfillment_request.accepted", {"fulfillment_order_id": fo_id, "message": "on it"})
    intake = order_payload(external_id="locked-intake-1")

    blocker = sqlite3.connect(path, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        webhook, merchant_write, read = race(
            lambda: post_webhook(app, webhook_id, body),
            lambda: timed(lambda: Api(app.test_client()).post("/orders", intake)),
            lambda: timed(lambda: Api(app.test_client()).get(f"/orders/{order_id}")),
            timeout=LOCKED_CALL_BOUND_SECONDS * 3,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    (webhook, webhook_seconds), (merchant_write, write_seconds), (read, _) = webhook, merchant_write, read
    assert_store_unavailable(webhook, "webhook")
    assert_store_unavailable(merchant_write, "POST /orders")
    assert read.status_code in (200, 503), read.get_data(as_text=True)  # a WAL reader is not blocked
    assert BUSY_TIMEOUT_SECONDS - 0.5 <= webhook_seconds <= LOCKED_CALL_BOUND_SECONDS, webhook_seconds
    assert BUSY_TIMEOUT_SECONDS - 0.5 <= write_seconds <= LOCKED_CALL_BOUND_SECONDS, write_seconds

    # Nothing of either request was applied.
    fo = api.get(f"/fulfillment_orders/{fo_id}").body
    assert (fo["status"], fo["request_status"]) == ("in_progress", "submitted"), fo
    kinds = [event["kind"] for event in api.get(f"/orders/{order_id}/timeline").body]
    assert "fulfillment_request.accepted" not in kinds, kinds
    assert [o["external_id"] for o in api.get("/orders").body["orders"]] == [None], "intake half-applied"

    # Released: the same webhook-id is judged afresh and applied once; the write goes through.
    again, _ = post_webhook(app, webhook_id, body)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert "Idempotent-Replayed" not in again.headers
    assert again.get_json()["fulfillment_order"]["request_status"] == "accepted"
    replay, _ = post_webhook(app, webhook_id, body)
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.data == again.data
    assert api.post("/orders", intake).status_code == 201
    kinds = [event["kind"] for event in api.get(f"/orders/{order_id}/timeline").body]
    assert kinds.count("fulfillment_request.accepted") == 1, kinds


def test_postgres_with_nothing_listening_answers_503_never_500(tmp_path, own_binding):
    """The app runs; its PostgreSQL store is pointed at a loopback port where nothing listens."""
    from adapter import store

    app = app_on(f"sqlite:///{tmp_path}/first.db")
    _, fo_id = submitted_fo(Api(app.test_client()))
    store.bind(store.open_database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"))
    assert_every_entry_point_is_503(app, fo_id, "msg_unreachable_1")


def assert_every_entry_point_is_503(app, fo_id, webhook_id):
    client, api = app.test_client(), Api(app.test_client())
    assert_store_unavailable(client.get("/healthz"), "/healthz")
    body = envelope("fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
    webhook, seconds = post_webhook(app, webhook_id, body)
    assert_store_unavailable(webhook, "webhook")
    assert seconds < 30, seconds
    assert_store_unavailable(api.get("/orders"), "GET /orders")
    assert_store_unavailable(api.post("/orders", order_payload()), "POST /orders")
    assert_store_unavailable(api.post(f"/fulfillment_orders/{fo_id}/cancel", {}), "withdraw")
    return body


def test_postgres_vanishing_under_a_running_app_answers_503_then_recovers(tmp_path, own_binding):
    if not POSTGRES_URL:
        pytest.skip(NEEDS_POSTGRES)
    with postgres_database("stress_faults") as url:
        parsed = urlparse(url)
        proxy = TcpProxy(parsed.hostname, parsed.port or 5432).start()
        try:
            userinfo = parsed.netloc.rpartition("@")[0]
            app = app_on(f"postgresql://{userinfo + '@' if userinfo else ''}127.0.0.1:{proxy.port}"
                            f"{parsed.path}")
            api = Api(app.test_client())
            order_id, fo_id = submitted_fo(api)
            assert app.test_client().get("/healthz").status_code == 200

            proxy.drop()  # pooled connections die, new ones are refused
            body = assert_every_entry_point_is_503(app, fo_id, "msg_vanished_1")

            proxy = TcpProxy(parsed.hostname, parsed.port or 5432, port=proxy.port).start()
            assert wait_until(lambda: app.test_client().get("/healthz").status_code == 200, 15)
            again, _ = post_webhook(app, "msg_vanished_1", body)
            assert again.status_code == 200, again.get_data(as_text=True)
            assert "Idempotent-Replayed" not in again.headers
            fo = api.get(f"/fulfillment_orders/{fo_id}").body
            assert (fo["status"], fo["request_status"]) == ("in_progress", "accepted"), fo
            kinds = [event["kind"] for event in api.get(f"/orders/{order_id}/timeline").body]
            assert kinds.count("fulfillment_request.accepted") == 1, kinds
        finally:
            proxy.drop()
            from adapter import store

            store.database.obj.close_all()


def test_a_lock_shorter_than_the_busy_timeout_is_waited_out(tmp_path, own_binding):
    """Deliveries racing a brief lock holder wait for it: each applies once, none is refused."""
    path = tmp_path / "contended.db"
    app = app_on(f"sqlite:///{path}")
    api = Api(app.test_client())
    fos = [submitted_fo(api) for _ in range(4)]
    bodies = {fo_id: envelope("fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
              for _, fo_id in fos}
    locked = threading.Event()

    def hold_lock_briefly():
        blocker = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(BUSY_TIMEOUT_SECONDS / 2.5)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()

    def deliver(fo_id):
        assert locked.wait(10)
        return post_webhook(app, f"msg_contended_{fo_id}", bodies[fo_id])[0]

    results = race(hold_lock_briefly, *[lambda fo_id=fo_id: deliver(fo_id) for _, fo_id in fos],
                   timeout=LOCKED_CALL_BOUND_SECONDS * 3)
    answers = results[1:]
    assert [a.status_code for a in answers] == [200] * len(fos), [a.get_data(as_text=True) for a in answers]
    for order_id, _ in fos:
        kinds = [event["kind"] for event in api.get(f"/orders/{order_id}/timeline").body]
        assert kinds.count("fulfillment_request.accepted") == 1, kinds

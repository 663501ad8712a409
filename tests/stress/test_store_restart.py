"""PostgreSQL restarting or down (SPEC 1, 5): 503 with Retry-After, never 500; nothing acknowledged lost.

Each test runs a PostgreSQL cluster of its own (initdb in a temporary folder, a free loopback port)
and injects the fault there, never into the shared server the rest of the suite uses.
"""

import contextlib
import os
import shutil
import tempfile
import threading
import time

import pytest
from conftest import SECRETS, Api, app_on, fo_of, order_payload

from .procs import (
    NEEDS_POSTGRES_BINARIES,
    envelope,
    postgres_bin_dir,
    private_cluster,
    restored_binding,
    signature_headers,
    wait_until,
)

pytestmark = [
    pytest.mark.stress,
    pytest.mark.skipif(postgres_bin_dir() is None, reason=NEEDS_POSTGRES_BINARIES),
]

RESTARTS = 3
SENDERS = 3


@pytest.fixture
def cluster_folder():
    """A folder the `postgres` user can use (pytest's own tmp folders are private to root)."""
    folder = tempfile.mkdtemp(prefix="adapter-pg-")
    os.chmod(folder, 0o755)
    with restored_binding():
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


def post_message(app, fo_id, webhook_id):
    body = envelope("fulfillment_order.message", {"fulfillment_order_id": fo_id, "message": webhook_id})
    return app.test_client().post(
        "/webhooks/acme", data=body.encode(), headers=signature_headers(SECRETS["acme"], webhook_id, body)
    )


def test_restarts_under_load_answer_503_never_500_and_lose_nothing(cluster_folder):
    with private_cluster(f"{cluster_folder}/pg") as cluster:
        app = app_on(cluster.url)
        api = Api(app.test_client())
        created = api.post("/orders", order_payload())
        assert created.status_code == 201, created.body
        order_id, fo_id = created.body["id"], fo_of(created.body, "acme")["id"]
        assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200

        statuses, acknowledged, lock = [], set(), threading.Lock()
        stop = threading.Event()

        def send(sender):
            number = 0
            while not stop.is_set():
                webhook_id = f"msg_restart_{sender}_{number}"
                # A service retries a 5xx with the same webhook-id until it is acknowledged.
                for _ in range(200):
                    status = post_message(app, fo_id, webhook_id).status_code
                    read = Api(app.test_client()).get("/orders").status_code
                    with lock:
                        statuses.extend((status, read))
                    if status == 200:
                        with lock:
                            acknowledged.add(webhook_id)
                        break
                    time.sleep(0.02)
                number += 1

        senders = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(SENDERS)]
        for thread in senders:
            thread.start()
        try:
            for _ in range(RESTARTS):
                time.sleep(0.5)
                cluster.restart()
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in senders:
                thread.join(60)

        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        assert statuses.count(200) > 0 and statuses.count(503) > 0, "the restarts were never felt"
        assert wait_until(lambda: app.test_client().get("/healthz").status_code == 200, 15)
        timeline = api.get(f"/orders/{order_id}/timeline").body
        told = [event["message"] for event in timeline if event["kind"] == "fulfillment_order.message"]
        assert acknowledged <= set(told), sorted(acknowledged - set(told))
        assert len(told) == len(set(told)), "a delivery was applied twice"
        with contextlib.suppress(Exception):
            from adapter import store

            store.database.obj.close_all()


def test_an_app_started_while_postgres_is_down_answers_503_until_it_is_back(cluster_folder):
    with private_cluster(f"{cluster_folder}/pg") as cluster:
        cluster.stop()
        started = time.monotonic()
        app = app_on(cluster.url)  # does not exit: the store is away, not misconfigured
        assert time.monotonic() - started < 30
        client, api = app.test_client(), Api(app.test_client())
        for response in (client.get("/healthz"), api.get("/orders"), api.post("/orders", order_payload())):
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.get_json()["code"] == "store_unavailable"
            assert response.headers["Retry-After"].isdigit()

        cluster.start()
        assert wait_until(lambda: client.get("/healthz").status_code == 200, 15)
        created = api.post("/orders", order_payload())
        assert created.status_code == 201, created.body
        assert api.get(f"/orders/{created.body['id']}").status_code == 200
        from adapter import store

        store.database.obj.close_all()

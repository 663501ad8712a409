"""Which store faults stop the start (SPEC 1) and which answer 503 and recover (SPEC 5)."""

import os
import subprocess
import sys
import threading
from urllib.parse import urlparse

import pytest
from conftest import POSTGRES_URL, Api, app_on, order_payload

from adapter import models, schema, store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDS_POSTGRES = "needs TEST_DATABASE_URL (PostgreSQL) — set it to run this test"


def start(database_url):
    """Run `flask init-db` against `database_url`; return the finished process."""
    env = {k: v for k, v in os.environ.items() if k not in ("ADAPTER_CONFIG", "DATABASE_URL")}
    env["DATABASE_URL"] = database_url
    env["MERCHANT_API_TOKENS"] = "a-token-for-the-start-tests"
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "init-db"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def server_of(url):
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port or 5432}"


@pytest.mark.parametrize(
    ("make_url", "says"),
    [
        (lambda server: f"postgresql://no_such_role_1f3a@{server}/postgres", 'role "no_such_role_1f3a"'),
        (lambda server: f"postgresql://postgres@{server}/no_such_database_1f3a",
         'database "no_such_database_1f3a"'),
    ],
    ids=["refused credentials", "missing database"],
)
def test_a_misconfigured_postgres_stops_the_start_with_one_line(make_url, says):
    if not POSTGRES_URL:
        pytest.skip(NEEDS_POSTGRES)
    started = start(make_url(server_of(POSTGRES_URL)))
    assert started.returncode != 0
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert lines[0].startswith("cannot open the database:") and says in lines[0], lines[0]
    assert "Traceback" not in started.stderr


def test_a_sqlite_path_that_cannot_be_opened_stops_the_start_with_one_line(tmp_path):
    (tmp_path / "a-folder.db").mkdir()
    started = start(f"sqlite:///{tmp_path}/a-folder.db")
    assert started.returncode != 0
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot open the database:"), started.stderr


def test_a_full_sqlite_disk_answers_503_keeps_everything_and_recovers(api, database_url):
    """SQLITE_FULL (a page limit stands in for a full filesystem) is a 503 with Retry-After, not a 500."""
    if database_url.startswith("postgresql"):
        pytest.skip("a SQLite fault")
    created = api.post("/orders", order_payload(external_id="before-full"))
    assert created.status_code == 201
    pages = store.database.execute_sql("PRAGMA page_count").fetchone()[0]
    store.database.execute_sql(f"PRAGMA max_page_count = {pages}")
    big = order_payload(external_id="while-full", line_items=[
        {"title": "x" * 900, "quantity": 1, "price": "1.00", "fulfillment_service": None}
        for _ in range(400)
    ])
    refused = api.post("/orders", big)
    assert refused.status_code == 503, refused.body
    assert refused.body["code"] == "store_unavailable"
    assert refused.headers["Retry-After"].isdigit()

    store.database.execute_sql("PRAGMA max_page_count = 4294967294")
    assert api.post("/orders", big).status_code == 201
    assert api.get(f"/orders/{created.body['id']}").status_code == 200
    names = [order["external_id"] for order in api.get("/orders").body["orders"]]
    assert names == ["while-full", "before-full"]
    assert store.database.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_exhausted_postgres_pool_answers_503(database_url, monkeypatch):
    """Every pooled connection busy past the wait: 503 with Retry-After, not a 500."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL fault")
    monkeypatch.setattr(store, "POOL_SIZE", 1)
    monkeypatch.setattr(store, "POOL_WAIT_SECONDS", 0.2)
    app = app_on(database_url)
    holding, release = threading.Event(), threading.Event()

    def hold_the_only_connection():
        with store.database.connection_context():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_only_connection, daemon=True)
    holder.start()
    try:
        assert holding.wait(10)
        refused = Api(app.test_client()).get("/orders")
        assert refused.status_code == 503, refused.body
        assert refused.body["code"] == "store_unavailable"
        assert refused.headers["Retry-After"].isdigit()
    finally:
        release.set()
        holder.join(10)
    assert Api(app.test_client()).get("/orders").status_code == 200
    store.database.obj.close_all()


def test_a_version_1_store_gets_amount_authorized_net_of_its_voids(api, app):
    """Version 1 kept the gross authorization on a voided order; version 2 keeps what was not voided."""
    authorized = [{"kind": "authorization", "amount": "45.50"}]
    created = api.post("/orders", order_payload(transactions=authorized))
    assert api.post(f"/orders/{created.body['id']}/transactions", {"kind": "void"}).status_code == 201
    untouched = api.post("/orders", order_payload(transactions=authorized))
    with store.database.connection_context():
        models.Order.update(authorized_minor=4550).where(models.Order.id == created.body["id"]).execute()
        models.SchemaVersion.update(version=1).execute()
    schema.create_tables()
    assert api.get(f"/orders/{created.body['id']}").body["amount_authorized"] == "0.00"
    assert api.get(f"/orders/{untouched.body['id']}").body["amount_authorized"] == "45.50"
    with store.database.connection_context():
        assert schema.stored_schema_version() == schema.SCHEMA_VERSION

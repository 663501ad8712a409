"""Shared fixtures: an app on a fresh store (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

import base64
import json
import os
import secrets
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
import responses
from standardwebhooks import Webhook

from adapter import models, schema, store
from app import create_app

TOKEN = "test-token-0123456789"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
# A PostgreSQL deployment refuses to start without a session key; every app the tests start
# (in this process or as a server process) shares this one. Tests of the key unset remove it.
os.environ.setdefault("ADMIN_SECRET_KEY", "test-admin-secret-key-" + secrets.token_hex(16))
SERVICE_URLS = {
    "acme": "https://acme.example/hooks",
    "oldco": "https://oldco.example/hooks",
    "autoship": "https://autoship.example/hooks",
}


def make_secret():
    """Return a fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


SECRETS = {key: make_secret() for key in SERVICE_URLS}


def service_config():
    """Return the services every test app knows."""
    return {
        "acme": {"workflow": "new", "url": SERVICE_URLS["acme"], "secret": SECRETS["acme"],
                 "timeout_seconds": 2},
        "oldco": {"workflow": "legacy", "url": SERVICE_URLS["oldco"], "secret": SECRETS["oldco"],
                  "timeout_seconds": 2},
        "autoship": {"workflow": "new", "url": SERVICE_URLS["autoship"],
                     "secret": SECRETS["autoship"], "auto_fulfill": True, "timeout_seconds": 2},
        "sandbox": {"enabled": False},
    }


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database of this test run's own, dropped at the end (None without TEST_DATABASE_URL)."""
    if not POSTGRES_URL:
        yield None
        return
    name = f"adapter_test_{secrets.token_hex(4)}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    base, _, _ = POSTGRES_URL.rpartition("/")
    yield f"{base}/{name}"
    store.database.obj.close_all()
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def database_url(tmp_path, postgres_url):
    """The store for one test: this run's PostgreSQL database emptied, or a new SQLite file."""
    if postgres_url:
        store.bind(store.open_database(postgres_url))
        schema.create_tables()
        tables = ", ".join(
            f'"{model._meta.table_name}"' for model in models.ALL_MODELS if model is not models.SchemaVersion
        )
        with store.database.connection_context():
            store.database.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        return postgres_url
    return f"sqlite:///{tmp_path}/adapter.db"


@pytest.fixture
def overrides(database_url):
    """Configuration overrides for the test app; a test may change them before `app` is built."""
    return {
        "database": {"url": database_url},
        "merchant": {"api_tokens": [TOKEN]},
        # One send at a time: tests read the order in which a service received the messages of
        # different FOs, which a wave of concurrent sends leaves to chance (waves: test_outbox.py).
        "outbox": {"in_app_dispatcher": False, "sends_in_flight": 1},
        "services": service_config(),
    }


def app_on(database_url):
    """Build an app of its own on `database_url`, with the test token and services, no dispatcher."""
    return create_app({
        "database": {"url": database_url},
        "merchant": {"api_tokens": [TOKEN]},
        "outbox": {"in_app_dispatcher": False, "sends_in_flight": 1},
        "services": service_config(),
    })


@pytest.fixture
def app(overrides):
    """The application, with its own store."""
    application = create_app(overrides)
    yield application
    store.database.close()


class Clock:
    """A controllable clock for the code under test."""

    def __init__(self):
        self.now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    """Freeze the request clock; `clock.advance(days=3)` moves it."""
    frozen = Clock()
    monkeypatch.setattr("handlers.parsing.utcnow", frozen)
    return frozen


class Api:
    """A merchant API client that sends the bearer token and parses JSON."""

    def __init__(self, client):
        self.client = client

    def call(self, method, path, body=None, token=TOKEN, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            kwargs["data"] = json.dumps(body, ensure_ascii=False)
            kwargs["content_type"] = "application/json"
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        response.body = response.get_json(silent=True)
        return response

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.call("PATCH", path, body, **kwargs)


@pytest.fixture
def api(app):
    """Merchant API client."""
    return Api(app.test_client())


def order_payload(**changes):
    """Return a valid order body: 2 lines at acme, 1 merchant-managed line."""
    body = {
        "email": "customer@example.com",
        "currency": "USD",
        "shipping_address": {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
                             "country_code": "TH"},
        "line_items": [
            {"sku": "TEE-1", "title": "T-shirt", "quantity": 2, "price": "10.00",
             "fulfillment_service": "acme"},
            {"sku": "MUG-1", "title": "Mug", "quantity": 1, "price": "5.50",
             "fulfillment_service": "acme"},
            {"sku": "CARD", "title": "Gift card", "quantity": 1, "price": "20.00",
             "fulfillment_service": None},
        ],
    }
    body.update(changes)
    return body


@pytest.fixture
def create_order(api):
    """Create an order through the API and return its JSON."""

    def create(**changes):
        response = api.post("/orders", order_payload(**changes))
        assert response.status_code == 201, response.body
        return response.body

    return create


def fo_of(order, service):
    """Return the order's FO for `service` (None = merchant-managed)."""
    return next(fo for fo in order["fulfillment_orders"] if fo["service"] == service)


class ServiceSide:
    """Plays a fulfillment service: signs webhooks to the app and reads what the app sent."""

    def __init__(self, client, outbound):
        self.client = client
        self.outbound = outbound

    def send(self, service, event_type, data, *, webhook_id=None, secret=None, body=None,
             timestamp=None, headers=None):
        body = body if body is not None else json.dumps(
            {"type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": data},
            ensure_ascii=False,
        )
        webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
        at = timestamp or datetime.now(UTC)
        signature = Webhook(secret or SECRETS[service]).sign(webhook_id, at, body)
        all_headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
            "Content-Type": "application/json",
            **(headers or {}),
        }
        response = self.client.post(
            f"/webhooks/{service}", data=body.encode() if isinstance(body, str) else body,
            headers=all_headers,
        )
        response.body = response.get_json(silent=True)
        return response

    def sent(self, message_type=None):
        """Return the JSON envelopes the app POSTed to services, optionally of one type."""
        envelopes = [json.loads(call.request.body) for call in self.outbound.calls]
        return [e for e in envelopes if message_type is None or e["type"] == message_type]


@pytest.fixture
def outbound():
    """Capture outbound HTTP; every service answers 200."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for url in SERVICE_URLS.values():
            mock.add(responses.POST, url, status=200)
        yield mock


@pytest.fixture
def service(app, outbound):
    """The fulfillment-service side of the conversation."""
    return ServiceSide(app.test_client(), outbound)


@pytest.fixture
def deliver(app, outbound):
    """Run the outbox dispatcher once, as a worker would; return how many messages it sent."""
    from adapter.dispatcher import Dispatcher

    def run(now=None):
        with app.app_context():
            return Dispatcher(app.extensions["adapter_settings"]).run_once(now)

    return run

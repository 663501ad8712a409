"""Svix-named signature headers (SPEC 4.2): accepted as the `webhook-*` ones, never kept, replayed re-signed.

Deliveries are signed by the `svix` library itself, so the adapter is checked against what a
service using Svix really sends.
"""

import json
import secrets
from datetime import UTC, datetime

import pytest
from conftest import SECRETS, fo_of, make_secret
from standardwebhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from adapter import recordings, schema, store
from adapter.models import WebhookDelivery
from handlers.webhooks_cli import webhooks_cli

SIGNATURE_HEADERS = {"webhook-signature", "svix-signature"}


def accepted_body(fo_id):
    """Return the raw JSON text of an accept for the FO."""
    return json.dumps({"type": "fulfillment_request.accepted", "timestamp": "2026-03-10T12:00:00Z",
                       "data": {"fulfillment_order_id": fo_id, "message": "รับแล้ว"}},
                      ensure_ascii=False)


def svix_headers(body, *, msg_id=None, secret=SECRETS["acme"], at=None):
    """Return the svix-* headers the svix library signs `body` with."""
    msg_id = msg_id or f"msg_{secrets.token_hex(8)}"
    at = at or datetime.now(UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": SvixWebhook(secret).sign(msg_id, at, body),
    }


def standard_headers(body, *, msg_id=None, secret=SECRETS["acme"]):
    """Return the webhook-* headers the standardwebhooks library signs `body` with."""
    msg_id = msg_id or f"msg_{secrets.token_hex(8)}"
    at = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": StandardWebhook(secret).sign(msg_id, at, body),
    }


def post(client, body, headers):
    """Post raw `body` text to acme's webhook URL with `headers`; the response carries `.body`."""
    response = client.post("/webhooks/acme", data=body.encode(),
                           headers={**headers, "Content-Type": "application/json"})
    response.body = response.get_json(silent=True)
    return response


@pytest.fixture
def fo_id(api, create_order):
    """An acme FO whose fulfillment was requested: an accept applies to it."""
    fo_id = fo_of(create_order(), "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    return fo_id


@pytest.fixture
def client(app, outbound):
    """A client posting webhooks as a service would."""
    return app.test_client()


def stored_deliveries():
    with store.database.connection_context():
        return list(WebhookDelivery.select().order_by(WebhookDelivery.id))


def test_a_delivery_signed_by_svix_under_svix_names_is_applied(api, client, fo_id):
    body = accepted_body(fo_id)
    headers = svix_headers(body, msg_id="msg_svix_1")
    SvixWebhook(SECRETS["acme"]).verify(body, headers)

    response = post(client, body, headers)

    assert response.status_code == 200, response.body
    assert response.body["status"] == "applied"
    assert response.body["fulfillment_order"]["request_status"] == "accepted"
    assert api.get(f"/fulfillment_orders/{fo_id}").body["request_status"] == "accepted"
    (delivery,) = stored_deliveries()
    assert delivery.webhook_id == "msg_svix_1"


def test_a_svix_redelivery_is_answered_from_memory(client, fo_id):
    body = accepted_body(fo_id)
    first = post(client, body, svix_headers(body, msg_id="msg_svix_1"))
    again = post(client, body, svix_headers(body, msg_id="msg_svix_1"))

    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body


# Each case: how the svix-* and webhook-* headers are mixed, the answer, and the webhook-id kept.
MIXED = [
    pytest.param(lambda body: {**svix_headers(body, msg_id="msg_svix", secret=make_secret()),
                               **standard_headers(body, msg_id="msg_standard")},
                 200, "msg_standard", id="good-webhook-headers-win-over-bad-svix-ones"),
    pytest.param(lambda body: {**svix_headers(body, msg_id="msg_svix"),
                               **standard_headers(body, msg_id="msg_standard", secret=make_secret())},
                 401, None, id="bad-webhook-headers-are-not-rescued-by-good-svix-ones"),
    pytest.param(lambda body: {**svix_headers(body, msg_id="msg_svix"),
                               "webhook-signature": svix_headers(body, msg_id="msg_svix")["svix-signature"]},
                 401, None, id="a-lone-webhook-signature-means-webhook-names-and-misses-webhook-id"),
    pytest.param(lambda body: {**svix_headers(body, msg_id="msg_svix"), "webhook-id": "msg_svix"},
                 401, None, id="a-lone-webhook-id-means-webhook-names-and-misses-the-signature"),
    pytest.param(lambda body: {**svix_headers(body, msg_id="msg_svix"), "webhook-timestamp": ""},
                 401, None, id="an-empty-webhook-timestamp-still-means-webhook-names"),
]


@pytest.mark.parametrize(("make_headers", "status", "kept_id"), MIXED)
def test_mixed_headers_are_judged_by_the_webhook_ones(client, fo_id, make_headers, status, kept_id):
    body = accepted_body(fo_id)

    response = post(client, body, make_headers(body))

    assert response.status_code == status, response.body
    assert [delivery.webhook_id for delivery in stored_deliveries()] == ([kept_id] if kept_id else [])


def now_unix():
    return int(datetime.now(UTC).timestamp())


# Each case: a change to correct svix-* headers (None removes one), and a word the 401 detail holds.
WRONG_SVIX = [
    pytest.param({"svix-signature": lambda headers, body: svix_headers(
        body, msg_id=headers["svix-id"], secret=make_secret())["svix-signature"]},
        "No matching signature", id="another-secret"),
    pytest.param({"svix-id": lambda headers, body: "msg_other"}, "No matching signature", id="another-id"),
    pytest.param({"svix-timestamp": lambda headers, body: str(now_unix() - 3600)}, "too old",
                 id="expired"),
    pytest.param({"svix-timestamp": lambda headers, body: str(now_unix() + 3600)}, "future",
                 id="from-the-future"),
    pytest.param({"svix-signature": lambda headers, body: "v1,!!!"}, "svix-signature", id="bad-base64"),
    pytest.param({"svix-signature": lambda headers, body: "garbage"}, "svix-signature",
                 id="not-versioned"),
    pytest.param({"svix-signature": None}, "svix-signature", id="signature-missing"),
    pytest.param({"svix-timestamp": None}, "svix-timestamp", id="timestamp-missing"),
    pytest.param({"svix-timestamp": lambda headers, body: "soon"}, "svix-timestamp",
                 id="timestamp-not-a-number"),
    pytest.param({"svix-id": None}, "svix-id", id="id-missing"),
]


@pytest.mark.parametrize(("change", "detail"), WRONG_SVIX)
def test_a_wrong_svix_signature_is_401(api, client, fo_id, change, detail):
    body = accepted_body(fo_id)
    headers = svix_headers(body)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value(headers, body)

    response = post(client, body, headers)

    assert response.status_code == 401, response.body
    assert response.body["code"] == "signature_invalid"
    assert detail in response.body["detail"]
    assert stored_deliveries() == []
    assert api.get(f"/fulfillment_orders/{fo_id}").body["request_status"] == "submitted"


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda body: svix_headers(body), id="svix-only"),
        pytest.param(lambda body: {**svix_headers(body), **standard_headers(body)}, id="both"),
        pytest.param(lambda body: standard_headers(body), id="webhook-only"),
    ],
)
def test_the_stored_delivery_keeps_neither_signature_header(client, fo_id, make_headers):
    body = accepted_body(fo_id)
    headers = make_headers(body)

    assert post(client, body, headers).status_code == 200

    (delivery,) = stored_deliveries()
    kept = set(delivery.headers)
    assert kept & SIGNATURE_HEADERS == set()
    # The id and timestamp headers stay with the delivery, under the names they came with.
    assert kept >= {name for name in headers if name not in SIGNATURE_HEADERS}


# ---- export and replay ------------------------------------------------------------------------


@pytest.fixture
def cli(app):
    """A CLI runner for the test app, with `flask webhooks` registered once."""
    if "webhooks" not in app.cli.commands:
        app.cli.add_command(webhooks_cli)
    return app.test_cli_runner()


def test_an_exported_svix_delivery_replays_into_a_fresh_store(api, cli, client, create_order, fo_id,
                                                              tmp_path):
    body = accepted_body(fo_id)
    assert post(client, body, svix_headers(body, msg_id="msg_svix_1")).status_code == 200
    before = api.get(f"/fulfillment_orders/{fo_id}").body
    exported = cli.invoke(args=["webhooks", "export"])
    assert exported.exit_code == 0, exported.output
    (record,) = [json.loads(line) for line in exported.stdout.splitlines()]
    assert record["webhook_id"] == "msg_svix_1"
    assert set(record["headers"]) & SIGNATURE_HEADERS == set()
    path = tmp_path / "svix.jsonl"
    path.write_text(exported.stdout, encoding="utf-8")
    schema.drop_tables()
    schema.create_tables()
    assert fo_of(create_order(), "acme")["id"] == fo_id
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200

    replayed = cli.invoke(args=["webhooks", "replay", str(path)])

    assert replayed.exit_code == 0, replayed.output
    after = api.get(f"/fulfillment_orders/{fo_id}").body
    assert (after["status"], after["request_status"]) == (before["status"], before["request_status"])
    (delivery,) = stored_deliveries()
    assert (delivery.webhook_id, delivery.outcome_code) == ("msg_svix_1", "applied")


def test_replay_re_signs_under_webhook_names_and_sends_no_stale_svix_header():
    body = b'{"type": "fulfillment_order.message"}'
    stale = {"svix-id": "msg_svix_1", "svix-timestamp": "1740000000", "svix-signature": "v1,c3RhbGU=",
             "content-type": "application/json", "user-agent": "Svix-Webhooks/1.0"}
    delivery = recordings.Delivery("acme", "msg_svix_1", stale, body)
    now = datetime.now(UTC).replace(tzinfo=None)

    headers = recordings.signed_headers(delivery, SECRETS["acme"], now)

    assert not [name for name in headers if name.lower().startswith("svix-")]
    assert headers["webhook-id"] == "msg_svix_1"
    assert headers["content-type"] == "application/json"
    StandardWebhook(SECRETS["acme"]).verify(body, headers)
    assert abs(int(headers["webhook-timestamp"]) - now_unix()) <= 1

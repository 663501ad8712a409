"""Metrics (SPEC 9): who may read `/metrics`, bounded labels, counts of requests, webhooks and
outbox attempts, and the gauges read from the store."""

import json
from datetime import timedelta

import pytest
import responses
from conftest import SERVICE_URLS, fo_of
from prometheus_client.parser import text_string_to_metric_families

from adapter.models import FulfillmentOrder, Order, OutboxMessage
from adapter.times import utcnow
from config import ConfigError, load_settings
from handlers import metrics

METRICS_TOKEN = "metrics-token-0123456789"


@pytest.fixture
def overrides(overrides):
    """The suite's configuration with a metrics token."""
    return {**overrides, "metrics": {"token": METRICS_TOKEN}}


@pytest.fixture
def scrape(app):
    """Scrape `/metrics` with the token; return {(sample name, labels...): value}."""
    client = app.test_client()
    # Every scrape reads the store afresh here; the cache has a test of its own.
    metrics._current["gauges"].cache_seconds = 0

    def read():
        response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.data
        assert response.content_type.startswith("text/plain; version=")
        return samples_of(response.get_data(as_text=True))

    return read


def samples_of(text):
    """Parse a scrape into {(name, (label, value), ...): value}."""
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, *sorted(labels.items())), 0.0)


def changed(before, after):
    """Return the samples whose value changed (counters only grow), with the increase."""
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}


# ---- who may read them -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        (f"Bearer {METRICS_TOKEN}x", 401),
        (f"Basic {METRICS_TOKEN}", 401),
        ("Bearer ", 401),
        ("Bearer test-token-0123456789", 401),  # a merchant token is not the metrics token
        (f"Bearer {METRICS_TOKEN}", 200),
        (f"bearer {METRICS_TOKEN}", 200),
    ],
)
def test_metrics_need_the_metrics_token(app, authorization, status):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"adapter_" not in response.data
    else:
        assert b"adapter_http_requests_total" in response.data


@pytest.mark.parametrize("token", [None, f"Bearer {METRICS_TOKEN}"])
def test_without_a_metrics_token_there_is_no_metrics_endpoint(overrides, token):
    from app import create_app

    app = create_app({**overrides, "metrics": {"token": ""}})
    headers = {"Authorization": token} if token else {}
    assert app.test_client().get("/metrics", headers=headers).status_code == 404


def test_metrics_token_comes_from_the_environment_over_the_file():
    settings = load_settings(environ={"METRICS_TOKEN": "from-env"},
                             overrides={"services": {"sandbox": {"enabled": False}}})
    assert settings.metrics_token == "from-env"
    assert load_settings(environ={}).metrics_token is None


def test_a_metrics_token_that_is_not_text_stops_the_start():
    with pytest.raises(ConfigError, match="metrics.token: must be a string"):
        load_settings(environ={}, overrides={"metrics": {"token": 5}})


# ---- HTTP requests -----------------------------------------------------------------------------


def test_requests_are_counted_by_method_route_template_and_status(api, scrape):
    before = scrape()
    assert api.get("/orders/12345").status_code == 404
    assert api.get("/orders/999999999999999999999999").status_code == 404
    assert api.get("/orders").status_code == 200
    assert api.get("/no/such/path/1").status_code == 404
    assert api.call("BREW", "/orders").status_code == 405
    after = scrape()
    requests = {key: n for key, n in changed(before, after).items()
                if key[0] == "adapter_http_requests_total" and ("route", "/metrics") not in key}
    assert requests == {
        ("adapter_http_requests_total", ("method", "GET"), ("route", "/orders/<id:order_id>"),
         ("status", "404")): 2,
        ("adapter_http_requests_total", ("method", "GET"), ("route", "/orders"), ("status", "200")): 1,
        ("adapter_http_requests_total", ("method", "GET"), ("route", "unmatched"), ("status", "404")): 1,
        ("adapter_http_requests_total", ("method", "OTHER"), ("route", "unmatched"), ("status", "405")): 1,
    }
    timed = ("adapter_http_request_duration_seconds_count", ("method", "GET"),
             ("route", "/orders/<id:order_id>"))
    assert after[timed] - before.get(timed, 0) == 2


# ---- webhooks ----------------------------------------------------------------------------------


def test_webhooks_are_counted_by_service_type_and_outcome(api, create_order, service, scrape):
    order = create_order()
    fo = fo_of(order, "acme")
    assert api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {}).status_code == 200
    before = scrape()
    accepted = {"fulfillment_order_id": fo["id"]}
    body = json.dumps({"type": "fulfillment_request.accepted", "timestamp": "2026-01-01T00:00:00Z",
                       "data": accepted})
    for _ in range(2):
        assert service.send("acme", None, None, webhook_id="msg_a1", body=body).status_code == 200
    assert service.send("acme", "fulfillment_request.accepted", accepted,
                        secret=service_secret_of("oldco")).status_code == 401
    assert service.send("acme", "no.such_type", {}).status_code == 422
    assert service.send("nosuch", "fulfillment_request.accepted", accepted,
                        secret=service_secret_of("acme")).status_code == 404
    after = scrape()
    webhooks = {key[1:]: n for key, n in changed(before, after).items()
                if key[0] == "adapter_webhooks_received_total"}
    assert webhooks == {
        (("outcome", "applied"), ("service", "acme"), ("type", "fulfillment_request.accepted")): 1,
        (("outcome", "replayed"), ("service", "acme"), ("type", "fulfillment_request.accepted")): 1,
        (("outcome", "signature_invalid"), ("service", "acme"), ("type", "invalid")): 1,
        (("outcome", "validation_failed"), ("service", "acme"), ("type", "invalid")): 1,
        (("outcome", "not_found"), ("service", "unknown"), ("type", "invalid")): 1,
    }


def service_secret_of(key):
    from conftest import SECRETS

    return SECRETS[key]


# ---- outbox attempts ---------------------------------------------------------------------------


def test_outbox_attempts_are_counted_by_service_type_and_outcome(api, create_order, outbound, deliver,
                                                                 scrape):
    order = create_order()
    fo = fo_of(order, "acme")
    assert api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {}).status_code == 200
    before = scrape()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503)
    deliver()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    deliver(utcnow() + timedelta(minutes=1))
    after = scrape()
    attempts = {key[1:]: n for key, n in changed(before, after).items()
                if key[0] == "adapter_outbox_attempts_total"}
    assert attempts == {
        (("outcome", "retry"), ("service", "acme"), ("type", "fulfillment_request.submitted")): 1,
        (("outcome", "delivered"), ("service", "acme"), ("type", "fulfillment_request.submitted")): 1,
    }
    timed = ("adapter_outbox_attempt_duration_seconds_count", ("service", "acme"))
    assert after[timed] - before.get(timed, 0) == 2


def test_a_failed_attempt_is_counted_as_failed(api, create_order, outbound, deliver, scrape):
    fo = fo_of(create_order(), "acme")
    api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    before = scrape()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=400)
    deliver()
    attempts = changed(before, scrape())
    assert attempts[("adapter_outbox_attempts_total", ("outcome", "failed"), ("service", "acme"),
                     ("type", "fulfillment_request.submitted"))] == 1


@pytest.mark.parametrize(
    ("raw", "label"),
    [("acme", "acme"), ("notifications", "unknown"), ("ACME", "unknown"), ("", "unknown"),
     ("x" * 500, "unknown")],
)
def test_service_labels_are_configured_keys_or_unknown(app, raw, label):
    assert metrics.service_label(raw) == label


@pytest.mark.parametrize(
    ("raw", "label"),
    [("fulfillment_request.accepted", "fulfillment_request.accepted"), ("fulfillment.created",
     "fulfillment.created"), ("x.y", "invalid"), (None, "invalid"), ("", "invalid")],
)
def test_webhook_type_labels_are_known_types_or_invalid(raw, label):
    assert metrics.webhook_type_label(raw) == label


# ---- gauges read from the store ------------------------------------------------------------------


def test_gauges_count_pending_and_failed_messages_per_service_and_the_oldest_pending_age(
        api, create_order, outbound, deliver, scrape, clock):
    samples = scrape()
    for service in ("acme", "oldco", "autoship"):
        assert value(samples, "adapter_outbox_messages", service=service, state="pending") == 0
        assert value(samples, "adapter_outbox_messages", service=service, state="failed") == 0
        assert ("adapter_outbox_oldest_pending_age_seconds", ("service", service)) in samples
    first, second = (fo_of(create_order(), "acme") for _ in range(2))
    for fo in (first, second):
        api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    OutboxMessage.update(created_at=clock.now.replace(year=clock.now.year - 1)).where(
        OutboxMessage.fulfillment_order_id == first["id"]).execute()
    samples = scrape()
    assert value(samples, "adapter_outbox_messages", service="acme", state="pending") == 2
    assert value(samples, "adapter_outbox_oldest_pending_age_seconds", service="acme") > 300 * 24 * 3600
    assert value(samples, "adapter_outbox_oldest_pending_age_seconds", service="oldco") == 0
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=400)
    deliver()
    samples = scrape()
    assert value(samples, "adapter_outbox_messages", service="acme", state="pending") == 0
    assert value(samples, "adapter_outbox_messages", service="acme", state="failed") == 2
    assert value(samples, "adapter_outbox_oldest_pending_age_seconds", service="acme") == 0


def test_a_message_to_a_target_no_longer_configured_is_counted_as_unknown(api, create_order, scrape):
    fo = fo_of(create_order(), "acme")
    api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    OutboxMessage.update(target="gone").execute()
    samples = scrape()
    assert value(samples, "adapter_outbox_messages", service="unknown", state="pending") == 1
    assert not any(dict(key[1:]).get("service") == "gone" for key in samples)


def test_gauge_counts_fulfillment_orders_needing_attention(create_order, scrape):
    orders = [create_order() for _ in range(3)]
    flagged = [fo_of(order, "acme")["id"] for order in orders[:2]]
    FulfillmentOrder.update(needs_attention=True).where(FulfillmentOrder.id.in_(flagged)).execute()
    Order.update(needs_attention=True).where(Order.id.in_([o["id"] for o in orders[:2]])).execute()
    assert value(scrape(), "adapter_fulfillment_orders_needing_attention") == 2


def test_gauges_are_read_once_per_cache_period(app, create_order, api):
    reads = []
    moment = [0.0]
    gauges = metrics.StoreGauges(cache_seconds=5, clock=lambda: moment[0])
    original = gauges._read
    gauges._read = lambda: reads.append(1) or original()
    with app.app_context():
        list(gauges.collect())
        moment[0] = 4.9
        list(gauges.collect())
        assert len(reads) == 1
        moment[0] = 5.0
        list(gauges.collect())
        assert len(reads) == 2


def test_gauges_are_reported_once_whatever_the_number_of_scrapes(scrape):
    """Gauges are families of their own, not summed: one sample per label set."""
    samples = scrape()
    names = [key[0] for key in samples if key[0] == "adapter_fulfillment_orders_needing_attention"]
    assert names == ["adapter_fulfillment_orders_needing_attention"]

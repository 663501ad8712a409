"""Logs (SPEC 9): one JSON object per line on stderr, a line per request and per outbox attempt,
request ids taken, made and echoed; LOG_FORMAT=text for people."""

import json
import logging
from datetime import timedelta

import pytest
import requests
import responses
from conftest import SERVICE_URLS, fo_of

from adapter import log_lines
from adapter.models import OutboxMessage
from adapter.times import utcnow
from app import create_app
from config import ConfigError, load_settings
from handlers import log_format


def json_lines(text):
    """Parse every line of stderr as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_lines(lines):
    return [line for line in lines if line["logger"] == log_format.HTTP_LOGGER]


def test_each_request_is_one_json_line_with_its_id_route_status_and_duration(api, capsys):
    capsys.readouterr()
    response = api.client.get("/orders/42", headers={"Authorization": "Bearer test-token-0123456789",
                                                     "X-Request-Id": "client-req_1.2:3"})
    assert response.status_code == 404
    assert response.headers["X-Request-Id"] == "client-req_1.2:3"
    (line,) = request_lines(json_lines(capsys.readouterr().err))
    assert line["request_id"] == "client-req_1.2:3"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/orders/<id:order_id>", 404)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["time"].endswith("Z")


@pytest.mark.parametrize(
    "given",
    ["", "a b", "x" * 65, "<script>", "id\twith-tab", "-starts-with-dash", "ok;rm"],
)
def test_a_request_id_that_is_not_short_and_plain_is_replaced(api, capsys, given):
    capsys.readouterr()
    response = api.client.get("/healthz", headers={"X-Request-Id": given})
    made = response.headers["X-Request-Id"]
    assert made != given and len(made) == 32 and made.isalnum()
    (line,) = request_lines(json_lines(capsys.readouterr().err))
    assert line["request_id"] == made


def test_every_request_gets_an_id_echoed_in_the_answer(api, capsys):
    capsys.readouterr()
    ids = {api.get("/orders").headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3
    assert {line["request_id"] for line in request_lines(json_lines(capsys.readouterr().err))} == ids


def test_a_line_logged_while_serving_a_request_carries_its_id(app, capsys):
    @app.get("/__log_test")
    def log_something():
        logging.getLogger("adapter.test").warning("something happened")
        return "ok"

    capsys.readouterr()
    app.test_client().get("/__log_test", headers={"X-Request-Id": "trace-1"})
    lines = json_lines(capsys.readouterr().err)
    (warning,) = [line for line in lines if line["logger"] == "adapter.test"]
    assert warning["request_id"] == "trace-1" and warning["level"] == "warning"


def test_each_outbox_attempt_is_one_line_and_sends_its_request_id(api, create_order, outbound, deliver,
                                                                   capsys):
    fo = fo_of(create_order(), "acme")
    api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    capsys.readouterr()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=503)
    deliver()
    message = OutboxMessage.get()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], status=200)
    deliver(utcnow() + timedelta(minutes=1))
    attempts = [line for line in json_lines(capsys.readouterr().err) if "outbox_message_id" in line]
    assert [(line["outbox_message_id"], line["service"], line["type"], line["outcome"], line["status"])
            for line in attempts] == [
        (message.id, "acme", "fulfillment_request.submitted", "retry", 503),
        (message.id, "acme", "fulfillment_request.submitted", "delivered", 200),
    ]
    sent = [call.request.headers["X-Request-Id"] for call in outbound.calls[-2:]]
    assert sent == [line["request_id"] for line in attempts]
    assert sent == [f"{message.message_id}-1", f"{message.message_id}-2"]


def test_an_attempt_that_cannot_reach_the_service_logs_no_status(api, create_order, outbound, deliver,
                                                                  capsys):
    fo = fo_of(create_order(), "acme")
    api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    capsys.readouterr()
    outbound.replace(responses.POST, SERVICE_URLS["acme"], body=requests.ConnectionError("down"))
    deliver()
    (line,) = [line for line in json_lines(capsys.readouterr().err) if "outbox_message_id" in line]
    assert (line["outcome"], line["status"]) == ("retry", None)


def test_log_format_text_writes_lines_for_people(overrides, monkeypatch, capsys):
    monkeypatch.setenv("LOG_FORMAT", "text")
    app = create_app(overrides)
    try:
        capsys.readouterr()
        app.test_client().get("/healthz", headers={"X-Request-Id": "people-1"})
        (line,) = [line for line in capsys.readouterr().err.splitlines() if log_format.HTTP_LOGGER in line]
        assert " INFO adapter.http: GET /healthz 200 " in line
        assert "request_id=people-1" in line and "route=/healthz" in line
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    finally:
        monkeypatch.delenv("LOG_FORMAT")
        create_app(overrides)


@pytest.mark.parametrize("value", ["xml", "JSONL", "1"])
def test_an_unknown_log_format_stops_the_start_naming_log_format(value):
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings(environ={"LOG_FORMAT": value})


@pytest.mark.parametrize(("value", "kind"), [("", "json"), ("json", "json"), ("TEXT", "text")])
def test_log_format_values(value, kind):
    assert load_settings(environ={"LOG_FORMAT": value}).log_format == kind


def test_configuring_twice_keeps_one_stderr_handler(overrides):
    create_app(overrides)
    create_app(overrides)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, log_lines.StderrHandler)]
    assert len(handlers) == 1

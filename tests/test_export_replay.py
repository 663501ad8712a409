"""Recorded webhooks (SPEC 7): `export` writes them byte for byte, `replay` sends them again."""

import base64
import hashlib
import hmac
import io
import json
import re
import threading
from datetime import UTC, datetime

import pytest
import responses
from conftest import SECRETS, fo_of, make_secret
from werkzeug.serving import make_server

from adapter import recordings, schema, store
from adapter.models import WebhookDelivery
from handlers.webhooks_cli import webhooks_cli

THAI = "กรุณาส่งด่วน"
EMOJI = "📦🚚👩‍👩‍👧👍🏽"
NOT_UTF8 = b'{"type": "fulfillment_order.message", "data": {"message": "\xff\xfe caf\xe9"}}'
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
COMPARED_FIELDS = ("service", "webhook_id", "body", "body_base64", "outcome")
# Set by the clock of the run, not by the deliveries, so two runs of one scenario differ in them.
CLOCK_FIELDS = {"id", "at", "created_at", "updated_at", "sent_at", "answered_at", "received_at",
                "next_attempt_at"}


@pytest.fixture
def cli(app):
    """A CLI runner for the test app, with `flask webhooks` registered once."""
    if "webhooks" not in app.cli.commands:
        app.cli.add_command(webhooks_cli)
    return app.test_cli_runner()


def envelope(event_type, data):
    """Return a webhook body as a service might format it: raw UTF-8, its own spacing."""
    return json.dumps({"type": event_type, "timestamp": "2026-03-01T10:00:00Z", "data": data},
                      ensure_ascii=False, indent=1)


def post_signed_bytes(client, service, webhook_id, body):
    """Post a body that is not UTF-8, signed over its raw bytes."""
    timestamp = str(int(datetime.now(UTC).timestamp()))
    key = base64.b64decode(SECRETS[service].removeprefix("whsec_"))
    signature = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return client.post(f"/webhooks/{service}", data=body, headers={
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(signature).decode(),
        "Content-Type": "application/json",
    })


class Scenario:
    """One order taken through acceptance and a shipment by webhooks, some of them refused."""

    def __init__(self, api, create_order, service):
        self.api = api
        self.create_order = create_order
        self.service = service
        self.sent = []

    def prepare(self):
        """Create the order and request fulfillment: the merchant's part, repeatable on a fresh store."""
        order = self.create_order()
        fo_id = fo_of(order, "acme")["id"]
        response = self.api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {})
        assert response.status_code == 200, response.body
        return order

    def tell(self, service, event_type, data, status):
        body = envelope(event_type, data)
        webhook_id = f"msg_{len(self.sent) + 1:04d}"
        response = self.service.send(service, event_type, data, webhook_id=webhook_id, body=body)
        assert response.status_code == status, response.body
        self.sent.append((service, webhook_id, body.encode(), status))

    def play(self):
        """Play the service's part; return the order id."""
        order = self.prepare()
        fo = fo_of(order, "acme")
        tee = next(line for line in fo["line_items"] if line["sku"] == "TEE-1")
        self.tell("acme", "fulfillment_request.accepted",
                  {"fulfillment_order_id": fo["id"], "message": f"{THAI} {EMOJI}"}, 200)
        self.tell("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo["id"]}, 409)
        self.tell("acme", "fulfillment.created", {
            "fulfillment_order_id": fo["id"], "external_id": "SHIP-1",
            "line_items": [{"id": tee["id"], "quantity": 1}],
            "tracking": {"number": "TH123", "company": "Kerry", "url": "https://track.example/TH123"},
            "message": EMOJI,
        }, 200)
        self.tell("acme", "fulfillment.event", {
            "external_id": "SHIP-1", "status": "in_transit", "happened_at": "2026-03-02T08:00:00Z",
            "message": THAI, "location": {"city": "กรุงเทพมหานคร"},
        }, 200)
        self.tell("oldco", "fulfillment_order.message",
                  {"fulfillment_order_id": fo["id"], "message": "not mine"}, 404)
        self.tell("acme", "fulfillment_order.message",
                  {"fulfillment_order_id": fo["id"], "message": f"{EMOJI}\u2028{THAI}"}, 200)
        response = post_signed_bytes(self.service.client, "acme", "msg_0007", NOT_UTF8)
        assert response.status_code == 400, response.get_json()
        self.sent.append(("acme", "msg_0007", NOT_UTF8, 400))
        return order["id"]


@pytest.fixture
def scenario(api, create_order, service):
    """The scenario, not yet played."""
    return Scenario(api, create_order, service)


def export(cli, *options):
    """Run `flask webhooks export` and return its records."""
    result = cli.invoke(args=["webhooks", "export", *options])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout_bytes.decode("utf-8").split("\n") if line]


def replay(cli, path, *options):
    """Run `flask webhooks replay` and return the result."""
    return cli.invoke(args=["webhooks", "replay", str(path), *options])


def recording(tmp_path, records, name="deliveries.jsonl"):
    """Write records (or raw lines) to a JSON Lines file and return its path."""
    path = tmp_path / name
    path.write_bytes(b"".join(
        (record if isinstance(record, bytes) else json.dumps(record, ensure_ascii=False).encode())
        + b"\n"
        for record in records
    ))
    return path


def raw_body(record):
    return base64.b64decode(record["body_base64"]) if record["body"] is None else record["body"].encode()


def summary(result):
    """Return {(status, outcome): count} from the replay summary table."""
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        fields = line.split()
        if fields[0] != "total":
            rows[int(fields[0]) if fields[0] != "-" else None, fields[1]] = int(fields[2])
    return rows


def without_clock(value):
    """Drop the fields the clock of the run sets, recursively."""
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k not in CLOCK_FIELDS}
    if isinstance(value, list):
        return [without_clock(item) for item in value]
    return value


def final_state(api, order_id):
    """Return the order and its timeline, without what the clock set."""
    order = api.get(f"/orders/{order_id}")
    timeline = api.get(f"/orders/{order_id}/timeline")
    assert order.status_code == timeline.status_code == 200
    return without_clock(order.body), without_clock(timeline.body)


def wipe_store():
    """Drop and recreate every table: a fresh, empty store under the same app."""
    schema.drop_tables()
    schema.create_tables()


def store_delivery(service, received_at, body=b"{}", webhook_id=None):
    """Keep a delivery directly in the store."""
    with store.database.connection_context():
        return WebhookDelivery.create(
            service=service, webhook_id=webhook_id or f"msg_{service}_{received_at:%d%H}",
            headers={"content-type": "application/json"}, body=body,
            received_at=received_at, outcome_status=200, outcome_code="applied",
        )


@pytest.fixture
def served(app, outbound):
    """The test app served over HTTP on a free local port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    outbound.add_passthru(base_url)
    yield base_url
    server.shutdown()
    thread.join()


# ---- export ---------------------------------------------------------------------------------


def test_export_writes_every_delivery_in_order_with_its_exact_bytes(cli, scenario):
    scenario.play()
    records = export(cli)
    assert [(r["service"], r["webhook_id"], raw_body(r), r["outcome"]["status"]) for r in records] == \
        scenario.sent
    assert [r["outcome"]["code"] for r in records] == [
        "applied", "invalid_transition", "applied", "applied", "not_found", "applied", "malformed_json"
    ]
    assert all(RFC3339_UTC.match(r["received_at"]) for r in records)
    assert all(r["headers"]["webhook-id"] == r["webhook_id"] for r in records)
    assert all(name == name.lower() for r in records for name in r["headers"])


def test_export_keeps_a_non_utf8_body_as_base64(cli, scenario):
    scenario.play()
    record = export(cli)[-1]
    assert record["body"] is None
    assert base64.b64decode(record["body_base64"]) == NOT_UTF8


def test_export_keeps_a_utf8_body_as_its_text(cli, scenario):
    scenario.play()
    record = export(cli)[0]
    assert "body_base64" not in record
    assert THAI in record["body"] and EMOJI in record["body"]
    assert record["body"].encode("utf-8") == scenario.sent[0][2]


def test_export_writes_one_delivery_per_line_even_with_line_separators_in_bodies(cli, scenario):
    scenario.play()
    result = cli.invoke(args=["webhooks", "export"])
    assert result.stdout_bytes.count(b"\n") == len(scenario.sent)
    assert "\u2028".encode() in result.stdout_bytes


def test_export_of_an_empty_store_writes_nothing(cli):
    result = cli.invoke(args=["webhooks", "export"])
    assert result.exit_code == 0
    assert result.stdout_bytes == b""


def test_export_filters_by_service(cli):
    for day, service in ((1, "acme"), (2, "oldco"), (3, "acme")):
        store_delivery(service, datetime(2026, 3, day, 12))
    assert [r["received_at"] for r in export(cli, "--service", "acme")] == [
        "2026-03-01T12:00:00Z", "2026-03-03T12:00:00Z"
    ]
    assert export(cli, "--service", "oldco") != []


@pytest.mark.parametrize("since", [
    "2026-03-02", "2026-03-02T00:00:00Z", "2026-03-02T07:00:00+07:00", "2026-03-02T00:00:00",
])
def test_export_since_keeps_deliveries_received_from_that_moment(cli, since):
    for moment in (datetime(2026, 3, 1, 23, 59, 59), datetime(2026, 3, 2), datetime(2026, 3, 3, 9)):
        store_delivery("acme", moment)
    assert [r["received_at"] for r in export(cli, "--since", since)] == [
        "2026-03-02T00:00:00Z", "2026-03-03T09:00:00Z"
    ]


def test_export_combines_service_and_since(cli):
    for day, service in ((1, "acme"), (2, "oldco"), (3, "acme")):
        store_delivery(service, datetime(2026, 3, day, 12))
    records = export(cli, "--service", "acme", "--since", "2026-03-02")
    assert [r["received_at"] for r in records] == ["2026-03-03T12:00:00Z"]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "2026-03-02T25:00:00Z", ""])
def test_export_with_a_bad_since_is_a_usage_error(cli, since):
    result = cli.invoke(args=["webhooks", "export", "--since", since])
    assert result.exit_code == 2
    assert "Invalid value for '--since'" in result.stderr
    assert "RFC 3339" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5])
def test_export_reads_in_chunks_across_their_boundaries(app, count):
    rows = [store_delivery("acme", datetime(2026, 3, day + 1), webhook_id=f"msg_{day}")
            for day in range(count)]
    with store.database.connection_context():
        lines = list(recordings.export_lines(chunk_size=2))
    assert [json.loads(line)["webhook_id"] for line in lines] == [row.webhook_id for row in rows]


# ---- replay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["in process", "over http"])
def test_replay_into_a_fresh_store_reproduces_the_final_state(cli, scenario, tmp_path, request, mode):
    order_id = scenario.play()
    before = final_state(scenario.api, order_id)
    original = export(cli)
    path = recording(tmp_path, original)
    wipe_store()
    assert scenario.prepare()["id"] == order_id
    options = ["--url", request.getfixturevalue("served")] if mode == "over http" else []
    result = replay(cli, path, *options)
    assert result.exit_code == 0, result.output
    assert final_state(scenario.api, order_id) == before
    replayed = export(cli)
    assert [[r.get(f) for f in COMPARED_FIELDS] for r in replayed] == \
        [[r.get(f) for f in COMPARED_FIELDS] for r in original]
    assert summary(result) == {(200, "applied"): 4, (400, "malformed_json"): 1,
                               (404, "not_found"): 1, (409, "invalid_transition"): 1}


def test_replay_twice_answers_applied_deliveries_from_memory(cli, scenario, tmp_path):
    order_id = scenario.play()
    before = final_state(scenario.api, order_id)
    path = recording(tmp_path, export(cli))
    result = replay(cli, path)
    assert result.exit_code == 0, result.output
    # Refused deliveries are not remembered, so they are judged again, and refused again.
    assert summary(result) == {(200, "replayed"): 4, (400, "malformed_json"): 1,
                               (404, "not_found"): 1, (409, "invalid_transition"): 1}
    assert final_state(scenario.api, order_id) == before
    assert [r["outcome"]["code"] for r in export(cli)[len(scenario.sent):]] == [
        "replayed", "invalid_transition", "replayed", "replayed", "not_found", "replayed",
        "malformed_json",
    ]


def test_replay_with_new_ids_judges_each_delivery_again(cli, scenario, tmp_path):
    scenario.play()
    path = recording(tmp_path, export(cli)[:2])
    result = replay(cli, path, "--new-ids")
    assert result.exit_code == 0, result.output
    assert summary(result) == {(409, "invalid_transition"): 2}
    again = export(cli)[len(scenario.sent):]
    assert all(r["webhook_id"] not in {sent[1] for sent in scenario.sent} for r in again)
    assert len({r["webhook_id"] for r in again}) == 2


def test_replay_signs_with_the_current_secret_and_a_fresh_timestamp(overrides, cli, create_order, tmp_path):
    rotated = make_secret()
    overrides["services"]["acme"]["secret"] = rotated
    fo_id = fo_of(create_order(), "acme")["id"]
    body = envelope("fulfillment_order.message", {"fulfillment_order_id": fo_id, "message": THAI})
    path = recording(tmp_path, [{
        "service": "acme", "webhook_id": "msg_last_year",
        "headers": {"webhook-id": "msg_last_year", "webhook-timestamp": "1740000000",
                    "webhook-signature": "v1,c3RhbGU=", "content-type": "application/json",
                    "host": "old.example", "content-length": "1"},
        "body": body, "received_at": "2025-02-19T21:20:00Z",
        "outcome": {"status": 200, "code": "applied"},
    }])
    result = replay(cli, path)
    assert result.exit_code == 0, result.output
    assert summary(result) == {(200, "applied"): 1}


def test_replay_streams_a_file_given_on_stdin(cli, scenario, tmp_path):
    scenario.play()
    lines = recording(tmp_path, export(cli)).read_bytes()
    result = cli.invoke(args=["webhooks", "replay", "-"], input=io.BytesIO(lines))
    assert result.exit_code == 0, result.output
    assert summary(result)[200, "replayed"] == 4


HEADERS_REASON = "headers must map header names to one-line Latin-1 strings"
MALFORMED = [
    ("not json", b"{nope", "not JSON"),
    ("not an object", b"[1, 2]", "not a JSON object"),
    ("missing fields", b'{"service": "acme"}', "missing webhook_id, headers, body"),
    ("unknown service", b'{"service": "nosuch", "webhook_id": "m", "headers": {}, "body": "{}"}',
     "unknown service 'nosuch'"),
    ("header not a string", b'{"service": "acme", "webhook_id": "m", "headers": {"a": 1}, "body": "{}"}',
     HEADERS_REASON),
    ("header with a line break", b'{"service": "acme", "webhook_id": "m", "headers": {"a": "1\\r\\nb: 2"}, '
                                 b'"body": "{}"}', HEADERS_REASON),
    ("header beyond latin-1", '{"service": "acme", "webhook_id": "m", "headers": {"a": "ก"}, '
                              '"body": "{}"}'.encode(), HEADERS_REASON),
    ("header name not a token", b'{"service": "acme", "webhook_id": "m", "headers": {"a b": "1"}, '
                                b'"body": "{}"}', HEADERS_REASON),
    ("headers not an object", b'{"service": "acme", "webhook_id": "m", "headers": [], "body": "{}"}',
     HEADERS_REASON),
    ("empty webhook id", b'{"service": "acme", "webhook_id": "", "headers": {}, "body": "{}"}',
     "webhook_id must be a non-empty string"),
    ("body not a string", b'{"service": "acme", "webhook_id": "m", "headers": {}, "body": 3}',
     "body must be a string"),
    ("bad base64", b'{"service": "acme", "webhook_id": "m", "headers": {}, "body": null, '
                   b'"body_base64": "***"}', "body_base64 is not valid base64"),
    ("lone surrogate", b'{"service": "acme", "webhook_id": "m", "headers": {}, "body": "\\ud800"}',
     "body has an unpaired surrogate"),
    ("not utf-8", b'{"service": "acme", "webhook_id": "m", "headers": {}, "body": "\xff"}', "not UTF-8"),
]


@pytest.mark.parametrize(("line", "reason"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_a_malformed_line_is_reported_with_its_number_and_skipped(cli, scenario, tmp_path, line, reason):
    scenario.play()
    first = export(cli)[0]
    path = recording(tmp_path, [first, b"", line, first])
    result = replay(cli, path)
    assert result.exit_code == 1, result.output  # the other lines are sent; the replay is incomplete
    assert f"line 3: malformed: {reason}" in result.stderr
    assert "Traceback" not in result.output
    assert summary(result) == {(200, "replayed"): 2, (None, "malformed"): 1}


def test_replay_exits_1_when_a_delivery_is_answered_5xx(cli, outbound, scenario, tmp_path):
    scenario.play()
    outbound.add(responses.POST, "http://adapter.test/webhooks/acme", status=503)
    path = recording(tmp_path, [export(cli)[0]])
    result = replay(cli, path, "--url", "http://adapter.test/")
    assert result.exit_code == 1, result.output
    assert summary(result) == {(503, "-"): 1}


def test_replay_exits_1_when_a_delivery_cannot_be_sent(cli, outbound, scenario, tmp_path):
    scenario.play()
    outbound.add(responses.POST, "http://adapter.test/webhooks/acme",
                 body=responses.ConnectionError("refused"))
    path = recording(tmp_path, [export(cli)[0]])
    result = replay(cli, path, "--url", "http://adapter.test")
    assert result.exit_code == 1, result.output
    assert "line 1: not_sent: cannot connect to http://adapter.test/webhooks/acme" in result.stderr
    assert summary(result) == {(None, "not_sent"): 1}


def test_replay_over_http_sends_to_a_running_server(cli, scenario, served, tmp_path):
    scenario.play()
    result = replay(cli, recording(tmp_path, export(cli)), "--url", served, "--new-ids")
    assert result.exit_code == 0, result.output
    assert summary(result) == {(200, "applied"): 3, (400, "malformed_json"): 1,
                               (404, "not_found"): 1, (409, "invalid_transition"): 2}


@pytest.mark.parametrize("url", ["127.0.0.1:5000", "ftp://host", "http://"])
def test_replay_with_a_bad_url_is_a_usage_error(cli, tmp_path, url):
    result = replay(cli, recording(tmp_path, []), "--url", url)
    assert result.exit_code == 2
    assert "Invalid value for '--url'" in result.stderr


def test_replay_of_a_missing_file_is_a_usage_error(cli, tmp_path):
    result = replay(cli, tmp_path / "nothing.jsonl")
    assert result.exit_code == 2
    assert "nothing.jsonl" in result.stderr


@pytest.mark.parametrize(("content", "count"), [
    (b"", 0), (b"a\n", 1), (b"a", 1), (b"a\nb", 2), (b"a\nb\n", 2), (b"\n\n", 2),
])
def test_count_lines_counts_a_last_line_without_newline_and_rewinds(content, count):
    file = io.BytesIO(content)
    assert recordings.count_lines(file) == count
    assert file.tell() == 0

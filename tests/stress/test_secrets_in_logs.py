"""No secret ever reaches a log line, at DEBUG, from any logger (STYLE 11, SPEC 1, 4).

A full scenario runs over real HTTP (the app served by werkzeug on loopback, the services played
by a recording sink): intake, a wrong token, fulfillment requests, outbound deliveries (a retried
503, a refused 400, a service that is down), inbound webhooks (valid, signed with a previous
secret, bad, malformed and expired signatures, a replay, a conflicting body), a customer
notification, `flask outbox status`, a scrape of `/metrics` (with the metrics token and a wrong one)
and the admin pages (signing in posts a merchant token; the session lives in a cookie). Every
record is also written by the JSON and text formatters of the stderr log. Every logger is at
DEBUG — the adapter's, werkzeug's, requests', urllib3's and peewee's. No service or notifications
secret (with or without `whsec_`), no merchant token (nor the near-miss one that was tried), no
metrics token, no session cookie and no webhook-signature value, inbound or outbound, may appear in
any record or line. Merchant tokens are compared in constant time.
"""

import ast
import contextlib
import inspect
import json
import logging
import re
import secrets
import threading
from collections import defaultdict

import pytest
import requests
from werkzeug.serving import make_server

import handlers.auth
from adapter.dispatcher import Dispatcher
from adapter.log_lines import JSONFormatter, TextFormatter
from app import create_app

from .procs import (
    LOOPBACK,
    Sink,
    envelope,
    free_port,
    make_secret,
    restored_binding,
    signature_headers,
)

pytestmark = pytest.mark.stress

NAMED_LOGGERS = ("", "werkzeug", "urllib3", "requests", "peewee", "adapter", "handlers", "app", "flask",
                 "sandbox", "standardwebhooks")


@pytest.fixture
def own_binding():
    """Let the test bind the core to a store of its own; put the suite's binding back after."""
    with restored_binding():
        yield


class Records(logging.Handler):
    """Keep every record that reaches the root logger."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def every_logger_at_debug():
    """Send every logger's records, at DEBUG, to one list (like caplog, for a module's scenario)."""
    handler = Records()
    names = {*NAMED_LOGGERS, *logging.root.manager.loggerDict}
    loggers = [logging.getLogger(name or None) for name in names]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.root.addHandler(handler)
    try:
        yield handler.records
    finally:
        logging.root.removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)


class Scenario:
    """Secrets, tokens and the signature values the scenario used, to look for in the logs."""

    def __init__(self, monkeypatch):
        self.acme_secret, self.acme_previous = make_secret(), make_secret()
        self.oldco_secret = make_secret()
        self.env_secret = make_secret()
        self.notifications_secret = make_secret()
        self.wrong_secret = make_secret()
        self.tokens = [f"tok-{secrets.token_urlsafe(24)}", f"tok-{secrets.token_urlsafe(24)}"]
        near = "A" if self.tokens[0][-1] != "A" else "B"
        self.near_miss_token = self.tokens[0][:-1] + near
        self.metrics_token = f"met-{secrets.token_urlsafe(24)}"
        self.cookies = []
        self.inbound_signatures = []
        monkeypatch.setenv("STRESS_ENVSHIP_SECRET", self.env_secret)

    def secrets(self):
        return [self.acme_secret, self.acme_previous, self.oldco_secret, self.env_secret,
                self.notifications_secret, self.wrong_secret]

    def needles(self, outbound_signatures):
        """Return {what: text} for everything that must never be logged (the smallest telling part)."""
        found = {"the whsec_ prefix": "whsec_"}
        for n, secret in enumerate(self.secrets()):
            found[f"secret {n}"] = secret.removeprefix("whsec_")
        for n, token in enumerate([*self.tokens, self.near_miss_token, self.metrics_token]):
            found[f"token {n}"] = token
        for n, cookie in enumerate(self.cookies):
            found[f"cookie {n}"] = cookie
        for origin, signatures in (("inbound", self.inbound_signatures), ("outbound", outbound_signatures)):
            for n, signature in enumerate(signatures):
                for part in signature.split():
                    found[f"{origin} webhook-signature {n}"] = part.partition(",")[2]
        return found


def sink_answer(path, webhook_id, body, attempt):
    """The services: the first try of a request gets 503, notes to acme are refused with 400."""
    kind = json.loads(body)["type"]
    if path == "/acme" and kind == "merchant.message":
        return 400
    if path == "/acme" and kind == "fulfillment_request.submitted" and attempt == 0:
        return 503
    return 200


def serve(app):
    server = make_server(LOOPBACK, free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def run_scenario(app, scenario, base_url):
    """Drive every path that handles a secret, a token or a signature; return `outbox status` output."""
    session = requests.Session()
    merchant = {"Authorization": f"Bearer {scenario.tokens[0]}"}

    def call(method, path, body=None, headers=None):
        return session.request(method, base_url + path, json=body,
                               headers=merchant if headers is None else headers, timeout=30)

    def webhook(service, event_type, data, secret, webhook_id=None, body=None, headers=None):
        webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
        body = body or envelope(event_type, data)
        signed = signature_headers(secret, webhook_id, body)
        scenario.inbound_signatures.append(signed["webhook-signature"])
        response = session.post(f"{base_url}/webhooks/{service}", data=body.encode(),
                                headers={**signed, **(headers or {})}, timeout=30)
        return response, webhook_id, body

    order = call("POST", "/orders", {
        "external_id": "secrets-1", "currency": "USD", "email": "somchai@example.com",
        "shipping_address": {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
                             "country_code": "TH"},
        "line_items": [
            {"sku": "A", "title": "Mug", "quantity": 2, "price": "10.00", "fulfillment_service": "acme"},
            {"sku": "B", "title": "Tee", "quantity": 1, "price": "5.00", "fulfillment_service": "oldco"},
            {"sku": "C", "title": "Cap", "quantity": 1, "price": "5.00", "fulfillment_service": "envship"},
            {"sku": "D", "title": "Card", "quantity": 1, "price": "5.00", "fulfillment_service": None},
        ],
    })
    assert order.status_code == 201, order.text
    fos = {fo["service"]: fo["id"] for fo in order.json()["fulfillment_orders"]}
    assert call("GET", "/orders", headers={"Authorization": f"Bearer {scenario.near_miss_token}"}
                ).status_code == 401
    assert call("GET", "/orders", headers={}).status_code == 401
    second = {"Authorization": f"Bearer {scenario.tokens[1]}"}
    assert call("GET", "/orders", headers=second).status_code == 200
    for service in ("acme", "oldco", "envship"):
        requested = call("POST", f"/fulfillment_orders/{fos[service]}/fulfillment_request",
                         {"message": "please hurry", "notify_customer": True})
        assert requested.status_code == 200, requested.text
    noted = call("POST", f"/fulfillment_orders/{fos['acme']}/messages", {"message": "gift wrap"})
    assert noted.status_code == 200, noted.text

    with app.app_context():
        Dispatcher(app.extensions["adapter_settings"]).run_once()

    acme = fos["acme"]
    answer, _, _ = webhook("acme", "fulfillment_request.accepted", {"fulfillment_order_id": acme},
                           scenario.acme_previous)
    assert answer.status_code == 200, answer.text
    bad, _, _ = webhook("acme", "fulfillment_order.message", {"fulfillment_order_id": acme, "message": "x"},
                        scenario.wrong_secret)
    assert bad.status_code == 401
    malformed, _, _ = webhook("acme", "fulfillment_order.message",
                              {"fulfillment_order_id": acme, "message": "x"}, scenario.acme_secret,
                              headers={"webhook-signature": "v1,%%%not-base64%%%"})
    assert malformed.status_code == 401
    expired_body = envelope("fulfillment_order.message", {"fulfillment_order_id": acme, "message": "old"})
    expired = signature_headers(scenario.acme_secret, "msg_expired_1", expired_body)
    expired["webhook-timestamp"] = str(int(expired["webhook-timestamp"]) - 3600)
    scenario.inbound_signatures.append(expired["webhook-signature"])
    assert session.post(f"{base_url}/webhooks/acme", data=expired_body.encode(), headers=expired,
                        timeout=30).status_code == 401
    ship_data = {"fulfillment_order_id": acme, "external_id": "S-1", "notify_customer": True,
                 "tracking": {"number": "1Z9", "company": "UPS", "url": "https://ups.example/1Z9"}}
    shipped, ship_id, ship_body = webhook("acme", "fulfillment.created", ship_data, scenario.acme_secret)
    assert shipped.status_code == 200, shipped.text
    replayed, _, _ = webhook("acme", "fulfillment.created", ship_data, scenario.acme_secret,
                             webhook_id=ship_id, body=ship_body)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    conflict, _, _ = webhook("acme", "fulfillment.created", {**ship_data, "message": "changed"},
                             scenario.acme_secret, webhook_id=ship_id)
    assert conflict.status_code == 422
    envship, _, _ = webhook("envship", "fulfillment_request.accepted",
                            {"fulfillment_order_id": fos["envship"]}, scenario.env_secret)
    assert envship.status_code == 200, envship.text

    with app.app_context():
        Dispatcher(app.extensions["adapter_settings"]).run_once()
    for token, expected in ((scenario.metrics_token, 200), (scenario.near_miss_token, 401)):
        scraped = session.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert scraped.status_code == expected
    sign_in_to_the_admin_pages(base_url, scenario)
    status = app.test_cli_runner().invoke(args=["outbox", "status"])
    assert status.exit_code == 0, status.output
    assert "failed" in status.output
    session.close()
    return status.output


def sign_in_to_the_admin_pages(base_url, scenario):
    """Sign in with a wrong token, then the right one, read a page and sign out, as a browser does."""
    browser = requests.Session()
    for token, signed_in in ((scenario.near_miss_token, False), (scenario.tokens[1], True)):
        form = browser.get(f"{base_url}/admin/login", timeout=30)
        csrf = CSRF_FIELD.search(form.text).group(1)
        answer = browser.post(f"{base_url}/admin/login", data={"csrf_token": csrf, "token": token},
                              timeout=30, allow_redirects=False)
        assert (answer.status_code in (302, 303)) == signed_in, answer.status_code
    scenario.cookies.extend(cookie.value for cookie in browser.cookies)
    assert scenario.cookies
    page = browser.get(f"{base_url}/admin/orders", timeout=30)
    assert page.status_code == 200 and "/admin/logout" in page.text
    csrf = CSRF_FIELD.search(page.text).group(1)
    browser.post(f"{base_url}/admin/logout", data={"csrf_token": csrf}, timeout=30)
    browser.close()


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_lines(records):
    """Return [(logger, text)] for every record: message, arguments, exception, stack, and the record
    as the stderr log writes it in JSON and in text (with its fields)."""
    formatter = logging.Formatter()
    written = (JSONFormatter(), TextFormatter())
    lines = []
    for record in records:
        parts = [record.getMessage(), repr(record.args), *(line.format(record) for line in written)]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        lines.append((record.name, "\n".join(parts)))
    return lines


@pytest.fixture(scope="module")
def scenario_logs(tmp_path_factory):
    """Run the scenario once with every logger at DEBUG; return (log lines, needles, sink receipts)."""
    tmp_path = tmp_path_factory.mktemp("secrets")
    with (pytest.MonkeyPatch.context() as monkeypatch, restored_binding(),
          every_logger_at_debug() as records, Sink(answer=sink_answer) as sink):
        scenario = Scenario(monkeypatch)
        app = create_app({
            "database": {"url": f"sqlite:///{tmp_path}/secrets.db"},
            "merchant": {"api_tokens": scenario.tokens},
            "metrics": {"token": scenario.metrics_token},
            "outbox": {"in_app_dispatcher": False, "retry_schedule": [0, 0]},
            "notifications": {"url": sink.url("/notify"), "secret": scenario.notifications_secret,
                              "timeout_seconds": 2},
            "services": {
                "sandbox": {"enabled": False},
                "acme": {"workflow": "new", "url": sink.url("/acme"), "secret": scenario.acme_secret,
                         "previous_secrets": [scenario.acme_previous], "timeout_seconds": 2},
                "oldco": {"workflow": "legacy", "url": f"http://{LOOPBACK}:{free_port()}/down",
                          "secret": scenario.oldco_secret, "timeout_seconds": 2},
                "envship": {"workflow": "new", "url": sink.url("/envship"),
                            "secret_env": "STRESS_ENVSHIP_SECRET", "timeout_seconds": 2},
            },
        })
        server, thread = serve(app)
        try:
            cli_output = run_scenario(app, scenario, f"http://{LOOPBACK}:{server.server_port}")
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
        receipts = sink.snapshot()
        lines = [*log_lines(records), ("`flask outbox status` output", cli_output)]
    outbound = [r.headers.get("webhook-signature") or r.headers.get("Webhook-Signature") for r in receipts]
    return lines, scenario.needles([s for s in outbound if s]), receipts


def leaks_in(lines, needles, skip=()):
    """Return {logger: {what leaked: the text around its first occurrence}}."""
    leaks = defaultdict(dict)
    for name, text in lines:
        if name.split(".")[0] in skip:
            continue
        for what, needle in needles.items():
            at = text.find(needle) if needle else -1
            if at >= 0 and what not in leaks[name]:
                leaks[name][what] = text[max(0, at - 120): at + len(needle) + 20]
    return {name: found for name, found in leaks.items() if found}


def test_the_scenario_ran_with_every_logger_captured_at_debug(scenario_logs):
    lines, _, receipts = scenario_logs
    kinds = {(r.path, json.loads(r.body)["type"], r.status) for r in receipts}
    assert ("/acme", "fulfillment_request.submitted", 503) in kinds, kinds
    assert ("/acme", "fulfillment_request.submitted", 200) in kinds, kinds
    assert ("/acme", "merchant.message", 400) in kinds and ("/notify", "shipping_confirmation", 200) in kinds
    loggers = {name for name, _ in lines}
    assert {"werkzeug", "urllib3.connectionpool", "peewee"} <= loggers, loggers


def test_no_secret_token_or_signature_in_the_adapter_werkzeug_and_http_client_logs(scenario_logs):
    """Every logger except peewee's SQL echo (see the next test)."""
    lines, needles, _ = scenario_logs
    leaks = leaks_in(lines, needles, skip=("peewee",))
    assert not leaks, f"secrets in the logs, by logger and what, with the text around it: {leaks}"


def test_no_secret_token_or_signature_in_any_log_line_at_debug_including_sql(scenario_logs):
    lines, needles, _ = scenario_logs
    leaks = leaks_in(lines, needles)
    assert not leaks, f"secrets in the logs, by logger and what, with the text around it: {leaks}"


def test_a_malformed_secret_is_not_echoed_by_the_configuration_error(tmp_path, own_binding, capsys):
    almost = "whsec_" + "!" * 8 + secrets.token_urlsafe(24)
    with pytest.raises(SystemExit):
        create_app({
            "database": {"url": f"sqlite:///{tmp_path}/config.db"},
            "services": {"sandbox": {"enabled": False},
                         "acme": {"workflow": "new", "url": "https://acme.example/hooks", "secret": almost}},
        })
    message = capsys.readouterr().err
    assert "acme" in message and "secret" in message, message
    assert almost not in message and almost.removeprefix("whsec_") not in message, message


# ---- merchant tokens are compared in constant time --------------------------------------------


def test_merchant_tokens_are_compared_with_hmac_compare_digest():
    """Source check (with the behaviour test below): no ==, != or `in` ever touches a token."""
    source = inspect.getsource(handlers.auth)
    tree = ast.parse(source)
    calls = [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert "hmac.compare_digest" in calls or "compare_digest" in calls, calls
    comparisons = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Compare)]
    touching_tokens = [text for text in comparisons
                       if any(name in text for name in ("token", "given", "expected"))]
    assert not touching_tokens, touching_tokens


@pytest.mark.parametrize("change", ["last character", "one character short", "one character more",
                                    "space before the last character"])
def test_a_token_that_differs_only_at_the_end_is_refused(api, change):
    from conftest import TOKEN

    last = TOKEN[-1]
    other = "0" if last != "0" else "1"
    token = {
        "last character": TOKEN[:-1] + other,
        "one character short": TOKEN[:-1],
        "one character more": TOKEN + other,
        "space before the last character": TOKEN[:-1] + " " + last,
    }[change]
    assert token != TOKEN
    refused = api.get("/orders", token=token)
    assert refused.status_code == 401, refused.body
    assert refused.body["code"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.get("/orders").status_code == 200

"""Real processes (SPEC 1, 2.3, 4.1, 4.2): races against `gunicorn -w 2`, and a `kill -9` mid-stream.

The store is SQLite (a file of the test's own) or, with TEST_DATABASE_URL, a PostgreSQL database
created for the module and dropped with it — the suite's usual switch, so CI covers both stores.
Every racer, stream and wait is bounded. Sizes: STRESS_RACES rounds of each race (default 5),
STRESS_CRASH_ORDERS orders streamed around the crash (default 40). Figures are printed (`-s`).
"""

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest
import requests

from .procs import (
    NEEDS_POSTGRES,
    POSTGRES_URL,
    ROOT,
    Remote,
    Sink,
    _environ,
    make_secret,
    outbox_statuses,
    postgres_database,
    race,
    start_outbox_worker,
    start_server,
    store_url,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.stress

RACES = int(os.environ.get("STRESS_RACES", "5"))
CRASH_ORDERS = int(os.environ.get("STRESS_CRASH_ORDERS", "40"))
CRASH_THREADS = 4
TOKEN = f"stress-token-{secrets.token_hex(8)}"
SECRET = make_secret()
SERVICE_TIMEOUT_SECONDS = 1
# A message claimed when the server died is taken over by a dispatcher on the same host 2 × timeout
# + 2 s after its claimer last set the lease (claims.py); the lease itself (2 × timeout + 30 s) bounds it.
LEASE_SECONDS = 2 * SERVICE_TIMEOUT_SECONDS + 30
IN_PROGRESS_REQUESTS = {"submitted", "accepted", "cancellation_requested", "cancellation_rejected"}
SINK_DELAY_SECONDS = 0.1
OPEN_REQUESTS = {"unsubmitted", "rejected", "cancellation_accepted", "closed"}


def report(text):
    print(f"\n[stress] {text}", flush=True)


def init_db(config_path, database_url):
    """Create the schema once, as an operator would (`flask init-db`) before starting the workers."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "init-db"], cwd=ROOT,
        env=_environ(config_path, database_url), check=True, capture_output=True, timeout=60,
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A gunicorn server (2 workers, in-app dispatcher) on this module's store, its sink and a client."""
    tmp = tmp_path_factory.mktemp("races")
    with Sink() as sink, store_url(tmp, "stress_races") as url:
        config = write_config(
            tmp / "adapter.toml",
            {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": SECRET,
                      "timeout_seconds": SERVICE_TIMEOUT_SECONDS}},
            outbox={"poll_seconds": 0.2},
        )
        init_db(config, url)
        server = start_server(config, url, TOKEN, tmp / "gunicorn.log")
        try:
            yield Remote(server.base_url, TOKEN, {"acme": SECRET}), sink, server
        finally:
            server.stop()


# ---- the contract's invariants, read back through the API --------------------------------------


def new_order(remote, quantity=2):
    body = {
        "external_id": f"stress-{secrets.token_hex(8)}",
        "currency": "USD",
        "email": "somchai@example.com",
        "shipping_address": {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
                             "country_code": "TH"},
        "line_items": [{"sku": "MUG-1", "title": "Mug", "quantity": quantity, "price": "12.50",
                        "fulfillment_service": "acme"}],
    }
    response = remote.merchant("POST", "/orders", body)
    assert response.status_code == 201, response.text
    order = response.json()
    (fo,) = order["fulfillment_orders"]
    return order["id"], fo["id"], fo["line_items"][0]["id"]


def ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def check_invariants(order):
    """Fulfilled ≤ ordered, every count agrees with the shipments, statuses agree with each other."""
    shipped = Counter()
    shipped_per_fo = Counter()
    externals = Counter()
    for fulfillment in order["fulfillments"]:
        externals[fulfillment["external_id"]] += 1
        for line in fulfillment["line_items"]:
            shipped[line["line_item_id"]] += line["quantity"]
            shipped_per_fo[fulfillment["fulfillment_order_id"]] += line["quantity"]
    assert all(count == 1 for key, count in externals.items() if key is not None), externals
    lines = order["line_items"]
    for line in lines:
        assert 0 <= line["fulfilled_quantity"] <= line["quantity"], line
        assert line["fulfilled_quantity"] == shipped[line["id"]], (line, order["fulfillments"])
    for fo in order["fulfillment_orders"]:
        taken = sum(line["quantity"] - line["remaining_quantity"] for line in fo["line_items"])
        assert taken == shipped_per_fo[fo["id"]], fo
        assert all(0 <= line["remaining_quantity"] <= line["quantity"] for line in fo["line_items"]), fo
        remaining = sum(line["remaining_quantity"] for line in fo["line_items"])
        if taken and not remaining:
            assert fo["status"] == "closed", fo
        if fo["status"] == "in_progress":
            assert fo["request_status"] in IN_PROGRESS_REQUESTS, fo
        if fo["status"] == "open":
            assert fo["request_status"] in OPEN_REQUESTS, fo
    fulfilled = [line["fulfilled_quantity"] for line in lines]
    if all(done == line["quantity"] for done, line in zip(fulfilled, lines, strict=True)):
        assert order["fulfillment_status"] == "fulfilled", order
    elif any(fulfilled):
        assert order["fulfillment_status"] == "partially_fulfilled", order
    elif any(fo["status"] == "in_progress" for fo in order["fulfillment_orders"]):
        assert order["fulfillment_status"] == "in_progress", order
    else:
        assert order["fulfillment_status"] == "unfulfilled", order


def state(remote, order_id):
    """Return (order, its only FO, Counter of timeline kinds), after checking the invariants."""
    order = remote.get(f"/orders/{order_id}")
    check_invariants(order)
    kinds = Counter(event["kind"] for event in remote.get(f"/orders/{order_id}/timeline"))
    return order, order["fulfillment_orders"][0], kinds


def refused(response, code):
    """Tell whether `response` is the SPEC's refusal: 409 problem+json with `code`."""
    return (
        response.status_code == 409
        and response.headers.get("Content-Type", "").startswith("application/problem+json")
        and response.json().get("code") == code
    )


def is_replay(response, original):
    return (
        response.status_code == 200
        and response.headers.get("Idempotent-Replayed") == "true"
        and response.json() == original.json()
    )


def applied(response):
    return response.status_code == 200 and "Idempotent-Replayed" not in response.headers


def submitted_fo(remote):
    order_id, fo_id, line_id = new_order(remote)
    ok(remote.merchant("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request", {}))
    return order_id, fo_id, line_id


# ---- (a) races: exactly one winner, the loser gets the SPEC's answer ---------------------------


def accept_against_withdrawal(remote, round_):
    order_id, fo_id, _ = submitted_fo(remote)
    accept, withdraw = race(
        lambda: remote.webhook("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id}),
        lambda: remote.merchant("POST", f"/fulfillment_orders/{fo_id}/cancel", {}),
    )
    _, fo, kinds = state(remote, order_id)
    if applied(accept):
        assert refused(withdraw, "invalid_transition"), withdraw.text
        assert (fo["status"], fo["request_status"]) == ("in_progress", "accepted")
        assert kinds["fulfillment_request.accepted"] == 1 and not kinds["fulfillment_request.withdrawn"]
        return "accept won"
    assert withdraw.status_code == 200, withdraw.text
    assert refused(accept, "invalid_transition"), accept.text
    assert (fo["status"], fo["request_status"]) == ("open", "unsubmitted")
    assert kinds["fulfillment_request.withdrawn"] == 1 and not kinds["fulfillment_request.accepted"]
    return "withdrawal won"


def test_accept_races_merchant_withdrawal(running):
    remote, _, _ = running
    outcomes = Counter(accept_against_withdrawal(remote, round_) for round_ in range(RACES))
    report(f"accept vs withdrawal: {RACES} races, {dict(outcomes)}")


def cancellation_accept_against_shipment(remote, round_):
    order_id, fo_id, _ = submitted_fo(remote)
    ok(remote.webhook("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id}))
    ok(remote.merchant("POST", f"/fulfillment_orders/{fo_id}/cancellation_request", {"message": "stop"}))
    external_id = f"race-ship-{fo_id}-{round_}"
    cancel, ship = race(
        lambda: remote.webhook("acme", "cancellation_request.accepted", {"fulfillment_order_id": fo_id}),
        lambda: remote.webhook("acme", "fulfillment.created",
                               {"fulfillment_order_id": fo_id, "external_id": external_id}),
    )
    order, fo, kinds = state(remote, order_id)
    assert applied(ship), ship.text
    assert [f["external_id"] for f in order["fulfillments"]] == [external_id]
    assert order["line_items"][0]["fulfilled_quantity"] == 2
    assert kinds["fulfillment.created"] == 1
    assert fo["status"] == "closed"
    if applied(cancel):
        assert fo["request_status"] == "cancellation_accepted" and fo["needs_attention"] is True, fo
        assert kinds["cancellation_request.accepted"] == 1
        return "cancellation first"
    assert refused(cancel, "invalid_transition"), cancel.text
    assert fo["request_status"] == "cancellation_requested" and fo["needs_attention"] is False, fo
    assert not kinds["cancellation_request.accepted"]
    return "shipment first"


def test_cancellation_accept_races_shipment(running):
    """The shipment is never lost; the cancellation wins only if it came first (then needs_attention)."""
    remote, _, _ = running
    outcomes = Counter(cancellation_accept_against_shipment(remote, round_) for round_ in range(RACES))
    report(f"cancellation accept vs shipment: {RACES} races, {dict(outcomes)}")


def same_delivery_twice(remote, round_):
    order_id, fo_id, _ = submitted_fo(remote)
    delivery = remote.delivery("acme", "fulfillment.created",
                               {"fulfillment_order_id": fo_id, "external_id": f"twice-{fo_id}-{round_}"})
    answers = race(lambda: remote.send(delivery), lambda: remote.send(delivery))
    fresh = [a for a in answers if applied(a)]
    assert len(fresh) == 1, [(a.status_code, dict(a.headers), a.text) for a in answers]
    (other,) = [a for a in answers if a is not fresh[0]]
    replayed = is_replay(other, fresh[0])
    if not replayed:
        assert other.status_code == 409, other.text
    order, fo, kinds = state(remote, order_id)
    assert len(order["fulfillments"]) == 1 and order["line_items"][0]["fulfilled_quantity"] == 2
    assert kinds["fulfillment.created"] == 1 and kinds["fulfillment_request.accepted"] == 1, kinds
    assert is_replay(remote.send(delivery), fresh[0])
    return "replayed" if replayed else "409 while applying"


def test_the_same_delivery_twice_at_once_applies_once(running):
    remote, _, _ = running
    outcomes = Counter(same_delivery_twice(remote, round_) for round_ in range(RACES))
    report(f"same delivery twice: {RACES} races, loser answered {dict(outcomes)}")


def two_merchants_request(remote, round_):
    order_id, fo_id, _ = new_order(remote)
    answers = race(*[
        lambda n=n: remote.merchant("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request",
                                    {"message": f"merchant {n}, round {round_}"})
        for n in range(2)
    ])
    winners = [a for a in answers if a.status_code == 200]
    losers = [a for a in answers if a.status_code != 200]
    assert len(winners) == 1, [a.text for a in answers]
    assert refused(losers[0], "invalid_transition"), losers[0].text
    _, fo, kinds = state(remote, order_id)
    assert (fo["status"], fo["request_status"]) == ("in_progress", "submitted")
    assert len(fo["merchant_requests"]) == 1 and kinds["fulfillment_request.submitted"] == 1
    return fo_id


def test_two_merchants_requesting_the_same_fo(running):
    remote, sink, _ = running
    fo_ids = [two_merchants_request(remote, round_) for round_ in range(RACES)]

    def submitted_per_fo():
        sent = Counter()
        for receipt in sink.ok_receipts():
            envelope = receipt.envelope
            if envelope["type"] == "fulfillment_request.submitted":
                sent[envelope["data"]["fulfillment_order"]["id"]] += 1
        return sent

    # Exactly one request message per FO reaches the service.
    wait_until(lambda: all(submitted_per_fo()[fo_id] for fo_id in fo_ids), 20)
    sent = submitted_per_fo()
    assert [sent[fo_id] for fo_id in fo_ids] == [1] * len(fo_ids), sent
    report(f"two merchants, one FO: {RACES} races, one request and one message each")


def two_shipments_for_the_last_unit(remote, round_):
    order_id, fo_id, line_id = submitted_fo(remote)
    ok(remote.webhook("acme", "fulfillment.created",
                      {"fulfillment_order_id": fo_id, "external_id": f"first-{fo_id}",
                       "line_items": [{"id": line_id, "quantity": 1}]}))
    answers = race(*[
        lambda n=n: remote.webhook("acme", "fulfillment.created",
                                   {"fulfillment_order_id": fo_id,
                                    "external_id": f"last-{fo_id}-{round_}-{n}",
                                    "line_items": [{"id": line_id, "quantity": 1}]})
        for n in range(2)
    ])
    winners = [a for a in answers if applied(a)]
    assert len(winners) == 1, [(a.status_code, a.text) for a in answers]
    (loser,) = [a for a in answers if a is not winners[0]]
    assert refused(loser, "over_fulfillment"), loser.text
    order, fo, kinds = state(remote, order_id)
    assert order["line_items"][0]["fulfilled_quantity"] == 2
    assert len(order["fulfillments"]) == 2 and kinds["fulfillment.created"] == 2
    assert fo["status"] == "closed" and order["fulfillment_status"] == "fulfilled"
    return f"racer {winners[0].json()['fulfillment']['external_id'].rsplit('-', 1)[1]} won"


def test_two_shipments_for_the_last_unit(running):
    remote, _, _ = running
    outcomes = Counter(two_shipments_for_the_last_unit(remote, round_) for round_ in range(RACES))
    report(f"two shipments for the last unit: {RACES} races, {dict(outcomes)}")


def test_races_leave_no_duplicate_or_overlapping_outbound_message(running):
    """Whatever the races enqueued was never in flight twice at once; the server logged no fault.

    Runs after the races of this module, on their server and sink.
    """
    _, sink, server = running
    assert not sink.overlapping(), sink.overlapping()
    assert "Traceback" not in server.log_tail(200_000), server.log_tail()
    report(f"races: {len(sink.snapshot())} outbound messages, sequential re-sends {sink.resends()}")


# ---- workers booting together on an empty PostgreSQL database (SPEC 1) ------------------------


def test_outbox_workers_starting_together_on_an_empty_postgres_database_all_run(tmp_path):
    """SPEC 1: several processes share one PostgreSQL database; starting them together must work."""
    if not POSTGRES_URL:
        pytest.skip(NEEDS_POSTGRES)
    config = write_config(tmp_path / "adapter.toml",
                          {"acme": {"workflow": "new", "url": "http://127.0.0.1:9/none", "secret": SECRET}},
                          outbox={"in_app_dispatcher": False, "poll_seconds": 0.5})
    for round_ in range(RACES):
        dead = start_workers_together(config, tmp_path, round_)
        assert not dead, (
            f"round {round_}: {len(dead)} of 4 `flask outbox work` processes started together on an "
            f"empty database exited; their output: {dead}"
        )
    report(f"workers booting together: {RACES} rounds of 4 workers, all running")


def start_workers_together(config, tmp_path, round_):
    """Start 4 workers at once on a new database; return the output of those that exited."""
    with postgres_database("stress_boot") as url:
        workers = [start_outbox_worker(config, url, tmp_path / f"w{round_}-{n}.log") for n in range(4)]
        try:
            wait_until(lambda: all("Delivering to" in w.log_tail() or not w.alive() for w in workers), 30)
            return [w.log_tail(600) for w in workers if not w.alive()]
        finally:
            for worker in workers:
                worker.stop(10)


# ---- (b) kill -9 mid-stream, restart: nothing lost, nothing applied twice -----------------------

STEPS = ("request", "accept", "ship1", "ship2", "event")


@dataclass
class Attempt:
    """One request of the stream: which step of which order, what was sent, what came back."""

    order_id: int
    fo_id: int
    step: str
    delivery: object = None  # procs.Delivery for webhooks
    status: int | None = None
    body: str | None = None
    error: str | None = None


def step_call(remote, step, fo_id, line_id):
    """Return (delivery or None, a call that sends it) for one step of an order's flow."""
    if step == "request":
        return None, lambda: remote.merchant("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request",
                                             {"message": f"crash-test {fo_id}"})
    event_type, data = {
        "accept": ("fulfillment_request.accepted", {"fulfillment_order_id": fo_id}),
        "ship1": ("fulfillment.created", {"fulfillment_order_id": fo_id, "external_id": f"crash-{fo_id}-1",
                                          "line_items": [{"id": line_id, "quantity": 1}]}),
        "ship2": ("fulfillment.created", {"fulfillment_order_id": fo_id, "external_id": f"crash-{fo_id}-2"}),
        "event": ("fulfillment.event", {"external_id": f"crash-{fo_id}-1", "status": "in_transit",
                                        "happened_at": "2030-01-01T00:00:00Z"}),
    }[step]
    delivery = remote.delivery("acme", event_type, data)
    return delivery, lambda: remote.send(delivery)


def stream(remote, orders, crashed, attempts, lock):
    """Run each order's flow step by step until an answer is missing; stop once the server died."""
    while not crashed.is_set():
        with lock:
            if not orders:
                return
            order_id, fo_id, line_id = orders.pop()
        for step in STEPS:
            delivery, call = step_call(remote, step, fo_id, line_id)
            attempt = Attempt(order_id, fo_id, step, delivery)
            with lock:
                attempts.append(attempt)
            try:
                response = call()
            except requests.RequestException as exc:
                attempt.error = type(exc).__name__
                break
            attempt.status, attempt.body = response.status_code, response.text
            if not 200 <= response.status_code <= 299:
                break


def submitted_messages(sink):
    """Return {FO id: set of webhook-ids} of fulfillment_request.submitted messages answered 2xx."""
    found = defaultdict(set)
    for receipt in sink.ok_receipts():
        envelope = json.loads(receipt.body)
        if envelope["type"] == "fulfillment_request.submitted":
            found[envelope["data"]["fulfillment_order"]["id"]].add(receipt.webhook_id)
    return found


def test_kill_9_mid_stream_loses_nothing_and_applies_nothing_twice(tmp_path):
    started = time.monotonic()
    # A slow service lets a backlog build, so the kill finds messages committed but not yet sent,
    # and one in flight (claimed under a lease that must run out before another worker sends it).
    with Sink(delay_seconds=SINK_DELAY_SECONDS) as sink, store_url(tmp_path, "stress_crash") as url:
        config = write_config(
            tmp_path / "adapter.toml",
            {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": SECRET,
                      "timeout_seconds": SERVICE_TIMEOUT_SECONDS}},
            outbox={"poll_seconds": 0.2},
        )
        init_db(config, url)
        server = start_server(config, url, TOKEN, tmp_path / "before.log")
        try:
            before = Remote(server.base_url, TOKEN, {"acme": SECRET})
            orders = [new_order(before) for _ in range(CRASH_ORDERS)]
            total_steps = len(orders) * len(STEPS)
            crashed, lock, attempts = threading.Event(), threading.Lock(), []
            queue = list(reversed(orders))
            threads = [threading.Thread(target=stream, args=(before, queue, crashed, attempts, lock),
                                        daemon=True) for _ in range(CRASH_THREADS)]
            for thread in threads:
                thread.start()
            # Kill once about half the stream was answered, with requests still in flight.
            wait_until(lambda: sum(a.status is not None for a in list(attempts)) >= total_steps // 2, 60,
                       interval=0.005)
            crashed.set()
            server.kill()
            killed_at = time.monotonic()
        except BaseException:
            server.kill()
            raise
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a streaming thread hung"
        delivered_before = {r.webhook_id for r in sink.ok_receipts()}
        backlog = outbox_statuses(url)  # as the crash left it

        answered = [a for a in attempts if a.status is not None]
        unanswered = [a for a in attempts if a.status is None]
        assert all(200 <= a.status <= 299 for a in answered), [
            (a.step, a.status, a.body) for a in answered if not 200 <= a.status <= 299]

        server = start_server(config, url, TOKEN, tmp_path / "after.log")
        try:
            after = Remote(server.base_url, TOKEN, {"acme": SECRET})
            # Every answered delivery is stored: the same webhook-id replays the original answer.
            for attempt in answered:
                if attempt.delivery is not None:
                    response = after.send(attempt.delivery)
                    assert response.status_code == 200, (attempt, response.text)
                    assert response.headers.get("Idempotent-Replayed") == "true", (attempt, response.text)
                    assert response.json() == json.loads(attempt.body), attempt
            # A delivery the crash left unanswered is sent again, as a service would: it applies once.
            resent = Counter()
            for attempt in unanswered:
                if attempt.delivery is not None:
                    response = after.send(attempt.delivery)
                    assert response.status_code == 200, (attempt, response.text)
                    resent["replayed" if response.headers.get("Idempotent-Replayed") else "applied"] += 1

            # Every request the merchant saw answered 2xx (and every one that committed unanswered)
            # reaches the service after the restart.
            committed = set()
            for _, fo_id, _ in orders:
                fo = after.get(f"/fulfillment_orders/{fo_id}")
                if fo["merchant_requests"]:
                    committed.add(fo_id)
            requested_2xx = {a.fo_id for a in answered if a.step == "request"}
            assert requested_2xx <= committed
            wait_until(lambda: committed <= set(submitted_messages(sink))
                       and set(outbox_statuses(url)) == {"delivered"}, LEASE_SECONDS + 15, interval=0.2)
            messages = submitted_messages(sink)
            assert set(outbox_statuses(url)) == {"delivered"}, outbox_statuses(url)
            missing = sorted(committed - set(messages))
            assert not missing, f"request messages never delivered for FOs {missing}"
            assert all(len(messages[fo_id]) == 1 for fo_id in committed), messages
            assert set(messages) <= committed, "a message for a request that never committed"

            # Nothing applied twice; every effect the answers promised is visible.
            done = defaultdict(set)
            for attempt in attempts:
                if attempt.status is not None or attempt.delivery is not None:
                    done[attempt.fo_id].add(attempt.step)
            for order_id, fo_id, _ in orders:
                order, fo, kinds = state(after, order_id)
                steps = done[fo_id] if fo_id in committed else set()
                shipped = {f["external_id"] for f in order["fulfillments"]}
                assert kinds["fulfillment_request.submitted"] == (fo_id in committed), kinds
                assert len(fo["merchant_requests"]) == (fo_id in committed)
                assert kinds["fulfillment_request.accepted"] == ("accept" in steps), (fo, kinds)
                expected = {f"crash-{fo_id}-{n}" for n in (1, 2) if f"ship{n}" in steps}
                assert shipped == expected, (fo_id, shipped, steps)
                assert kinds["fulfillment.created"] == len(expected), kinds
                assert kinds["fulfillment.event"] == ("event" in steps), kinds
                if "ship2" in steps:
                    assert fo["status"] == "closed" and order["fulfillment_status"] == "fulfilled"
        finally:
            server.stop()
        overlaps = sink.overlapping()
        assert not overlaps, overlaps
        after_kill = [r for r in sink.ok_receipts() if r.start > killed_at]
        webhooks_sent = [a for a in attempts if a.delivery is not None]
        report(
            f"crash: {len(orders)} orders, {len(attempts)} requests sent before kill -9 "
            f"({len(webhooks_sent)} webhooks, {sum(a.delivery is not None for a in answered)} answered 2xx, "
            f"all {sum(a.delivery is not None for a in answered)} found after restart with "
            f"Idempotent-Replayed); {len(unanswered)} unanswered at the crash, resent: {dict(resent)}; "
            f"merchant requests answered 2xx: {len(requested_2xx)}, committed: {len(committed)}; "
            f"outbox rows as the crash left them: {dict(backlog)}; messages delivered before the crash: "
            f"{len(delivered_before)}, after the restart: {len(after_kill)} sends, "
            f"{len({r.webhook_id for r in after_kill} - delivered_before)} of them new (the last one "
            f"{max((r.end for r in after_kill), default=killed_at) - killed_at:.1f} s after the kill); "
            f"sequential re-sends: {sink.resends()}; "
            f"took {time.monotonic() - started:.1f} s"
        )

"""Deliveries racing each other and the merchant (SPEC 4.2, 2.3): each change happens once.

Every racer uses its own test client, so it gets its own database connection, as
requests on several threads or hosts would; the store is a file or PostgreSQL.
"""

import threading

import pytest
from conftest import Api, fo_of
from test_webhooks import envelope, get_fo, get_order, line, post_raw, signed_headers, timeline

RACERS = 8
ROUNDS = 10


def race(*calls):
    """Start every call at the same moment on its own thread; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results, failures = [None] * len(calls), []

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except BaseException as exc:  # reported below, as the test's failure
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    assert not failures, failures
    return results


def delivery(app, service_key, body, headers):
    """A call that posts one prepared delivery through a test client of its own."""
    client = app.test_client()
    return lambda: post_raw(client, service_key, body, headers)


def merchant_call(app, path):
    api = Api(app.test_client())
    return lambda: api.post(path, {})


def submitted_acme_fo(api, create_order, **changes):
    order = create_order(**changes)
    fo_id = fo_of(order, "acme")["id"]
    response = api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {})
    assert response.status_code == 200, response.body
    return order, fo_id


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_identical_deliveries_at_the_same_moment_apply_once(
    app, api, service, create_order, round_
):
    control, control_fo = submitted_acme_fo(api, create_order)
    order, fo_id = submitted_acme_fo(api, create_order)
    data = {"fulfillment_order_id": fo_id, "external_id": "ship-1", "message": "once"}
    once = service.send("acme", "fulfillment.created",
                        {**data, "fulfillment_order_id": control_fo, "external_id": "ship-0"})
    assert once.status_code == 200, once.body
    body = envelope("fulfillment.created", data).encode()
    headers = signed_headers("acme", body, webhook_id=f"msg_race_{round_}")

    answers = race(*[delivery(app, "acme", body, headers) for _ in range(RACERS)])

    assert all(a.status_code in (200, 409) for a in answers), [a.status_code for a in answers]
    fresh = [a for a in answers if a.status_code == 200 and "Idempotent-Replayed" not in a.headers]
    assert len(fresh) == 1, [(a.status_code, dict(a.headers)) for a in answers]
    assert fresh[0].body["status"] == "applied"
    for answer in answers:
        if answer.status_code == 200 and answer is not fresh[0]:
            assert answer.headers["Idempotent-Replayed"] == "true"
            assert answer.data == fresh[0].data
        elif answer.status_code == 409:
            assert answer.mimetype == "application/problem+json"
    shown = get_order(api, order["id"])
    assert [f["external_id"] for f in shown["fulfillments"]] == ["ship-1"]
    assert [e["kind"] for e in timeline(api, order["id"])] == [
        e["kind"] for e in timeline(api, control["id"])]
    assert [item["remaining_quantity"] for item in get_fo(api, fo_id)["line_items"]] == [0, 0]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_same_shipment_under_different_webhook_ids_at_once_records_one_fulfillment(
    app, api, create_order, round_
):
    order, fo_id = submitted_acme_fo(api, create_order)
    body = envelope("fulfillment.created", {"fulfillment_order_id": fo_id, "external_id": "s-1"})
    calls = [delivery(app, "acme", body.encode(), signed_headers("acme", body.encode()))
             for _ in range(4)]

    answers = race(*calls)

    assert all(a.status_code in (200, 409) for a in answers), [a.body for a in answers]
    assert any(a.status_code == 200 for a in answers)
    (fulfillment,) = get_order(api, order["id"])["fulfillments"]
    assert all(a.body["fulfillment"]["id"] == fulfillment["id"]
               for a in answers if a.status_code == 200)
    assert [item["remaining_quantity"] for item in get_fo(api, fo_id)["line_items"]] == [0, 0]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_accept_racing_a_withdrawal_lets_exactly_one_win(
    app, api, service, deliver, create_order, round_
):
    order, fo_id = submitted_acme_fo(api, create_order)
    body = envelope("fulfillment_request.accepted", {"fulfillment_order_id": fo_id}).encode()

    accept, withdraw = race(
        delivery(app, "acme", body, signed_headers("acme", body)),
        merchant_call(app, f"/fulfillment_orders/{fo_id}/cancel"),
    )

    assert sorted([accept.status_code, withdraw.status_code]) == [200, 409], (
        accept.body, withdraw.body)
    fo = get_fo(api, fo_id)
    loser = accept if accept.status_code == 409 else withdraw
    assert loser.body["code"] == "invalid_transition"
    assert (loser.body["current_status"], loser.body["request_status"]) == (
        fo["status"], fo["request_status"])
    (request,) = fo["merchant_requests"]
    kinds = [e["kind"] for e in timeline(api, order["id"])]
    while deliver():  # one run sends one message per FO
        pass
    withdrawn_sent = service.sent("fulfillment_request.withdrawn")
    if accept.status_code == 200:
        assert (fo["status"], fo["request_status"]) == ("in_progress", "accepted")
        assert accept.body["fulfillment_order"] == fo
        assert request["status"] == "accepted"
        assert "fulfillment_request.withdrawn" not in kinds
        assert withdrawn_sent == []
        assert "cancel_fulfillment_request" not in fo["supported_actions"]
    else:
        assert (fo["status"], fo["request_status"]) == ("open", "unsubmitted")
        assert withdraw.body == fo
        assert request["status"] != "accepted"
        assert "fulfillment_request.accepted" not in kinds
        assert len(withdrawn_sent) == 1
        assert "request_fulfillment" in fo["supported_actions"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_shipments_for_the_last_unit_one_is_over_fulfillment(
    app, api, service, create_order, round_
):
    order, fo_id = submitted_acme_fo(api, create_order, line_items=[line("acme", quantity=1)])
    accepted = service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
    assert accepted.status_code == 200, accepted.body
    bodies = [envelope("fulfillment.created", {"fulfillment_order_id": fo_id, "external_id": name})
              .encode() for name in ("box-a", "box-b")]

    answers = race(*[delivery(app, "acme", body, signed_headers("acme", body)) for body in bodies])

    assert sorted(a.status_code for a in answers) == [200, 409], [a.body for a in answers]
    winner, loser = sorted(answers, key=lambda a: a.status_code)
    assert loser.body["code"] == "over_fulfillment"
    shown = get_order(api, order["id"])
    assert [f["external_id"] for f in shown["fulfillments"]] == [
        winner.body["fulfillment"]["external_id"]]
    assert shown["line_items"][0]["fulfilled_quantity"] == 1
    fo = get_fo(api, fo_id)
    assert fo["status"] == "closed"
    assert fo["line_items"][0]["remaining_quantity"] == 0

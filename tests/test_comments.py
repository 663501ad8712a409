"""`POST /orders/{id}/comments`: a staff comment on the timeline, in every state of the order."""

import pytest
from conftest import fo_of

from adapter import timeline
from adapter.errors import NotFound

EVENT_KEYS = {"id", "at", "actor", "actor_name", "kind", "fulfillment_order_id", "message", "data"}


def comment(api, order_id, message, **kwargs):
    return api.post(f"/orders/{order_id}/comments", {"message": message}, **kwargs)


def test_a_comment_is_201_with_the_timeline_event_it_wrote(api, create_order, clock):
    order = create_order()
    before = api.get(f"/orders/{order['id']}/timeline").body

    response = comment(api, order["id"], "Customer asked for gift wrap.")

    assert response.status_code == 201, response.body
    event = response.body
    assert set(event) == EVENT_KEYS
    assert event["actor"] == "merchant"
    assert event["actor_name"] is None
    assert event["kind"] == "comment"
    assert event["fulfillment_order_id"] is None
    assert event["message"] == "Customer asked for gift wrap."
    assert event["data"] == {}
    assert event["at"] == clock.now.isoformat() + "Z"
    after = api.get(f"/orders/{order['id']}/timeline").body
    assert after == [*before, event]


def test_a_comment_keeps_its_text_exactly(api, create_order):
    text = "  ลูกค้าขอห่อของขวัญ 🎁\nโทรก่อนส่ง ☎️  "
    order = create_order()

    response = comment(api, order["id"], text)

    assert response.status_code == 201
    assert response.body["message"] == text
    assert api.get(f"/orders/{order['id']}/timeline").body[-1]["message"] == text


def test_a_comment_changes_nothing_else_on_the_order(api, create_order, clock):
    order = create_order()
    clock.advance(minutes=5)

    assert comment(api, order["id"], "Checked stock by phone.").status_code == 201

    after = api.get(f"/orders/{order['id']}").body
    assert after == order
    assert after["updated_at"] == order["updated_at"]


def archived(api, order_id):
    assert api.post(f"/orders/{order_id}/archive", {}).status_code == 200


def cancelled(api, order_id):
    assert api.post(f"/orders/{order_id}/cancel", {"reason": "customer", "refund": False}).status_code == 200


def cancelled_and_archived(api, order_id):
    cancelled(api, order_id)
    archived(api, order_id)


def paid(api, order_id):
    sale = {"kind": "sale", "amount": "45.50"}
    assert api.post(f"/orders/{order_id}/transactions", sale).status_code == 201


def locked_by_a_request(api, order_id):
    fo = fo_of(api.get(f"/orders/{order_id}").body, "acme")
    answer = api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    assert answer.status_code == 200
    edit = api.patch(f"/orders/{order_id}", {"email": "new@example.com"})
    assert edit.status_code == 409 and edit.body["code"] == "order_locked"


@pytest.mark.parametrize("make", [archived, cancelled, cancelled_and_archived, paid,
                                  locked_by_a_request])
def test_a_comment_is_allowed_in_every_state(api, create_order, make):
    order = create_order()
    make(api, order["id"])

    response = comment(api, order["id"], "Noted.")

    assert response.status_code == 201, response.body
    assert api.get(f"/orders/{order['id']}/timeline").body[-1]["kind"] == "comment"


@pytest.mark.parametrize(("body", "field"), [
    ({"message": ""}, "message"),
    ({"message": "   "}, "message"),
    ({"message": "\n\t\u3000"}, "message"),
    ({"message": None}, "message"),
    ({"message": 5}, "message"),
    ({"message": ["hi"]}, "message"),
    ({"message": "x" * 5001}, "message"),
    ({}, "message"),
    ({"message": "hi", "note": "extra"}, "note"),
])
def test_a_bad_comment_is_422_and_writes_nothing(api, create_order, body, field):
    order = create_order()
    before = api.get(f"/orders/{order['id']}/timeline").body

    response = api.post(f"/orders/{order['id']}/comments", body)

    assert response.status_code == 422
    assert response.body["code"] == "validation_failed"
    assert field in response.body["errors"]
    assert api.get(f"/orders/{order['id']}/timeline").body == before


def test_a_comment_on_an_unknown_order_is_404(api):
    response = comment(api, 999999, "Hello")
    assert response.status_code == 404
    assert response.body["code"] == "not_found"


def test_a_comment_without_a_token_is_401(api, create_order):
    order = create_order()
    response = comment(api, order["id"], "Hello", token=None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_core_adds_a_comment_without_http(app, create_order, clock):
    order = create_order()
    with app.app_context(), timeline.acting_as("Malee"):
        event = timeline.add_comment(order["id"], "From the core.", clock.now)
        with pytest.raises(NotFound):
            timeline.add_comment(999999, "Nobody.", clock.now)
    assert (event.kind, event.actor, event.actor_name) == ("comment", "merchant", "Malee")


def test_the_comment_endpoint_is_documented(api):
    document = api.get("/openapi.json", token=None).body
    operation = document["paths"]["/orders/{order_id}/comments"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    answer = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    assert set(schemas[body.rsplit("/", 1)[-1]]["properties"]) == {"message"}
    assert set(schemas[answer.rsplit("/", 1)[-1]]["properties"]) == EVENT_KEYS
    assert {"201", "401", "404", "422"} <= set(operation["responses"])

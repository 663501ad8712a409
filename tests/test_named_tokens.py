"""Named merchant tokens (`[[merchant.tokens]]`): accepted like plain ones, and the timeline
records the name as `actor_name` on every merchant event the token's requests write."""

import pytest
from conftest import TOKEN, fo_of, order_payload

from adapter import models, schema, store, timeline
from config import ConfigError, load_settings
from handlers import auth

NAMED = "named-token-somchai-0123456789"
OTHER = "named-token-malee-0123456789"


@pytest.fixture
def overrides(overrides):
    """Two named tokens beside the plain test token."""
    overrides["merchant"]["tokens"] = [
        {"name": "Somchai (warehouse)", "token": NAMED},
        {"name": "มาลี 🌸", "token": OTHER},
    ]
    return overrides


def write(tmp_path, text):
    path = tmp_path / "adapter.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- configuration --------------------------------------------------------------------------


def test_named_tokens_load_beside_plain_ones(tmp_path):
    path = write(tmp_path, '[merchant]\napi_tokens = ["plain-1"]\n'
                           '[[merchant.tokens]]\nname = "Somchai"\ntoken = "named-1"\n'
                           '[[merchant.tokens]]\nname = "Somchai"\ntoken = "named-2"\n')
    settings = load_settings(path, environ={})
    assert settings.api_tokens == ("plain-1", "named-1", "named-2")
    assert dict(settings.token_names) == {"named-1": "Somchai", "named-2": "Somchai"}


def test_environment_tokens_replace_the_plain_list_and_keep_the_named_ones(tmp_path):
    path = write(tmp_path, '[merchant]\napi_tokens = ["plain-1"]\n'
                           '[[merchant.tokens]]\nname = "Somchai"\ntoken = "named-1"\n')
    settings = load_settings(path, environ={"MERCHANT_API_TOKENS": "env-1"})
    assert settings.api_tokens == ("env-1", "named-1")


BAD_TOKENS = [
    ("not an array", "[merchant]\ntokens = 3\n"),
    ("not tables", '[merchant]\ntokens = ["abc"]\n'),
    ("no name", '[[merchant.tokens]]\ntoken = "abc"\n'),
    ("empty name", '[[merchant.tokens]]\nname = ""\ntoken = "abc"\n'),
    ("blank name", '[[merchant.tokens]]\nname = " \\t"\ntoken = "abc"\n'),
    ("name not a string", '[[merchant.tokens]]\nname = 7\ntoken = "abc"\n'),
    ("name too long", f'[[merchant.tokens]]\nname = "{"n" * 256}"\ntoken = "abc"\n'),
    ("no token", '[[merchant.tokens]]\nname = "Somchai"\n'),
    ("blank token", '[[merchant.tokens]]\nname = "Somchai"\ntoken = "  "\n'),
    ("token not a string", '[[merchant.tokens]]\nname = "Somchai"\ntoken = 5\n'),
    ("unknown key", '[[merchant.tokens]]\nname = "Somchai"\ntoken = "abc"\nrole = "admin"\n'),
    ("token named twice", '[[merchant.tokens]]\nname = "A"\ntoken = "abc"\n'
                          '[[merchant.tokens]]\nname = "B"\ntoken = "abc"\n'),
    ("token plain and named", '[merchant]\napi_tokens = ["abc"]\n'
                              '[[merchant.tokens]]\nname = "A"\ntoken = "abc"\n'),
]


@pytest.mark.parametrize("text", [text for _, text in BAD_TOKENS], ids=[n for n, _ in BAD_TOKENS])
def test_a_bad_named_token_stops_the_start_naming_the_key_and_never_the_token(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: merchant.tokens: ")
    assert "\n" not in message
    assert "abc" not in message


# ---- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("token", [TOKEN, NAMED, OTHER])
def test_plain_and_named_tokens_are_accepted(api, token):
    assert api.get("/orders", token=token).status_code == 200


@pytest.mark.parametrize("token", ["Somchai (warehouse)", NAMED + "x", NAMED[:-1]])
def test_a_name_or_a_near_token_is_refused(api, token):
    response = api.get("/orders", token=token)
    assert response.status_code == 401
    assert response.body["code"] == "unauthorized"


def test_the_admin_pages_can_learn_a_tokens_name(app):
    with app.app_context():
        assert auth.token_name(NAMED) == "Somchai (warehouse)"
        assert auth.token_name(OTHER) == "มาลี 🌸"
        assert auth.token_name(TOKEN) is None
        assert auth.token_name("not-configured") is None
        assert auth.matching_token(NAMED) == NAMED
        assert auth.matching_token("not-configured") is None


# ---- the timeline ---------------------------------------------------------------------------


def run_every_merchant_action(api, token):
    """Import an order and act on it, its FOs and a return with `token`; return the order id."""
    def ok(response, status=(200, 201)):
        assert response.status_code in status, response.body
        return response.body

    order = ok(api.post("/orders", order_payload(name="#named"), token=token))
    order_id = order["id"]
    acme, own = fo_of(order, "acme"), fo_of(order, None)
    ok(api.patch(f"/orders/{order_id}", {"email": "new@example.com"}, token=token))
    ok(api.post(f"/orders/{order_id}/transactions", {"kind": "sale", "amount": "45.50"},
                token=token))
    ok(api.post(f"/orders/{order_id}/comments", {"message": "Gift wrap"}, token=token))
    ok(api.post(f"/fulfillment_orders/{own['id']}/hold", {"reason": "other", "note": "wait"},
                token=token))
    ok(api.post(f"/fulfillment_orders/{own['id']}/release_hold", {}, token=token))
    ok(api.post(f"/fulfillment_orders/{own['id']}/mark_fulfilled", {}, token=token))
    ok(api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {"message": "Fast"},
                token=token))
    ok(api.post(f"/fulfillment_orders/{acme['id']}/messages", {"message": "Thanks"},
                token=token))
    line = next(line for line in order["line_items"] if line["fulfillment_service"] is None)
    return_ = ok(api.post(f"/orders/{order_id}/returns", {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line["id"], "quantity": 1, "reason": "defective"}],
    }, token=token))
    ok(api.post(f"/returns/{return_['id']}/approve", {}, token=token))
    ok(api.post(f"/orders/{order_id}/archive", {}, token=token))
    return order_id


MERCHANT_KINDS = {"order.created", "order.edited", "transaction.sale", "comment",
                  "fulfillment_order.held", "fulfillment_order.hold_released",
                  "fulfillment.created", "fulfillment_request.submitted", "merchant.message",
                  "return.approved", "order.archived"}


@pytest.mark.parametrize(("token", "name"), [
    (NAMED, "Somchai (warehouse)"),
    (OTHER, "มาลี 🌸"),
    (TOKEN, None),
])
def test_every_merchant_event_names_the_token_that_acted(api, outbound, token, name):
    order_id = run_every_merchant_action(api, token)

    events = api.get(f"/orders/{order_id}/timeline").body
    merchant = [event for event in events if event["actor"] == "merchant"]
    assert {event["kind"] for event in merchant} >= MERCHANT_KINDS
    # One merchant event per action; the customer's return request is the customer's.
    assert len(merchant) == 11
    assert [e["actor"] for e in events if e["kind"] == "return.requested"] == ["customer"]
    assert {event["actor_name"] for event in merchant} == {name}
    assert all(event["actor_name"] is None for event in events if event["actor"] != "merchant")


def test_a_name_does_not_outlive_its_request(app, api, service, create_order):
    """The next request served by the same thread, plain token or service, names nobody."""
    order = create_order()
    acme = fo_of(order, "acme")
    assert api.post(f"/orders/{order['id']}/comments", {"message": "a"}, token=NAMED).status_code == 201
    assert api.post(f"/orders/{order['id']}/comments", {"message": "b"}).status_code == 201
    assert api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request", {},
                    token=NAMED).status_code == 200
    assert service.send("acme", "fulfillment_request.accepted",
                        {"fulfillment_order_id": acme["id"]}).status_code == 200
    with app.app_context():
        assert timeline._acting.get() is None

    events = api.get(f"/orders/{order['id']}/timeline").body
    named = [(event["kind"], event["actor"], event["actor_name"]) for event in events[1:]]
    assert named[:2] == [("comment", "merchant", "Somchai (warehouse)"),
                         ("comment", "merchant", None)]
    assert named[-1][1:] == ("service", None)


def test_a_refused_request_names_nobody_afterwards(app, api, create_order):
    order = create_order()
    assert api.get("/orders", token="wrong").status_code == 401
    assert api.post(f"/orders/{order['id']}/comments", {"message": "x"}).body["actor_name"] is None


def test_only_merchant_events_carry_the_name(app, create_order, clock):
    order = create_order()
    with app.app_context(), store.transaction(), timeline.acting_as("Somchai"):
        row = models.Order.get_by_id(order["id"])
        for actor in ("merchant", "system", "service", "customer"):
            timeline.record(row, "test.event", clock.now, actor=actor)
    with app.app_context():
        events = [e for e in timeline.events_of(order["id"]) if e.kind == "test.event"]
    assert [(e.actor, e.actor_name) for e in events] == [
        ("merchant", "Somchai"), ("system", None), ("service", None), ("customer", None),
    ]


def test_a_version_2_store_gains_actor_names_and_keeps_its_events(app, api, create_order):
    order = create_order()
    with store.database.connection_context():
        store.database.execute_sql("ALTER TABLE timeline_event DROP COLUMN actor_name")
        models.SchemaVersion.update(version=2).execute()
    schema.create_tables()
    with store.database.connection_context():
        assert schema.stored_schema_version() == schema.SCHEMA_VERSION
    events = api.get(f"/orders/{order['id']}/timeline").body
    assert [(e["kind"], e["actor_name"]) for e in events] == [("order.created", None)]
    assert api.post(f"/orders/{order['id']}/comments", {"message": "x"},
                    token=NAMED).body["actor_name"] == "Somchai (warehouse)"



@pytest.mark.parametrize(("token", "name"), [(NAMED, "Somchai (warehouse)"), (TOKEN, None)])
def test_an_admin_page_action_records_the_name_of_the_token_signed_in(app, api, create_order, token, name):
    """The pages act under the signed-in token's name, as the API does."""
    from admin.conftest import Admin

    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    browser = Admin(app.test_client())
    assert browser.sign_in(token=token).status_code == 302
    held = browser.post_form(f"/admin/fulfillment_orders/{fo_id}/hold", {"reason": "other"},
                             from_page=f"/admin/orders/{order['id']}")
    assert held.status_code == 302, held.html
    [event] = [e for e in api.get(f"/orders/{order['id']}/timeline").body
               if e["kind"] == "fulfillment_order.held"]
    assert (event["actor"], event["actor_name"]) == ("merchant", name)

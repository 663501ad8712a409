"""`GET /orders?q=`: an order found by its exact name, external_id, email, shipping phone or
tracking number, through indexes, combined with every filter and paged by the cursor."""

from datetime import datetime

import pytest
from conftest import POSTGRES_URL, fo_of

from adapter import models, order_list, schema, store
from adapter.search_keys import phone_key

ADDRESS = {"name": "Somchai", "address1": "1 Sukhumvit Rd", "city": "Bangkok",
           "country_code": "TH", "phone": "+66 81-234-5678"}


def ids(api, **query):
    response = api.get("/orders", query_string=query)
    assert response.status_code == 200, response.body
    return [order["id"] for order in response.body["orders"]]


@pytest.fixture
def shop(api, create_order):
    """Four orders: one to find by every key, a repeat customer's two, and a stranger's."""
    found = create_order(name="#A-100", external_id="shop-5501", email="Somchai.K@Example.COM",
                         shipping_address=ADDRESS)
    own = fo_of(found, None)
    shipped = api.post(f"/fulfillment_orders/{own['id']}/mark_fulfilled",
                       {"tracking": {"number": "TH123456789X", "company": "Kerry"}})
    assert shipped.status_code == 201, shipped.body
    repeat = [create_order(email="malee@example.com") for _ in range(2)]
    stranger = create_order(email="stranger@example.com")
    return {"found": found["id"], "repeat": [order["id"] for order in repeat],
            "stranger": stranger["id"]}


@pytest.mark.parametrize("q", [
    "#A-100",
    "shop-5501",
    "Somchai.K@Example.COM",
    "somchai.k@example.com",
    "SOMCHAI.K@EXAMPLE.COM",
    "+66 81-234-5678",
    "66812345678",
    "+66 (81) 234 5678",
    "๖๖๘๑๒๓๔๕๖๗๘",
    "TH123456789X",
    "th123456789x",
    "  TH123456789X  ",
])
def test_each_key_finds_its_order(api, shop, q):
    assert ids(api, q=q) == [shop["found"]]


def test_a_number_finds_the_order_named_with_a_hash(api, create_order):
    order = create_order()
    assert order["name"] == f"#{1000 + order['id']}"
    assert ids(api, q=str(1000 + order["id"])) == [order["id"]]
    assert ids(api, q=order["name"]) == [order["id"]]


@pytest.mark.parametrize("q", [
    "A-100",
    "#A-10",
    "shop-55",
    "somchai",
    "example.com",
    "0812345678",
    "TH123456789",
    "Kerry",
    "nobody@example.com",
])
def test_a_part_or_a_near_miss_finds_nothing(api, shop, q):
    assert ids(api, q=q) == []


def test_an_email_lists_every_order_of_the_customer_newest_first_once(api, shop):
    assert ids(api, q="MALEE@example.com") == shop["repeat"][::-1]


def test_an_order_matching_two_keys_is_listed_once(api, create_order):
    order = create_order(name="same-key", external_id="same-key")
    assert ids(api, q="same-key") == [order["id"]]


def test_search_pages_with_the_cursor(api, create_order):
    orders = [create_order(email="pages@example.com")["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        query = {"q": "pages@example.com", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/orders", query_string=query).body
        assert len(page["orders"]) <= 2
        seen += [order["id"] for order in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == orders[::-1]


def test_search_combines_with_every_filter(api, shop):
    first, second = shop["repeat"]
    assert api.post(f"/orders/{first}/archive", {}).status_code == 200
    sale = {"kind": "sale", "amount": "45.50"}
    assert api.post(f"/orders/{second}/transactions", sale).status_code == 201

    assert ids(api, q="malee@example.com", order_status="archived") == [first]
    assert ids(api, q="malee@example.com", order_status="open") == [second]
    assert ids(api, q="malee@example.com", payment_status="paid") == [second]
    assert ids(api, q="malee@example.com", payment_status="unpaid") == [first]
    assert ids(api, q="malee@example.com", fulfillment_status="unfulfilled") == [second, first]
    assert ids(api, q="malee@example.com", service="acme") == [second, first]
    assert ids(api, q="malee@example.com", service="oldco") == []
    assert ids(api, q="malee@example.com", needs_attention="false") == [second, first]
    assert ids(api, q="malee@example.com", return_status="returned") == []
    assert ids(api, q="TH123456789X", fulfillment_status="partially_fulfilled") == [shop["found"]]
    assert ids(api, q="TH123456789X", order_status="archived") == []


def test_an_edit_moves_the_keys_in_the_same_change(api, shop):
    found = shop["found"]
    edit = {"email": "new.address@example.com",
            "shipping_address": {**ADDRESS, "phone": "02 111 2222"}}
    assert api.patch(f"/orders/{found}", edit).status_code == 200

    assert ids(api, q="somchai.k@example.com") == []
    assert ids(api, q="+66 81-234-5678") == []
    assert ids(api, q="New.Address@example.com") == [found]
    assert ids(api, q="021112222") == [found]


def test_an_address_without_a_phone_has_no_phone_key(api, create_order):
    order = create_order(shipping_address={"city": "Bangkok", "phone": None})
    assert api.patch(f"/orders/{order['id']}", {"shipping_address": None}).status_code == 200
    with store.database.connection_context():
        assert models.Order.get_by_id(order["id"]).phone_key is None


@pytest.mark.parametrize("q", ["", "   ", "\t", "x" * 321])
def test_a_blank_or_overlong_q_is_422(api, q):
    response = api.get("/orders", query_string={"q": q})
    assert response.status_code == 422
    assert response.body["code"] == "validation_failed"
    assert "q" in response.body["errors"]


@pytest.mark.parametrize(("text", "key"), [
    ("081-234-5678", "0812345678"),
    ("๐๘๑ ๒๓๔ ๕๖๗๘", "0812345678"),
    ("+66 (0) 81", "66081"),
    ("no digits", None),
    ("", None),
])
def test_a_phone_key_is_its_digits(text, key):
    assert phone_key(text) == key


def indexed_columns(model):
    return {tuple(index.columns) for index in store.database.get_indexes(model._meta.table_name)}


def test_every_search_key_is_indexed(app):
    with store.database.connection_context():
        assert {("name",), ("email_key",), ("phone_key",), ("external_id",)} <= indexed_columns(
            models.Order)
        assert ("tracking_number",) in indexed_columns(models.Fulfillment)


@pytest.mark.skipif(POSTGRES_URL is not None, reason="PostgreSQL plans from its statistics")
@pytest.mark.parametrize("filters", [
    {"q": "somchai@example.com"},
    {"q": "0812345678", "payment_status": ["unpaid"], "order_status": ["open"],
     "service": ["acme"]},
])
@pytest.mark.parametrize("after_id", [None, 1000], ids=["first page", "next page"])
def test_sqlite_reads_a_search_from_the_key_indexes_only(app, filters, after_id):
    sql, params = order_list.list_query(filters, 50, after_id, datetime(2030, 6, 1), 2).sql()
    with store.database.connection_context():
        plan = [row[-1] for row in store.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]

    reads = [line for line in plan if line.startswith(("SCAN", "SEARCH"))]
    assert not [line for line in reads if line.startswith("SCAN")], plan
    assert "MULTI-INDEX OR" in plan, plan
    for index in ("orders_name", "orders_external_id", "orders_email_key",
                  "fulfillment_tracking_number"):
        assert any(f"USING INDEX {index} (" in line for line in reads), plan


def test_a_version_2_store_gains_the_search_keys_of_its_orders(api, shop):
    with store.database.connection_context():
        for index in store.database.get_indexes("orders"):
            if set(index.columns) & {"email_key", "phone_key"}:
                store.database.execute_sql(f'DROP INDEX "{index.name}"')
        for column in ("email_key", "phone_key"):
            store.database.execute_sql(f"ALTER TABLE orders DROP COLUMN {column}")
        models.SchemaVersion.update(version=2).execute()

    schema.create_tables()

    with store.database.connection_context():
        assert schema.stored_schema_version() == schema.SCHEMA_VERSION
        assert {("email_key",), ("phone_key",)} <= indexed_columns(models.Order)
    assert ids(api, q="SOMCHAI.k@example.com") == [shop["found"]]
    assert ids(api, q="66812345678") == [shop["found"]]
    assert ids(api, q="malee@example.com") == shop["repeat"][::-1]


def test_the_upgrade_keys_orders_in_batches(api, create_order, monkeypatch):
    orders = [create_order(email=f"Batch{n}@Example.com")["id"] for n in range(5)]
    with store.database.connection_context():
        models.Order.update(email_key=None, phone_key=None).execute()
        models.SchemaVersion.update(version=2).execute()
    monkeypatch.setattr(schema, "BACKFILL_BATCH", 2)

    schema.create_tables()

    assert [ids(api, q=f"batch{n}@example.com") for n in range(5)] == [[i] for i in orders]

"""Order views are rendered without a schema pass: they must be exactly what the schemas dump."""

import json
import logging
from collections import Counter
from datetime import timedelta

import pytest
from conftest import fo_of, order_payload

from adapter import derived, rendering, store
from adapter.models import Fulfillment, FulfillmentOrder, Order, Return, Transaction
from handlers import schemas

ORDER_OUT = schemas.OrderOutSchema()
FO_OUT = schemas.FulfillmentOrderOutSchema()
FULFILLMENT_OUT = schemas.FulfillmentOutSchema()
RETURN_OUT = schemas.ReturnOutSchema()
TRANSACTION_OUT = schemas.TransactionOutSchema()


def iso(moment):
    """Format a naive UTC time as the API takes it, keeping its microseconds."""
    return moment.isoformat() + "Z"


def line(service, quantity=1, price="10.00", sku="SKU", title="Item"):
    """Return an order line for `service` (None = merchant-managed)."""
    return {"sku": sku, "title": title, "quantity": quantity, "price": price,
            "fulfillment_service": service}


def text(value):
    """JSON text, so that 1 and true or "1" and 1 never compare equal."""
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture
def orders(api, service, clock):
    """Create orders in every shape a view can take; return them as intake answered."""
    now = clock.now
    created = []

    def create(status=201, **changes):
        response = api.post("/orders", order_payload(**changes))
        assert response.status_code == status, response.body
        created.append(response.body["id"])
        return response.body

    shipped = create(
        shipping_address={"name": "สมชาย", "city": "กรุงเทพ", "country_code": "TH"},
        payment_due_at=iso(now + timedelta(days=30, microseconds=250)),
        line_items=[line("acme", 2, "12.50", "TEE-1", "T-shirt 👕"), line("acme", 1, "5.00", None),
                    line(None, 3, "1.25", "CARD", "Gift card"), line("oldco", 1, "7.00")],
        transactions=[
            {"kind": "authorization", "amount": "30.00",
             "expires_at": iso(now + timedelta(days=20, microseconds=123456))},
            {"kind": "capture", "amount": "10.00"},
        ],
    )
    acme = fo_of(shipped, "acme")
    assert api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request",
                    {"message": "Gift wrap, please"}).status_code == 200
    assert service.send("acme", "fulfillment_request.accepted",
                        {"fulfillment_order_id": acme["id"], "message": "ok"}).status_code == 200
    assert service.send("acme", "fulfillment.created", {
        "fulfillment_order_id": acme["id"], "external_id": "ship-1",
        "line_items": [{"id": acme["line_items"][0]["id"], "quantity": 1}],
        "tracking": {"number": "1Z999", "company": "UPS", "url": "https://ups.example/1Z999"},
    }).status_code == 200
    for hours, status in ((3, "in_transit"), (1, "out_for_delivery")):
        assert service.send("acme", "fulfillment.event", {
            "external_id": "ship-1", "status": status,
            "happened_at": iso(now - timedelta(hours=hours, microseconds=5)),
            "message": "ผ่านศูนย์คัดแยก", "estimated_delivery_at": iso(now + timedelta(days=1)),
            "location": {"city": "Bangkok", "lat": 13.75, "codes": ["TH", 10]},
        }).status_code == 200
    managed = fo_of(shipped, None)
    assert api.post(f"/fulfillment_orders/{managed['id']}/mark_fulfilled", {
        "tracking": {"number": "TH-1", "company": None, "url": None},
    }).status_code == 201
    card = next(item["id"] for item in shipped["line_items"] if item["sku"] == "CARD")
    assert api.post(f"/orders/{shipped['id']}/returns", {
        "requested_by": "customer", "line_items": [{"line_item_id": card, "quantity": 1}],
    }).status_code == 201
    legacy = fo_of(shipped, "oldco")
    assert api.post(f"/fulfillment_orders/{legacy['id']}/fulfillment_request", {}).status_code == 200

    create(currency="JPY", email=None, hold={"reason": "other", "note": "รอการยืนยัน"},
           line_items=[line("acme", 2, "1500", None, "湯呑み"), line(None, 1, "0")])
    create(currency="KWD", fulfill_at=iso(now + timedelta(days=2, microseconds=1)),
           line_items=[line("acme", 1, "1.005"), line("oldco", 2, "0.250")],
           transactions=[{"kind": "sale", "amount": "1.505"}])
    create(fulfill_at=iso(now - timedelta(hours=1)), transactions=[{"kind": "authorization",
           "amount": "45.50", "expires_at": iso(now + timedelta(hours=2))}])
    create(transactions=[{"kind": "authorization", "amount": "45.50"}])
    create(payment_due_at=iso(now - timedelta(minutes=1)))
    cancelled = create(transactions=[{"kind": "sale", "amount": "45.50"}])
    assert api.post(f"/orders/{cancelled['id']}/cancel",
                    {"reason": "Customer changed their mind", "refund": True}).status_code == 200
    archived = create(name="#SHOP-1", external_id="shop-1")
    assert api.post(f"/orders/{archived['id']}/archive", {}).status_code == 200
    create(line_items=[line("autoship", 2, "3.00"), line(None, 1, "4.00")],
           transactions=[{"kind": "sale", "amount": "10.00"}])
    create(line_items=[line("autoship", 1, "0.00")])
    create(line_items=[line("autoship", 1, "2.00")], transactions=[
        {"kind": "authorization", "amount": "2.00", "expires_at": iso(now - timedelta(seconds=1))},
    ])
    create(status=200, name="#SHOP-1", external_id="shop-1")
    return created


@pytest.fixture
def core(app):
    """Run core calls as a request would: in the app context, connected to the store."""
    with app.app_context():
        store.database.connect(reuse_if_open=True)
        yield


def fields_match(schema, value, path="order"):
    """Assert that `value` has exactly the fields `schema` declares, at every depth."""
    assert set(value) == set(schema.fields), path
    for name, declared in schema.fields.items():
        inner = getattr(declared, "inner", declared)
        nested = getattr(inner, "schema", None)
        if nested is None or value[name] is None:
            continue
        for index, item in enumerate(value[name] if declared is not inner else [value[name]]):
            fields_match(nested, item, f"{path}.{name}.{index}")


def test_rendered_orders_are_exactly_what_the_order_schema_dumps(orders, clock, core):
    rendered = rendering.order_views([Order.get_by_id(order_id) for order_id in orders], clock.now)
    assert [view["id"] for view in rendered] == orders
    for view in rendered:
        fields_match(ORDER_OUT, view)
        assert text(view) == text(ORDER_OUT.dump(ORDER_OUT.load(view)))


def test_order_summaries_say_what_the_order_views_say(orders, clock, core):
    """The orders list shows summaries: each field is its order view's, services are its FOs'."""
    rows = [Order.get_by_id(order_id) for order_id in orders]
    views = rendering.order_views(rows, clock.now)
    summaries = rendering.order_summaries(rows, clock.now)
    assert len(summaries) == len(views) == len(orders)
    for summary, view in zip(summaries, views, strict=True):
        assert text({name: view[name] for name in summary if name != "services"}) == text(
            {name: value for name, value in summary.items() if name != "services"})
        assert summary["services"] == [fo["service"] for fo in view["fulfillment_orders"]]
    assert {summary["payment_status"] for summary in summaries} >= {"pending", "paid"}
    assert any(None in summary["services"] for summary in summaries)


def schema_dumped(schema, views_):
    return [schema.dump(schema.load(view)) for view in views_]


def test_parts_rendered_alone_equal_the_order_view_and_their_schemas(orders, clock, core):
    """FO, fulfillment, return and transaction views (FO endpoints, webhook answers) match."""
    now = clock.now
    for view in rendering.order_views([Order.get_by_id(order_id) for order_id in orders], now):
        order_id = view["id"]
        fos = rendering.fulfillment_order_views(list(FulfillmentOrder.select().where(
            FulfillmentOrder.order == order_id).order_by(FulfillmentOrder.id)), now)
        assert text(view["fulfillment_orders"]) == text(fos) == text(schema_dumped(FO_OUT, fos))
        fulfillments = rendering.fulfillment_views(list(Fulfillment.select().where(
            Fulfillment.order == order_id).order_by(Fulfillment.id)))
        assert text(view["fulfillments"]) == text(fulfillments) == text(
            schema_dumped(FULFILLMENT_OUT, fulfillments))
        returns = rendering.return_views(list(Return.select().where(Return.order == order_id).order_by(
            Return.id)))
        assert text(view["returns"]) == text(returns) == text(schema_dumped(RETURN_OUT, returns))
        transactions = [rendering.transaction_view(tx, view["currency"]) for tx in Transaction.select().where(
            Transaction.order == order_id).order_by(Transaction.id)]
        assert text(view["transactions"]) == text(transactions) == text(
            schema_dumped(TRANSACTION_OUT, transactions))


def test_the_sample_covers_every_part_of_a_view(orders, clock, core):
    rendered = rendering.order_views([Order.get_by_id(order_id) for order_id in orders], clock.now)
    fos = [fo for view in rendered for fo in view["fulfillment_orders"]]
    fulfillments = [f for view in rendered for f in view["fulfillments"]]
    assert {view["payment_status"] for view in rendered} >= {
        "partially_paid", "pending", "paid", "authorized", "overdue", "refunded", "expired"}
    assert {"expiring"} in [set(view["payment_markers"]) for view in rendered]
    assert {view["fulfillment_status"] for view in rendered} >= {
        "partially_fulfilled", "on_hold", "scheduled", "unfulfilled", "in_progress"}
    assert {tuple(view["order_status"]) for view in rendered} >= {
        ("open",), ("archived",), ("open", "cancelled")}
    assert {fo["status"] for fo in fos} >= {"open", "on_hold", "scheduled", "in_progress", "closed",
                                           "cancelled"}
    assert any(fo["merchant_requests"] for fo in fos)
    assert any(f["events"] and f["events"][0]["location"] for f in fulfillments)
    assert any(view["returns"] for view in rendered)
    assert {view["currency"] for view in rendered} == {"USD", "JPY", "KWD"}


@pytest.mark.parametrize("changes", [
    {},
    {"name": "#SHOP-9", "external_id": "shop-9", "email": None, "shipping_address": None},
    {"currency": "JPY", "line_items": [line("acme", 3, "1200", None, "湯呑み"), line(None, 1, "0")]},
    {"currency": "KWD", "line_items": [line("oldco", 2, "0.125"), line("acme", 1, "3.000")]},
    {"hold": {"reason": "incorrect_address", "note": "ตรวจที่อยู่"}},
    {"fulfill_at": "2099-01-01T00:00:00.000001Z", "payment_due_at": "2099-02-01T10:00:00+07:00"},
    {"fulfill_at": "2001-01-01T00:00:00Z"},
    {"transactions": [{"kind": "authorization", "amount": "10.00",
                       "expires_at": "2099-01-01T00:00:00.5Z"},
                      {"kind": "capture", "amount": "4.50"}]},
    {"transactions": [{"kind": "sale", "amount": "45.50"}, {"kind": "refund", "amount": "0.50"}]},
    {"transactions": [{"kind": "authorization", "amount": "45.50"}, {"kind": "void"}]},
    {"line_items": [line("autoship", 2, "3.00"), line("acme", 1, "1.00")],
     "transactions": [{"kind": "sale", "amount": "7.00"}]},
    {"line_items": [line("autoship", 1, "0")]},
    {"line_items": [line(None, 1, "0")]},
])
def test_intake_answers_exactly_what_reading_the_order_answers(api, app, clock, changes):
    created = api.post("/orders", order_payload(**changes))
    assert created.status_code == 201, created.body
    read = api.get(f"/orders/{created.body['id']}")
    assert read.status_code == 200
    assert created.data == read.data
    # The statuses intake computed from its input are what recomputing them from the rows gives.
    derived_columns = ("payment_state", "auth_expires_at", "authorized_minor", "captured_minor",
                       "refunded_minor", "voided", "fulfillment_state", "scheduled_until",
                       "needs_attention", "return_state", "archived")
    with app.app_context(), store.database.connection_context(), store.database.atomic() as txn:
        order = Order.get_by_id(created.body["id"])
        stored = {name: getattr(order, name) for name in derived_columns}
        derived.refresh(order, clock.now)
        assert {name: getattr(order, name) for name in derived_columns} == stored
        txn.rollback()


def test_a_listed_order_is_exactly_what_reading_it_answers(api, orders):
    """The list renders the rows its query read; reading one order renders rows read afresh."""
    listed = api.get("/orders?limit=250&order_status=open,archived,cancelled")
    assert listed.status_code == 200
    assert sorted(view["id"] for view in listed.body["orders"]) == sorted(set(orders))
    for view in listed.body["orders"]:
        assert text(view) == text(api.get(f"/orders/{view['id']}").body)


class Statements(logging.Handler):
    """Count the statements peewee runs (it logs each one at DEBUG)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.kinds = Counter()

    def emit(self, record):
        if record.name != "peewee":  # the PostgreSQL pool logs its checkouts below it
            return
        sql = record.msg[0] if isinstance(record.msg, tuple) else str(record.msg)
        self.kinds[sql.split()[0].upper()] += 1


@pytest.fixture
def statements():
    """Count the statements run while the test body runs."""
    handler = Statements()
    logger = logging.getLogger("peewee")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_intake_writes_each_table_once_whatever_the_number_of_lines(api, statements):
    lines = [line("acme", 1, "1.00", f"A-{n}") for n in range(5)] + [line(None), line("oldco")]
    assert api.post("/orders", order_payload(external_id="shop-5", line_items=lines)).status_code == 201
    # order, FOs, lines, FO lines, timeline event; the generated name once the id is known
    assert statements.kinds == {"SELECT": 1, "INSERT": 5, "UPDATE": 1}


def test_a_page_of_orders_reads_each_table_once_whatever_its_size(api, create_order, statements):
    for _ in range(3):
        order = create_order()
        fo = fo_of(order, None)
        assert api.post(f"/fulfillment_orders/{fo['id']}/mark_fulfilled", {}).status_code == 201
    statements.kinds.clear()
    assert len(api.get("/orders?limit=2").body["orders"]) == 2
    two = sum(statements.kinds.values())
    statements.kinds.clear()
    assert len(api.get("/orders?limit=3").body["orders"]) == 3
    assert sum(statements.kinds.values()) == two

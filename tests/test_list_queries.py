"""The list query against a brute-force reading of SPEC 3 `GET /orders`: every filter, many
combinations, every page, over stored states placed on the edges of the clock."""

import itertools
import random
from datetime import datetime, timedelta

import pytest
from conftest import POSTGRES_URL

from adapter import order_list, store
from adapter.models import FulfillmentOrder, Order
from adapter.statuses import (
    fulfillment_status_of,
    order_status_of,
    payment_markers_of,
    payment_status_of,
)
from adapter.vocabulary import UNPAID_STATUSES as UNPAID

NOW = datetime(2030, 6, 1, 12, 0, 0)
EXPIRING_DAYS = 2
MOMENTS = (
    None, NOW - timedelta(days=3), NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=1),
    NOW + timedelta(days=EXPIRING_DAYS), NOW + timedelta(days=EXPIRING_DAYS, seconds=1),
    NOW + timedelta(days=10),
)
PAYMENT_STATES = ("voided", "refunded", "partially_refunded", "paid", "partially_paid",
                  "authorized", "pending")
FULFILLMENT_STATES = ("fulfilled", "partially_fulfilled", "on_hold", "scheduled", "in_progress",
                      "unfulfilled")
RETURN_STATES = (None, "return_requested", "inspection_complete", "return_in_progress", "returned")
SERVICES = ("acme", "globex", None)
VALUES = {
    "order_status": ("open", "archived", "cancelled"),
    "payment_status": ("voided", "refunded", "partially_refunded", "paid", "partially_paid",
                       "expired", "authorized", "overdue", "pending", "unpaid", "expiring"),
    "fulfillment_status": FULFILLMENT_STATES,
    "return_status": RETURN_STATES[1:],
    "service": ("acme", "globex", "initech"),
}
# The combinations bench/queries.py measures, and some that lead with each filter in turn.
NAMED = [
    {"payment_status": ["unpaid"]},
    {"fulfillment_status": ["unfulfilled", "partially_fulfilled"]},
    {"service": ["globex"]},
    {"order_status": ["open"], "payment_status": ["paid"]},
    {"payment_status": ["expiring"]},
    {"order_status": ["open"], "fulfillment_status": ["in_progress"], "service": ["acme"]},
    {"payment_status": ["unpaid"], "fulfillment_status": ["unfulfilled"], "order_status": ["open"]},
    {"return_status": ["returned", "return_requested"], "needs_attention": True,
     "payment_status": ["paid", "expired"]},
    {"order_status": ["archived", "cancelled"], "needs_attention": False,
     "fulfillment_status": ["scheduled", "unfulfilled"]},
    {"payment_status": ["authorized", "expired", "overdue"], "service": ["acme", "globex"]},
]


def seed(count, rng):
    """Store `count` orders with states, clock columns and services drawn at random."""
    created = NOW - timedelta(days=30)
    for _ in range(count):
        order = Order.create(
            name="#", currency="USD", created_at=created, updated_at=created, total_minor=100,
            archived=rng.random() < 0.3,
            cancelled_at=created if rng.random() < 0.2 else None,
            payment_state=rng.choice(PAYMENT_STATES),
            auth_expires_at=rng.choice(MOMENTS), payment_due_at=rng.choice(MOMENTS),
            fulfillment_state=rng.choice(FULFILLMENT_STATES),
            scheduled_until=rng.choice(MOMENTS),
            return_state=rng.choice(RETURN_STATES),
            needs_attention=rng.random() < 0.2,
        )
        for service in rng.choices(SERVICES, k=rng.randint(0, 3)):
            FulfillmentOrder.create(order=order, service=service, status="open",
                                    request_status="unsubmitted", created_at=created,
                                    updated_at=created)


def matches(order, services, key, value):
    """Tell whether a stored order has one filter value, from the status functions of SPEC 2."""
    if key == "order_status":
        return value in order_status_of(order.archived, order.cancelled_at is not None)
    if key == "payment_status":
        status = payment_status_of(order.payment_state, order.auth_expires_at,
                                   order.payment_due_at, NOW)
        if value == "unpaid":
            return status in UNPAID
        if value == "expiring":
            return "expiring" in payment_markers_of(status, order.auth_expires_at, NOW,
                                                    EXPIRING_DAYS)
        return status == value
    if key == "fulfillment_status":
        return fulfillment_status_of(order.fulfillment_state, order.scheduled_until, NOW) == value
    if key == "return_status":
        return order.return_state == value
    if key == "service":
        return value in services
    return order.needs_attention == value


def expected_ids(orders, services, filters):
    """Ids of the orders `filters` select, newest first: any value of a filter, all filters."""
    def selected(order):
        return all(
            any(matches(order, services[order.id], key, value)
                for value in (values if isinstance(values, list) else [values]))
            for key, values in filters.items()
        )

    return sorted((order.id for order in orders if selected(order)), reverse=True)


def listed_pages(filters, limit):
    """Ids of every page, following the last id of each page as the cursor does."""
    pages, after = [], None
    while True:
        found, more = order_list.list_orders(filters, limit, after, NOW, EXPIRING_DAYS)
        pages.append([order.id for order in found])
        if not more:
            return pages
        after = found[-1].id


def every_filter_set():
    """Each value alone, each pair of values of a filter, the named sets, and random mixes."""
    sets = [{}, {"needs_attention": True}, {"needs_attention": False}]
    for key, values in VALUES.items():
        sets += [{key: [value]} for value in values]
        sets += [{key: list(pair)} for pair in itertools.combinations(values, 2)]
    sets += NAMED
    rng = random.Random(7)
    for _ in range(300):
        chosen = {}
        for key, values in VALUES.items():
            if rng.random() < 0.45:
                chosen[key] = rng.sample(values, rng.randint(1, min(4, len(values))))
        if rng.random() < 0.3:
            chosen["needs_attention"] = rng.random() < 0.5
        sets.append(chosen)
    return sets


@pytest.fixture
def stored(app):
    """240 random orders in the store; yields them with the services of their FOs by order id."""
    with store.database.connection_context():
        with store.database.atomic():
            seed(240, random.Random(3))
        orders = list(Order.select())
        services = {order.id: set() for order in orders}
        for fo in FulfillmentOrder.select():
            services[fo.order_id].add(fo.service)
        yield orders, services


def test_every_filter_set_lists_exactly_its_orders_newest_first_on_every_page(stored):
    orders, services = stored
    for number, filters in enumerate(every_filter_set()):
        limit = (2, 5, 25, 250)[number % 4]
        expected = expected_ids(orders, services, filters)

        pages = listed_pages(filters, limit)

        assert [order_id for page in pages for order_id in page] == expected, (filters, limit)
        assert all(len(page) == limit for page in pages[:-1]), (filters, limit)
        assert len(pages) == max(1, -(-len(expected) // limit)), (filters, limit)


# (filters, the index each walk reads, walks, sorts): a walk of a (column, id) index stops after
# a page and needs no sort; the `expiring` window is read whole from its own index and sorted.
PLANNED = [
    ({"payment_status": ["unpaid"]}, "orders_payment_state_id", 3, 0),
    ({"fulfillment_status": ["unfulfilled", "partially_fulfilled"]},
     "orders_fulfillment_state_id", 3, 0),
    ({"order_status": ["open"], "fulfillment_status": ["in_progress"], "service": ["acme"]},
     "orders_fulfillment_state_id", 1, 0),
    ({"order_status": ["cancelled"], "return_status": ["returned", "return_requested"]},
     "orders_return_state_id", 2, 0),
    ({"payment_status": ["expiring"]}, "orders_payment_state_auth_expires_at", 1, 1),
]


@pytest.mark.skipif(POSTGRES_URL is not None, reason="PostgreSQL plans from its statistics")
@pytest.mark.parametrize(("filters", "index", "walks", "sorts"), PLANNED,
                         ids=["&".join(filters) for filters, *_ in PLANNED])
@pytest.mark.parametrize("after_id", [None, 1000], ids=["first page", "next page"])
def test_sqlite_merges_walks_of_the_leading_filters_index_without_sorting_them(
    app, filters, index, walks, sorts, after_id
):
    sql, params = order_list.list_query(filters, 50, after_id, NOW, EXPIRING_DAYS).sql()
    with store.database.connection_context():
        plan = [row[-1] for row in store.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]

    reads = [line for line in plan
             if line.startswith(("SCAN", "SEARCH")) and "fulfillment_order" not in line]
    assert len(reads) == walks, plan
    assert all(f"USING INDEX {index} (" in line for line in reads), plan
    assert len([line for line in plan if "TEMP B-TREE" in line]) == sorts, plan
    assert not [line for line in plan if "MULTI-INDEX" in line], plan

"""Derived statuses (SPEC 2.1, 2.2, 2.4, 2.5): one case per rule, then the same rules over HTTP.

The expected values are written from the SPEC text, not from the code. Clock boundaries are read
one way throughout: a moment that has come has passed (an authorization is no longer valid at its
`expires_at`, payment is overdue at `payment_due_at`, a schedule opens at `fulfill_at`).
"""

from datetime import datetime, timedelta

import pytest
from conftest import fo_of

from adapter.statuses import (
    FulfillmentFacts,
    PaymentFacts,
    effective_fo_status,
    fulfillment_state_of,
    fulfillment_status_of,
    order_status_of,
    payment_markers_of,
    payment_state_of,
    payment_status_of,
    return_status_of,
)
from adapter.vocabulary import UNPAID_STATUSES as UNPAID

NOW = datetime(2026, 3, 10, 12, 0, 0)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
TOTAL = 4550  # minor units, the total of conftest.order_payload()

PAYMENT_STATUSES = (
    "voided",
    "refunded",
    "partially_refunded",
    "paid",
    "partially_paid",
    "expired",
    "authorized",
    "overdue",
    "pending",
)
SPEC_UNPAID = {"authorized", "pending", "overdue", "expired", "partially_paid"}
FULFILLMENT_STATUSES = (
    "fulfilled",
    "partially_fulfilled",
    "on_hold",
    "scheduled",
    "in_progress",
    "unfulfilled",
)


# ---- 2.1 order_status -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archived", "cancelled", "expected"),
    [
        pytest.param(False, False, ["open"], id="open"),
        pytest.param(True, False, ["archived"], id="archived"),
        pytest.param(False, True, ["open", "cancelled"], id="open-cancelled"),
        pytest.param(True, True, ["archived", "cancelled"], id="archived-cancelled"),
    ],
)
def test_order_status_is_open_or_archived_plus_cancelled(archived, cancelled, expected):
    assert order_status_of(archived, cancelled) == expected


# ---- 2.2 payment_status ---------------------------------------------------------------------


def payment_status(facts, now=NOW):
    """The payment status the order shows at `now`."""
    return payment_status_of(payment_state_of(facts), facts.auth_expires_at, facts.payment_due_at, now)


def payment_markers(facts, now=NOW, expiring_days=2):
    """The payment markers the order shows at `now`."""
    return payment_markers_of(payment_status(facts, now), facts.auth_expires_at, now, expiring_days)


PAYMENT_CASES = [
    # one row of the precedence table each
    pytest.param(PaymentFacts(total=TOTAL, authorized=0, voided=True), "voided", id="voided"),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, captured=TOTAL, refunded=TOTAL),
        "refunded",
        id="refunded",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=TOTAL, refunded=1000),
        "partially_refunded",
        id="partially_refunded",
    ),
    pytest.param(PaymentFacts(total=TOTAL, captured=TOTAL), "paid", id="paid"),
    pytest.param(PaymentFacts(total=TOTAL, captured=1000), "partially_paid", id="partially_paid"),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW - SECOND),
        "expired",
        id="expired",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + 5 * DAY),
        "authorized",
        id="authorized",
    ),
    pytest.param(PaymentFacts(total=TOTAL, payment_due_at=NOW - SECOND), "overdue", id="overdue"),
    pytest.param(PaymentFacts(total=TOTAL), "pending", id="pending-no-terms"),
    # conflicts between rows: the first row that matches wins
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, captured=TOTAL, voided=True),
        "paid",
        id="voided-but-captured-is-paid",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, captured=1000, voided=True),
        "partially_paid",
        id="voided-but-partly-captured-is-partially_paid",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=0, voided=True, payment_due_at=NOW - DAY),
        "voided",
        id="voided-beats-overdue",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=0, voided=True, auth_expires_at=NOW - DAY),
        "voided",
        id="voided-beats-expired",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=TOTAL, refunded=TOTAL),
        "refunded",
        id="refunded-beats-paid",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=TOTAL + 500, refunded=TOTAL + 500),
        "refunded",
        id="refunded-when-refund-equals-an-overcapture",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=1000, refunded=1000),
        "refunded",
        id="refunded-beats-partially_paid",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=1000, refunded=400),
        "partially_refunded",
        id="partially_refunded-beats-partially_paid",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=TOTAL, refunded=TOTAL - 1),
        "partially_refunded",
        id="partially_refunded-one-cent-short",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=TOTAL + 100),
        "paid",
        id="paid-when-captured-exceeds-total",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=TOTAL - 1), "partially_paid", id="partially_paid-one-cent-short"
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, captured=TOTAL, auth_expires_at=NOW - DAY),
        "paid",
        id="paid-beats-expired",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, captured=1000, auth_expires_at=NOW - DAY),
        "partially_paid",
        id="partially_paid-beats-expired",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, captured=1000, payment_due_at=NOW - DAY),
        "partially_paid",
        id="partially_paid-beats-overdue",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW),
        "expired",
        id="expired-at-the-exact-expiry",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + SECOND),
        "authorized",
        id="authorized-one-second-before-expiry",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL),
        "authorized",
        id="authorized-without-expiry",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW - DAY, payment_due_at=NOW - DAY),
        "expired",
        id="expired-beats-overdue",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + DAY, payment_due_at=NOW - DAY),
        "authorized",
        id="authorized-beats-overdue",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, payment_due_at=NOW), "overdue", id="overdue-at-the-exact-due-time"
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, payment_due_at=NOW + SECOND),
        "pending",
        id="pending-one-second-before-due",
    ),
    pytest.param(
        PaymentFacts(total=TOTAL, payment_due_at=NOW + 30 * DAY),
        "pending",
        id="pending-terms-not-yet-due",
    ),
]


@pytest.mark.parametrize(("facts", "expected"), PAYMENT_CASES)
def test_payment_status_follows_the_precedence_table(facts, expected):
    assert payment_status(facts) == expected


@pytest.mark.parametrize(
    ("facts", "expiring_days", "expected"),
    [
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + DAY),
            2,
            ["expiring"],
            id="authorized-expiring-in-1-day",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + 2 * DAY),
            2,
            ["expiring"],
            id="authorized-expiring-in-exactly-expiring_days",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + 2 * DAY + SECOND),
            2,
            [],
            id="authorized-beyond-expiring_days",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + 4 * DAY),
            5,
            ["expiring"],
            id="authorized-within-a-configured-5-days",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW + DAY),
            0,
            [],
            id="authorized-with-expiring_days-0",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL),
            2,
            [],
            id="authorized-without-expiry",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW - SECOND),
            2,
            [],
            id="not-when-expired",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, auth_expires_at=NOW),
            2,
            [],
            id="not-at-the-exact-expiry",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, captured=1000, auth_expires_at=NOW + DAY),
            2,
            [],
            id="not-when-partially_paid",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=TOTAL, captured=TOTAL, auth_expires_at=NOW + DAY),
            2,
            [],
            id="not-when-paid",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, authorized=0, voided=True, auth_expires_at=NOW + DAY),
            2,
            [],
            id="not-when-voided",
        ),
        pytest.param(
            PaymentFacts(total=TOTAL, payment_due_at=NOW + DAY),
            2,
            [],
            id="not-when-pending-with-terms-due-soon",
        ),
    ],
)
def test_expiring_marker_only_for_a_valid_authorization_ending_soon(facts, expiring_days, expected):
    assert payment_markers(facts, expiring_days=expiring_days) == expected


@pytest.mark.parametrize("status", PAYMENT_STATUSES)
def test_unpaid_alias_covers_exactly_the_spec_statuses(status):
    assert (status in UNPAID) == (status in SPEC_UNPAID)


def test_unpaid_alias_names_only_payment_statuses():
    assert set(UNPAID) <= set(PAYMENT_STATUSES)
    assert len(UNPAID) == len(set(UNPAID)) == len(SPEC_UNPAID)


# ---- 2.3 a scheduled FO reads open once fulfill_at has passed ----------------------------------


@pytest.mark.parametrize(
    ("status", "fulfill_at", "expected"),
    [
        pytest.param("scheduled", NOW + SECOND, "scheduled", id="scheduled-before-fulfill_at"),
        pytest.param("scheduled", NOW, "open", id="scheduled-at-fulfill_at-reads-open"),
        pytest.param("scheduled", NOW - DAY, "open", id="scheduled-past-fulfill_at-reads-open"),
        pytest.param("open", NOW + DAY, "open", id="open-stays-open"),
        pytest.param("on_hold", NOW - DAY, "on_hold", id="on_hold-is-not-opened-by-the-clock"),
        pytest.param("in_progress", NOW - DAY, "in_progress", id="in_progress-unchanged"),
        pytest.param("cancelled", NOW - DAY, "cancelled", id="cancelled-unchanged"),
    ],
)
def test_fulfillment_order_status_as_read_at_now(status, fulfill_at, expected):
    assert effective_fo_status(status, fulfill_at, NOW) == expected


# ---- 2.4 fulfillment_status -----------------------------------------------------------------


def fulfillment_status(lines, fos, now=NOW):
    """The order's fulfillment status at `now` from (quantity, fulfilled) lines and FOs."""
    state, scheduled_until = fulfillment_state_of(
        FulfillmentFacts(lines=tuple(lines), fulfillment_orders=tuple(fos))
    )
    return fulfillment_status_of(state, scheduled_until, now)


LATER = NOW + 3 * DAY
EARLIER = NOW - DAY

FULFILLMENT_CASES = [
    # rule 1
    pytest.param([(2, 2), (1, 1)], [("closed", None, 0)], "fulfilled", id="1-fulfilled-every-line-shipped"),
    pytest.param(
        [(2, 2), (1, 1)],
        [("closed", None, 0), ("closed", None, 0)],
        "fulfilled",
        id="1-fulfilled-across-two-fos",
    ),
    # rule 2
    pytest.param(
        [(2, 1), (1, 0)],
        [("in_progress", None, 2)],
        "partially_fulfilled",
        id="2-partially_fulfilled-beats-in_progress",
    ),
    pytest.param(
        [(2, 2), (1, 0)],
        [("closed", None, 0), ("open", None, 1)],
        "partially_fulfilled",
        id="2-partially_fulfilled-one-line-shipped-one-not",
    ),
    pytest.param(
        [(2, 2), (1, 0)],
        [("closed", None, 0), ("on_hold", None, 1)],
        "partially_fulfilled",
        id="2-partially_fulfilled-beats-on_hold",
    ),
    pytest.param(
        [(2, 2), (1, 0)],
        [("closed", None, 0), ("scheduled", LATER, 1)],
        "partially_fulfilled",
        id="2-partially_fulfilled-beats-scheduled",
    ),
    pytest.param(
        [(2, 1)],
        [("cancelled", None, 1)],
        "partially_fulfilled",
        id="2-partially_fulfilled-with-the-rest-cancelled",
    ),
    # rule 3
    pytest.param([(2, 0), (1, 0)], [("on_hold", None, 3)], "on_hold", id="3-on_hold-single-fo"),
    pytest.param(
        [(2, 0), (1, 0)],
        [("on_hold", None, 2), ("on_hold", None, 1)],
        "on_hold",
        id="3-on_hold-every-fo-held",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("on_hold", None, 2), ("open", None, 1)],
        "unfulfilled",
        id="3-not-on_hold-when-one-fo-is-open",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("on_hold", None, 2), ("scheduled", LATER, 1)],
        "unfulfilled",
        id="3-4-on_hold-plus-scheduled-is-neither",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("on_hold", None, 2), ("in_progress", None, 1)],
        "in_progress",
        id="3-on_hold-plus-in_progress-is-in_progress",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("on_hold", None, 2), ("cancelled", None, 1)],
        "unfulfilled",
        id="3-not-on_hold-when-another-fo-with-remaining-is-cancelled",
    ),
    # rule 4
    pytest.param([(2, 0), (1, 0)], [("scheduled", LATER, 3)], "scheduled", id="4-scheduled-single-fo"),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", LATER, 2), ("scheduled", LATER + DAY, 1)],
        "scheduled",
        id="4-scheduled-every-fo-scheduled",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", LATER, 2), ("open", None, 1)],
        "unfulfilled",
        id="4-not-scheduled-when-one-fo-is-open",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", EARLIER, 3)],
        "unfulfilled",
        id="4-scheduled-past-fulfill_at-reads-unfulfilled",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", NOW, 3)],
        "unfulfilled",
        id="4-scheduled-at-exact-fulfill_at-reads-unfulfilled",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", NOW + SECOND, 3)],
        "scheduled",
        id="4-scheduled-one-second-before-fulfill_at",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", LATER, 2), ("scheduled", EARLIER, 1)],
        "unfulfilled",
        id="4-not-scheduled-once-one-of-two-schedules-has-passed",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", EARLIER, 2), ("on_hold", None, 1)],
        "unfulfilled",
        id="4-passed-schedule-plus-on_hold-is-unfulfilled",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", EARLIER, 2), ("in_progress", None, 1)],
        "in_progress",
        id="4-passed-schedule-plus-in_progress-is-in_progress",
    ),
    # rule 5
    pytest.param([(2, 0), (1, 0)], [("in_progress", None, 3)], "in_progress", id="5-in_progress"),
    pytest.param(
        [(2, 0), (1, 0)],
        [("in_progress", None, 2), ("open", None, 1)],
        "in_progress",
        id="5-in_progress-when-some-fo-is-in_progress",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("scheduled", LATER, 2), ("in_progress", None, 1)],
        "in_progress",
        id="5-in_progress-beats-partly-scheduled",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("in_progress", None, 2), ("cancelled", None, 1)],
        "in_progress",
        id="5-in_progress-next-to-a-cancelled-fo",
    ),
    # rule 6
    pytest.param([(2, 0), (1, 0)], [("open", None, 3)], "unfulfilled", id="6-unfulfilled-open"),
    pytest.param(
        [(2, 0), (1, 0)],
        [("incomplete", None, 3)],
        "unfulfilled",
        id="6-unfulfilled-incomplete",
    ),
    pytest.param(
        [(2, 0), (1, 0)],
        [("cancelled", None, 2), ("cancelled", None, 1)],
        "unfulfilled",
        id="6-unfulfilled-every-fo-cancelled",
    ),
]


@pytest.mark.parametrize(("lines", "fos", "expected"), FULFILLMENT_CASES)
def test_fulfillment_status_first_matching_rule_wins(lines, fos, expected):
    assert fulfillment_status(lines, fos) == expected


# ---- 2.5 return_status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param([], None, id="none-without-returns"),
        pytest.param(["requested"], "return_requested", id="requested"),
        pytest.param(["inspection_complete"], "inspection_complete", id="inspection_complete"),
        pytest.param(["in_progress"], "return_in_progress", id="in_progress"),
        pytest.param(["returned"], "returned", id="returned"),
        pytest.param(
            ["returned", "in_progress", "inspection_complete", "requested"],
            "return_requested",
            id="requested-beats-all",
        ),
        pytest.param(
            ["in_progress", "inspection_complete"],
            "inspection_complete",
            id="inspection_complete-beats-in_progress",
        ),
        pytest.param(
            ["returned", "inspection_complete"],
            "inspection_complete",
            id="inspection_complete-beats-returned",
        ),
        pytest.param(["returned", "in_progress"], "return_in_progress", id="in_progress-beats-returned"),
        pytest.param(["declined"], None, id="declined-ignored"),
        pytest.param(["cancelled"], None, id="cancelled-ignored"),
        pytest.param(["declined", "cancelled"], None, id="only-declined-and-cancelled"),
        pytest.param(["declined", "returned"], "returned", id="declined-next-to-returned"),
        pytest.param(["declined", "in_progress"], "return_in_progress", id="declined-next-to-in_progress"),
    ],
)
def test_return_status_is_the_most_important_open_task(statuses, expected):
    assert return_status_of(statuses) == expected


# ---- over HTTP: GET /orders/{id} and the GET /orders filters agree with the rules -----------


def at(moment):
    """Format a naive UTC datetime as the API expects it."""
    return moment.isoformat() + "Z"


def listed(api, **filters):
    """Return the ids of the orders `GET /orders` answers for these filters."""
    response = api.get("/orders", query_string={**filters, "limit": 250})
    assert response.status_code == 200, response.body
    return {order["id"] for order in response.body["orders"]}


def assert_payment_filters_agree(api, order_id, status, markers):
    """Every payment_status filter value finds the order exactly when the SPEC says it should."""
    for value in (*PAYMENT_STATUSES, "unpaid", "expiring"):
        expected = (
            value == status
            or (value == "unpaid" and status in SPEC_UNPAID)
            or (value == "expiring" and "expiring" in markers)
        )
        assert (order_id in listed(api, payment_status=value)) == expected, value


def assert_fulfillment_filters_agree(api, order_id, status):
    """Every fulfillment_status filter value finds the order exactly when it has that status."""
    for value in FULFILLMENT_STATUSES:
        assert (order_id in listed(api, fulfillment_status=value)) == (value == status), value


def shown(api, order_id):
    """Return the order as `GET /orders/{id}` shows it."""
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def post_transaction(api, order_id, body):
    """Record a transaction through the API and return it."""
    response = api.post(f"/orders/{order_id}/transactions", body)
    assert response.status_code == 201, response.body
    return response.body


@pytest.mark.parametrize(
    ("elapsed", "status", "markers"),
    [
        pytest.param(timedelta(0), "authorized", ["expiring"], id="at-once-authorized-expiring"),
        pytest.param(DAY - SECOND, "authorized", ["expiring"], id="1s-before-expiry-authorized"),
        pytest.param(DAY, "expired", [], id="at-expiry-expired"),
        pytest.param(2 * DAY, "expired", [], id="2-days-later-expired"),
    ],
)
def test_authorization_expiry_shows_in_order_and_filters(api, create_order, clock, elapsed, status, markers):
    order = create_order()
    post_transaction(
        api, order["id"], {"kind": "authorization", "amount": "45.50", "expires_at": at(clock.now + DAY)}
    )
    clock.advance(seconds=elapsed.total_seconds())
    body = shown(api, order["id"])
    assert (body["payment_status"], body["payment_markers"]) == (status, markers)
    assert_payment_filters_agree(api, order["id"], status, markers)


def test_authorization_becomes_expiring_as_its_end_draws_near(api, create_order, clock):
    order = create_order()
    post_transaction(
        api,
        order["id"],
        {"kind": "authorization", "amount": "45.50", "expires_at": at(clock.now + 5 * DAY)},
    )
    body = shown(api, order["id"])
    assert (body["payment_status"], body["payment_markers"]) == ("authorized", [])
    assert_payment_filters_agree(api, order["id"], "authorized", [])

    clock.advance(days=3, hours=1)
    body = shown(api, order["id"])
    assert (body["payment_status"], body["payment_markers"]) == ("authorized", ["expiring"])
    assert_payment_filters_agree(api, order["id"], "authorized", ["expiring"])


@pytest.mark.parametrize(
    ("elapsed", "status"),
    [
        pytest.param(timedelta(0), "pending", id="terms-not-due-pending"),
        pytest.param(DAY - SECOND, "pending", id="1s-before-due-pending"),
        pytest.param(DAY, "overdue", id="at-due-time-overdue"),
        pytest.param(3 * DAY, "overdue", id="3-days-later-overdue"),
    ],
)
def test_payment_terms_falling_due_show_in_order_and_filters(api, create_order, clock, elapsed, status):
    order = create_order(payment_due_at=at(clock.now + DAY))
    clock.advance(seconds=elapsed.total_seconds())
    body = shown(api, order["id"])
    assert (body["payment_status"], body["payment_markers"]) == (status, [])
    assert_payment_filters_agree(api, order["id"], status, [])


@pytest.mark.parametrize(
    ("transactions", "status"),
    [
        pytest.param([], "pending", id="pending"),
        pytest.param([{"kind": "sale", "amount": "45.50"}], "paid", id="paid"),
        pytest.param([{"kind": "sale", "amount": "10.00"}], "partially_paid", id="partially_paid"),
        pytest.param(
            [{"kind": "authorization", "amount": "45.50"}, {"kind": "capture", "amount": "45.50"}],
            "paid",
            id="captured-authorization-paid",
        ),
        pytest.param(
            [{"kind": "sale", "amount": "45.50"}, {"kind": "refund", "amount": "5.00"}],
            "partially_refunded",
            id="partially_refunded",
        ),
        pytest.param(
            [{"kind": "sale", "amount": "45.50"}, {"kind": "refund", "amount": "45.50"}],
            "refunded",
            id="refunded",
        ),
        pytest.param([{"kind": "authorization", "amount": "45.50"}, {"kind": "void"}], "voided", id="voided"),
    ],
)
def test_transactions_show_payment_status_in_order_and_filters(api, create_order, transactions, status):
    order = create_order()
    for transaction in transactions:
        post_transaction(api, order["id"], transaction)
    body = shown(api, order["id"])
    assert (body["payment_status"], body["payment_markers"]) == (status, [])
    assert_payment_filters_agree(api, order["id"], status, [])


def test_scheduled_order_opens_by_itself_once_fulfill_at_has_passed(api, create_order, clock):
    order = create_order(fulfill_at=at(clock.now + DAY))
    body = shown(api, order["id"])
    assert {fo["status"] for fo in body["fulfillment_orders"]} == {"scheduled"}
    assert body["fulfillment_status"] == "scheduled"
    assert_fulfillment_filters_agree(api, order["id"], "scheduled")
    acme = fo_of(body, "acme")
    assert "open" in acme["supported_actions"]
    assert "request_fulfillment" not in acme["supported_actions"]

    clock.advance(days=1)  # no background job runs in tests: only reads see the time pass
    body = shown(api, order["id"])
    assert {fo["status"] for fo in body["fulfillment_orders"]} == {"open"}
    assert body["fulfillment_status"] == "unfulfilled"
    assert_fulfillment_filters_agree(api, order["id"], "unfulfilled")
    acme = fo_of(body, "acme")
    assert "request_fulfillment" in acme["supported_actions"]
    assert "open" not in acme["supported_actions"]
    response = api.get(f"/fulfillment_orders/{acme['id']}")
    assert response.status_code == 200, response.body
    assert response.body["status"] == "open"


def test_fulfill_at_already_passed_at_intake_is_not_scheduled(api, create_order, clock):
    order = create_order(fulfill_at=at(clock.now - DAY))
    body = shown(api, order["id"])
    assert {fo["status"] for fo in body["fulfillment_orders"]} == {"open"}
    assert body["fulfillment_status"] == "unfulfilled"
    assert_fulfillment_filters_agree(api, order["id"], "unfulfilled")


def test_held_order_is_on_hold_until_every_hold_is_released(api, create_order, clock):
    order = create_order(hold={"reason": "high_risk_of_fraud", "note": "check ID"})
    body = shown(api, order["id"])
    assert body["fulfillment_status"] == "on_hold"
    assert_fulfillment_filters_agree(api, order["id"], "on_hold")

    response = api.post(f"/fulfillment_orders/{fo_of(body, 'acme')['id']}/release_hold")
    assert response.status_code == 200, response.body
    body = shown(api, order["id"])
    assert body["fulfillment_status"] == "unfulfilled"
    assert_fulfillment_filters_agree(api, order["id"], "unfulfilled")


def test_fulfillment_status_follows_requests_and_shipments(api, create_order, clock):
    order = create_order()
    body = shown(api, order["id"])
    assert body["fulfillment_status"] == "unfulfilled"

    acme = fo_of(body, "acme")
    response = api.post(f"/fulfillment_orders/{acme['id']}/fulfillment_request")
    assert response.status_code == 200, response.body
    assert shown(api, order["id"])["fulfillment_status"] == "in_progress"
    assert_fulfillment_filters_agree(api, order["id"], "in_progress")

    managed = fo_of(body, None)
    response = api.post(f"/fulfillment_orders/{managed['id']}/mark_fulfilled")
    assert response.status_code == 201, response.body
    assert shown(api, order["id"])["fulfillment_status"] == "partially_fulfilled"
    assert_fulfillment_filters_agree(api, order["id"], "partially_fulfilled")


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        pytest.param([], ["open"], id="open"),
        pytest.param(["archive"], ["archived"], id="archived"),
        pytest.param(["cancel"], ["open", "cancelled"], id="open-cancelled"),
        pytest.param(["cancel", "archive"], ["archived", "cancelled"], id="archived-cancelled"),
        pytest.param(["archive", "unarchive"], ["open"], id="unarchived"),
    ],
)
def test_order_status_shows_in_order_and_filters(api, create_order, actions, expected):
    order = create_order()
    for action in actions:
        response = api.post(
            f"/orders/{order['id']}/{action}", {"reason": "test"} if action == "cancel" else {}
        )
        assert response.status_code == 200, response.body
    assert shown(api, order["id"])["order_status"] == expected
    for value in ("open", "archived", "cancelled"):
        assert (order["id"] in listed(api, order_status=value)) == (value in expected), value


def test_return_status_shows_in_order_and_filters(api, create_order):
    order = create_order()
    managed = fo_of(order, None)
    response = api.post(f"/fulfillment_orders/{managed['id']}/mark_fulfilled")
    assert response.status_code == 201, response.body
    assert shown(api, order["id"])["return_status"] is None
    line_id = next(line["id"] for line in order["line_items"] if line["fulfillment_service"] is None)
    response = api.post(
        f"/orders/{order['id']}/returns",
        {"requested_by": "customer", "line_items": [{"line_item_id": line_id, "quantity": 1}]},
    )
    assert response.status_code == 201, response.body
    assert shown(api, order["id"])["return_status"] == "return_requested"
    assert order["id"] in listed(api, return_status="return_requested")
    assert order["id"] not in listed(api, return_status="return_in_progress")

    response = api.post(f"/returns/{response.body['id']}/decline")
    assert response.status_code == 200, response.body
    assert shown(api, order["id"])["return_status"] is None
    for value in ("return_requested", "inspection_complete", "return_in_progress", "returned"):
        assert order["id"] not in listed(api, return_status=value), value

"""Statements whose results are not read travel with the next one, on PostgreSQL: fewer round
trips, the same effects in the same order, and a failure still rolls back the whole transaction."""

import json
import threading
import time
from datetime import UTC, datetime

import peewee
import pytest
from conftest import fo_of

from adapter import prepared, selects, service_events, store
from adapter.errors import NotFound
from adapter.locks import locked_fulfillment_order
from adapter.models import FulfillmentOrder, TimelineEvent, WebhookReceipt

AT = datetime(2026, 1, 1)


def receipt(webhook_id, status=0):
    return {"service": "acme", "webhook_id": webhook_id, "body_sha256": "0" * 64,
            "response_status": status, "response_body": "", "applied_at": AT}


def kept():
    return sorted((r.webhook_id, r.response_status) for r in WebhookReceipt.select())


class RoundTrips:
    """Count the executes on the store's cursors: one each per round trip to the server."""

    def __init__(self, monkeypatch):
        self.count = 0
        db = store.database.obj
        make_cursor = db.cursor

        def counted(*args, **kwargs):
            cursor = make_cursor(*args, **kwargs)
            trips = self

            class Counted:
                def execute(self, *args):
                    trips.count += 1
                    return cursor.execute(*args)

                def __iter__(self):
                    return iter(cursor)

                def __getattr__(self, name):
                    return getattr(cursor, name)

            return Counted()

        monkeypatch.setattr(db, "cursor", counted, raising=False)


@pytest.fixture
def db(app):
    with store.database.connection_context():
        yield


@pytest.fixture
def postgres_only(app):
    if not store.is_postgres():
        pytest.skip("round trips to a server: PostgreSQL only")


def test_begin_and_later_writes_go_with_the_next_statement_and_the_commit(db, postgres_only, monkeypatch):
    trips = RoundTrips(monkeypatch)
    with store.transaction():
        prepared.insert_later(WebhookReceipt, **receipt("a"))
        prepared.update_later(WebhookReceipt, {"service": "acme", "webhook_id": "a"}, response_status=200)
        assert trips.count == 0
        assert prepared.get_or_none(WebhookReceipt, service="acme", webhook_id="a").response_status == 200
        assert trips.count == 1  # BEGIN, INSERT, UPDATE and the SELECT together
        prepared.insert_later(WebhookReceipt, **receipt("b", 201))
    assert trips.count == 2  # the INSERT with the COMMIT
    assert kept() == [("a", 200), ("b", 201)]


def test_a_transaction_that_ran_nothing_sends_nothing(db, postgres_only, monkeypatch):
    trips = RoundTrips(monkeypatch)
    with store.transaction():
        pass
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError("before any statement")
    assert trips.count == 0
    with store.transaction():
        prepared.insert_later(WebhookReceipt, **receipt("a"))
    assert trips.count == 1
    assert kept() == [("a", 0)]


def test_outside_a_transaction_a_later_write_runs_at_once(db):
    prepared.insert_later(WebhookReceipt, **receipt("a"))
    assert kept() == [("a", 0)]


def test_a_failing_later_write_rolls_back_everything_before_it(db):
    with pytest.raises(peewee.IntegrityError), store.transaction():
        prepared.insert_returning_id(WebhookReceipt, **receipt("a"))
        prepared.insert_later(WebhookReceipt, **receipt("b"))
        prepared.insert_later(WebhookReceipt, **receipt("a"))  # the same key again
    assert kept() == []
    with store.transaction():  # the connection is usable again
        prepared.insert_later(WebhookReceipt, **receipt("c"))
    assert kept() == [("c", 0)]


def test_a_rolled_back_savepoint_undoes_the_later_writes_made_inside_it(db):
    with store.transaction():
        prepared.insert_later(WebhookReceipt, **receipt("outer"))
        with pytest.raises(KeyError), store.database.atomic():
            prepared.insert_later(WebhookReceipt, **receipt("inner"))
            raise KeyError("undo the inner write")
        prepared.insert_later(WebhookReceipt, **receipt("after"))
    assert kept() == [("after", 0), ("outer", 0)]


def test_a_saved_change_is_read_back_within_the_transaction(create_order):
    fo_id = fo_of(create_order(), "acme")["id"]
    with store.database.connection_context(), store.transaction():
        fo = FulfillmentOrder.get_by_id(fo_id)
        fo.hold_note = "kept"
        fo.save()
        assert FulfillmentOrder.get_by_id(fo_id).hold_note == "kept"


def test_the_locked_read_sees_what_the_previous_lock_holder_committed(app, postgres_only, create_order):
    """The FO is read after the order's lock is granted, so a change committed by the
    transaction that held the lock is seen, never the row as it was before the wait."""
    fo_id = fo_of(create_order(), "acme")["id"]
    holding, release, seen = threading.Event(), threading.Event(), []

    def first():
        with store.database.connection_context(), store.transaction():
            _, fo = locked_fulfillment_order(fo_id)
            fo.hold_note = "written while holding the lock"
            fo.save()
            holding.set()
            release.wait(10)

    def second():
        with store.database.connection_context(), store.transaction():
            seen.append(locked_fulfillment_order(fo_id, "acme")[1].hold_note)

    holder = threading.Thread(target=first)
    holder.start()
    assert holding.wait(10)
    waiter = threading.Thread(target=second)
    waiter.start()
    with store.database.connection_context():
        deadline = time.monotonic() + 10
        while not store.database.execute_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the second transaction never waited for the lock"
            time.sleep(0.01)
    release.set()
    holder.join(10)
    waiter.join(10)
    assert seen == ["written while holding the lock"]


def _fo_through_its_webhooks(api, service, order):
    """Request an FO of `order` and send it each kind of webhook; yield (kind, response)."""
    fo_id = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    parcel = f"parcel-{fo_id}"
    at = datetime.now(UTC).isoformat()
    for kind, data in [
        ("fulfillment_request.accepted", {"fulfillment_order_id": fo_id}),
        ("fulfillment.created", {"fulfillment_order_id": fo_id, "external_id": parcel,
                                 "tracking": {"number": "TH1"}}),
        ("fulfillment.event", {"external_id": parcel, "status": "in_transit", "happened_at": at}),
        ("fulfillment.tracking_updated", {"external_id": parcel, "tracking": {"number": "TH2"}}),
        ("fulfillment_order.message", {"fulfillment_order_id": fo_id, "message": "hello"}),
    ]:
        yield kind, service.send("acme", kind, data)


def test_each_webhook_takes_at_most_four_round_trips(
    app, postgres_only, api, create_order, service, monkeypatch
):
    """A message, an event, a tracking update and an acceptance take three: BEGIN and the claim
    with the lock and the read of the rows under it; the writes with the reads of the order's
    facts and the answer; the answer and the delivery record with the COMMIT. A shipment takes
    one more, for its row's id (which its lines and the answer name)."""
    for _, response in _fo_through_its_webhooks(api, service, create_order()):
        assert response.status_code == 200, response.body
    order = create_order()
    trips = RoundTrips(monkeypatch)
    counted = {}
    for kind, response in _fo_through_its_webhooks(api, service, order):
        assert response.status_code == 200, response.body
        counted[kind] = trips.count
        trips.count = 0
    del counted["fulfillment_request.accepted"]  # the count began with the merchant's request
    assert counted == {
        "fulfillment.created": 4,
        "fulfillment.event": 3,
        "fulfillment.tracking_updated": 3,
        "fulfillment_order.message": 3,
    }


def test_an_acceptance_takes_three_round_trips(app, postgres_only, api, create_order, service, monkeypatch):
    fo_id = fo_of(create_order(), "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    trips = RoundTrips(monkeypatch)
    response = service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
    assert response.status_code == 200, response.body
    assert trips.count == 3
    assert response.body["fulfillment_order"]["merchant_requests"][-1]["status"] == "accepted"


@pytest.mark.parametrize("first_ends", ["committed", "rolled back"])
def test_a_redelivery_waits_for_the_first_delivery_then_replays_it_or_applies(
    app, create_order, service, monkeypatch, first_ends
):
    """The claim travels with the handler's first statement: an identical delivery arriving
    while the first one is being applied waits (PostgreSQL: at the receipt's unique index;
    SQLite: for the write lock), then answers from the first's receipt — or, when the first
    rolled back, applies itself."""
    fo_id = fo_of(create_order(), "acme")["id"]
    body = json.dumps({"type": "fulfillment_order.message", "timestamp": datetime.now(UTC).isoformat(),
                       "data": {"fulfillment_order_id": fo_id, "message": "once"}})
    handle = service_events.HANDLERS["fulfillment_order.message"]
    applying, release = threading.Event(), threading.Event()

    def held(*args):
        applied = handle(*args)
        if threading.current_thread().name == "first":
            applying.set()
            release.wait(10)
            if first_ends == "rolled back":
                raise RuntimeError("the first delivery fails after applying")
        return applied

    monkeypatch.setitem(service_events.HANDLERS, "fulfillment_order.message", held)
    answers = {}

    def deliver():
        answers[threading.current_thread().name] = service.send(
            "acme", "fulfillment_order.message", None, webhook_id="msg_redelivered", body=body
        )

    first = threading.Thread(target=deliver, name="first")
    first.start()
    assert applying.wait(10)
    second = threading.Thread(target=deliver, name="second")
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the redelivery did not wait for the first delivery"
    release.set()
    first.join(10)
    second.join(10)
    with store.database.connection_context():
        messages = TimelineEvent.select().where(
            (TimelineEvent.fulfillment_order_id == fo_id) & (TimelineEvent.message == "once")
        ).count()
    assert messages == 1
    if first_ends == "committed":
        assert answers["first"].status_code == 200
        assert answers["second"].headers.get("Idempotent-Replayed") == "true"
        assert answers["second"].get_data() == answers["first"].get_data()
    else:
        assert answers["first"].status_code == 500
        assert answers["second"].status_code == 200
        assert "Idempotent-Replayed" not in answers["second"].headers


def test_reads_together_give_what_each_read_gives_alone(app, api, create_order, service):
    """One statement on PostgreSQL (JSON arrays), one read after another on SQLite: the same rows,
    in the same order, with the same Python values (times, nulls, text), and none for no ids."""
    from adapter.rendering import _CURRENT_REQUEST, _FO_LINES, _FULFILLMENT_LINES

    order = create_order()
    fo_id = fo_of(order, "acme")["id"]
    assert api.post(f"/fulfillment_orders/{fo_id}/fulfillment_request", {}).status_code == 200
    service.send("acme", "fulfillment_request.accepted", {"fulfillment_order_id": fo_id})
    with store.database.connection_context():
        reads = [(_FO_LINES, [fo_id]), (_CURRENT_REQUEST, [fo_id, fo_id + 1000]), (_FULFILLMENT_LINES, [])]
        together = selects.together(*reads)
        alone = [read.rows(ids) for read, ids in reads]
    assert together == alone
    assert [len(rows) for rows in together] == [len(order["line_items"]) - 1, 1, 0]
    assert isinstance(together[1][0].answered_at, datetime)


class SentTexts(RoundTrips):
    """Also keep the text of each round trip."""

    def __init__(self, monkeypatch):
        super().__init__(monkeypatch)
        self.texts = []
        counted = store.database.obj.cursor

        def keeping(*args, **kwargs):
            cursor = counted(*args, **kwargs)
            execute = cursor.execute

            def execute_kept(text, *rest):
                self.texts.append(text if isinstance(text, bytes) else str(text).encode())
                return execute(text, *rest)

            cursor.execute = execute_kept
            return cursor

        monkeypatch.setattr(store.database.obj, "cursor", keeping, raising=False)


def test_a_hot_statement_is_prepared_once_per_connection_then_only_executed(db, postgres_only, monkeypatch):
    sent = SentTexts(monkeypatch)
    for webhook_id in ("a", "b", "c"):
        with store.transaction():
            prepared.insert_returning_id(WebhookReceipt, **receipt(webhook_id))
    inserts = [text for text in sent.texts if b"EXECUTE adapter_" in text]
    assert [text.count(b"PREPARE ") for text in inserts] == [1, 0, 0]
    assert b"webhook_receipt" not in inserts[1]  # only the name and the values travel
    assert kept() == [("a", 0), ("b", 0), ("c", 0)]


def test_a_statement_new_to_the_connection_used_twice_in_one_round_trip_is_prepared_once(
    db, postgres_only, monkeypatch
):
    sent = SentTexts(monkeypatch)
    with store.transaction():
        prepared.insert_later(WebhookReceipt, **receipt("a"))
        prepared.insert_later(WebhookReceipt, **receipt("b"))
    assert sent.count == 1
    assert sent.texts[0].count(b"PREPARE ") == 1 and sent.texts[0].count(b"EXECUTE ") == 2
    assert kept() == [("a", 0), ("b", 0)]


@pytest.mark.parametrize("fails", ["after its PREPARE", "before its PREPARE"])
def test_after_a_failed_round_trip_its_statements_are_prepared_afresh(db, postgres_only, fails):
    """A PREPARE survives a rollback, and one after the failing statement never ran: either
    way the next use must neither re-create a name that exists nor execute one that does not."""
    with pytest.raises(peewee.IntegrityError), store.transaction():
        prepared.insert_returning_id(WebhookReceipt, **receipt("a"))
        if fails == "after its PREPARE":
            prepared.insert_returning_id(WebhookReceipt, **receipt("a"))  # PREPAREd, then the key is taken
        else:
            prepared.insert_later(WebhookReceipt, **receipt("a"))
            prepared.update(WebhookReceipt, {"service": "acme", "webhook_id": "a"}, response_status=1)
    for _ in range(2):
        with store.transaction():
            prepared.insert_returning_id(WebhookReceipt, **receipt(f"b{_}"))
            prepared.update(WebhookReceipt, {"service": "acme", "webhook_id": f"b{_}"}, response_status=2)
    assert kept() == [("b0", 2), ("b1", 2)]


def test_an_id_beyond_32_bits_finds_nothing_through_a_prepared_statement(create_order):
    """PostgreSQL's id columns hold 32 bits; an id from outside beyond that is simply unknown."""
    fo_id = fo_of(create_order(), "acme")["id"]
    with store.database.connection_context():
        for _ in range(2):  # prepared by the first, executed by the second
            assert prepared.get_or_none(FulfillmentOrder, id=fo_id).id == fo_id
            assert prepared.get_or_none(FulfillmentOrder, id=2**40) is None
        with store.transaction():
            assert locked_fulfillment_order(fo_id)[1].id == fo_id
            with pytest.raises(NotFound):
                locked_fulfillment_order(2**40)


def test_an_id_list_beyond_32_bits_finds_nothing_through_a_prepared_statement(create_order):
    from adapter.rendering import _ORDERS

    order_id = create_order()["id"]
    with store.database.connection_context():
        for _ in range(2):  # prepared by the first read, executed by the second
            assert [row.id for row in _ORDERS.rows([order_id])] == [order_id]
            assert _ORDERS.rows([5000000000]) == []
            assert _ORDERS.rows([]) == []


def test_a_statement_whose_values_cannot_be_sent_leaves_nothing_half_prepared(db):
    sql = f"SELECT webhook_id FROM webhook_receipt WHERE service = {store.database.obj.param}"
    with pytest.raises((peewee.ProgrammingError, peewee.InterfaceError)):
        store.run(sql, (object(),))  # the driver cannot send it
    prepared.insert_returning_id(WebhookReceipt, **receipt("a"))  # a round trip that succeeds
    assert store.run(sql, ("acme",)).fetchone()[0] == "a"


def test_the_locked_read_takes_the_lock_itself_when_the_row_appeared_after_the_lock(
    app, postgres_only, create_order, monkeypatch
):
    """A row committed between the lock and the read was invisible to the lock, which then
    locked nothing: the read locks the order on its own."""
    fo_id = fo_of(create_order(), "acme")["id"]
    monkeypatch.setattr(store, "later", lambda sql, params: None)  # as if the lock found no row
    holding, release, refused = threading.Event(), threading.Event(), []

    def first():
        with store.database.connection_context(), store.transaction():
            locked_fulfillment_order(fo_id)
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=first)
    holder.start()
    assert holding.wait(10)
    try:
        with store.database.connection_context(), pytest.raises(peewee.OperationalError), \
                store.database.atomic():
            store.database.execute_sql(
                'SELECT 1 FROM "orders" WHERE "id" IN (SELECT "order_id" FROM "fulfillment_order" '
                'WHERE "id" = %s) FOR UPDATE NOWAIT', (fo_id,)
            )
            refused.append(True)
    finally:
        release.set()
        holder.join(10)
    assert refused == []

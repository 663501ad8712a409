"""Model-based stress test: random interleavings of every merchant action and service webhook.

Each step is checked against a small reference model transcribed from SPEC 2.1–2.5, 4.2 and 6
(and the README's "Behaviour where the contract leaves room"). The model is deliberately written
without `adapter.transitions` or `adapter.statuses`: it is a second reading of the contract, so a
wrong row in either shows up here. Where the contract leaves a choice open, the model accepts
either answer and adopts what the API did; everything the contract states is predicted exactly.

Sizes: STRESS_EXAMPLES orders (one per hypothesis example) of up to STRESS_STEPS steps each.
"""

import json
import os
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import order_payload
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

pytestmark = pytest.mark.stress

EXAMPLES = int(os.environ.get("STRESS_EXAMPLES", "10"))
STEPS = int(os.environ.get("STRESS_STEPS", "40"))
EXPLORED = Counter()  # steps, examples, webhooks, refusals… explored by this module

# ---- the contract, transcribed from the SPEC --------------------------------------------------

WORKFLOWS = {"acme": "new", "oldco": "legacy", "autoship": "new"}
AUTO_FULFILL = {"autoship"}
SERVICE_CHOICES = ("acme", "oldco", "autoship", None)
MERCHANT_ACTIONS = (
    "request_fulfillment",
    "cancel_fulfillment_request",
    "request_cancellation",
    "revert_to_unfulfilled",
    "mark_as_fulfilled",
    "hold",
    "release_hold",
    "open",
    "send_message",
)
PATHS = {
    "request_fulfillment": "fulfillment_request",
    "cancel_fulfillment_request": "cancel",
    "request_cancellation": "cancellation_request",
    "revert_to_unfulfilled": "revert",
    "mark_as_fulfilled": "mark_fulfilled",
    "hold": "hold",
    "release_hold": "release_hold",
    "open": "open",
    "send_message": "messages",
    "acknowledge": "acknowledge",
}
# A valid body for each action, so that a refusal can only come from the state.
MINIMAL_BODIES = {
    "request_fulfillment": {},
    "cancel_fulfillment_request": {},
    "request_cancellation": {},
    "revert_to_unfulfilled": {},
    "mark_as_fulfilled": {},
    "hold": {"reason": "other"},
    "release_hold": None,
    "open": None,
    "send_message": {"message": "ping"},
}
LEGACY_REFUSED = {"cancel_fulfillment_request", "request_cancellation", "revert_to_unfulfilled"}
REQUESTABLE_WHEN_OPEN = {"unsubmitted", "rejected", "cancellation_accepted", "closed"}
HOLDABLE = {"unsubmitted", "rejected", "cancellation_accepted"}
SHIPPABLE = {"submitted", "accepted", "cancellation_requested", "cancellation_rejected"}
CLOSABLE = {"accepted", "cancellation_rejected"}
QUANTITIES_COME_OFF = {"open", "scheduled", "on_hold", "incomplete"}  # "not with a service"
HOLD_REASONS = (
    "awaiting_payment",
    "high_risk_of_fraud",
    "incorrect_address",
    "inventory_out_of_stock",
    "unknown_delivery_date",
    "online_store_post_purchase_cross_sell",
    "awaiting_return_items",
    "other",
)
REJECT_REASONS = (
    "incorrect_address",
    "inventory_out_of_stock",
    "ineligible_product",
    "undeliverable_destination",
    "invalid_sku",
    "order_too_large",
    "other",
)
SHIPMENT_STATUSES = (
    "label_purchased",
    "label_printed",
    "confirmed",
    "ready_for_pickup",
    "carrier_picked_up",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "attempted_delivery",
    "delayed",
    "delivered",
    "failure",
)
SERVICE_KINDS = (
    "fulfillment_request.accepted",
    "fulfillment_request.rejected",
    "cancellation_request.accepted",
    "cancellation_request.rejected",
    "fulfillment.created",
    "fulfillment_order.closed",
    "fulfillment_order.message",
)
# What a service would usually say next about an FO it has, by request_status.
EXPECTED_KINDS = {
    "submitted": ("fulfillment_request.accepted", "fulfillment_request.rejected",
                  "fulfillment.created"),
    "accepted": ("fulfillment.created", "fulfillment_order.closed"),
    "cancellation_requested": ("cancellation_request.accepted", "cancellation_request.rejected",
                               "fulfillment.created"),
    "cancellation_rejected": ("fulfillment.created", "fulfillment_order.closed"),
}
RETURN_REASONS = ("color", "defective", "size_too_small", "unwanted", "wrong_item", "other")
RETURN_MOVES = {
    ("requested", "approve"): "in_progress",
    ("requested", "decline"): "declined",
    ("in_progress", "complete_inspection"): "inspection_complete",
    ("inspection_complete", "close"): "returned",
}
RETURN_MAY_MOVE = {("in_progress", "close"): "returned"}  # SPEC 2.5 is silent on skipping inspection
RETURN_PRIORITY = (
    ("requested", "return_requested"),
    ("inspection_complete", "inspection_complete"),
    ("in_progress", "return_in_progress"),
    ("returned", "returned"),
)
EXPIRING_DAYS = 2
CENT = Decimal("0.01")
PRICES = ("10.00", "5.50", "0.99", "120.50")

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
SAMPLE_NOTES = ("ส่งด่วน 🚚", "กรุณาห่อของขวัญ 🎁", "Leave at the door", "  spaced  ")
NOTES = st.one_of(st.none(), st.sampled_from(SAMPLE_NOTES), TEXT)
# A required message may not be whitespace only (a 422; README, "Behaviour where the contract leaves room").
MESSAGES = st.one_of(st.sampled_from(SAMPLE_NOTES), TEXT.filter(str.strip))


def iso(moment):
    """Write a naive UTC datetime as RFC 3339."""
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def parse_time(text):
    """Read an RFC 3339 time as naive UTC (None stays None)."""
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


@dataclass
class ModelFO:
    """What the model believes about one fulfillment order."""

    id: int
    service: str | None
    status: str
    request_status: str = "unsubmitted"
    fulfill_at: datetime | None = None
    hold: dict | None = None
    needs_attention: bool = False
    lines: dict = field(default_factory=dict)  # line_item_id -> [quantity, remaining]
    requests: set = field(default_factory=set)  # merchant request ids ever seen
    # SPEC 2.3: once requested (or split off by a request or a revert) the merchant decides
    decided: bool = False

    @property
    def workflow(self):
        return WORKFLOWS[self.service] if self.service else "merchant_managed"

    @property
    def remaining(self):
        return sum(remaining for _, remaining in self.lines.values())

    def status_at(self, now):
        """SPEC 2.3: a scheduled FO reads `open` once `fulfill_at` has passed."""
        if self.status == "scheduled" and (self.fulfill_at is None or self.fulfill_at <= now):
            return "open"
        return self.status

    def shown_lines(self):
        return {li: list(q_r) for li, q_r in self.lines.items() if q_r[0]}


def allowed_actions(fo, now):
    """The merchant actions SPEC 2.3 allows on `fo` now."""
    status, request_status, remaining = fo.status_at(now), fo.request_status, fo.remaining
    actions = set()
    if fo.workflow != "merchant_managed" and remaining > 0 and (
        (status == "open" and request_status in REQUESTABLE_WHEN_OPEN) or status == "incomplete"
    ):
        actions.add("request_fulfillment")
    if fo.workflow == "new" and status == "in_progress":
        if request_status == "submitted":
            actions.add("cancel_fulfillment_request")
        if request_status in {"accepted", "cancellation_rejected"}:
            actions.add("request_cancellation")
        if request_status == "cancellation_requested":
            actions.add("revert_to_unfulfilled")
    if status in {"open", "incomplete"} and remaining > 0:
        actions.add("mark_as_fulfilled")
    if status == "open" and request_status in HOLDABLE and remaining > 0:
        actions.add("hold")
    if status == "on_hold":
        actions.add("release_hold")
    if status == "scheduled":
        actions.add("open")
    if fo.workflow != "merchant_managed" and request_status != "unsubmitted":
        actions.add("send_message")  # the service has seen it
    return actions


@dataclass
class Money:
    """An order's payment facts, summed from its transactions as the API lists them."""

    total: Decimal
    authorized: Decimal  # SPEC 2.2: authorized and not voided
    captures: Decimal
    captured: Decimal
    refunded: Decimal
    voided: bool
    auth_ends: datetime | None
    due: datetime | None

    @classmethod
    def of(cls, order):
        txs = order["transactions"]

        def summed(*kinds):
            return sum((Decimal(t["amount"]) for t in txs if t["kind"] in kinds), Decimal(0))

        ends = [parse_time(t["expires_at"]) for t in txs if t["kind"] == "authorization"]
        return cls(
            total=sum(
                (Decimal(line["price"]) * line["quantity"] for line in order["line_items"]),
                Decimal(0),
            ),
            authorized=summed("authorization") - summed("void"),
            captures=summed("capture"),
            captured=summed("capture", "sale"),
            refunded=summed("refund"),
            voided=any(t["kind"] == "void" for t in txs),
            # README: several authorizations expire with the last; one without an end never does.
            auth_ends=max(ends) if ends and None not in ends else None,
            due=parse_time(order["payment_due_at"]),
        )

    @property
    def uncaptured(self):
        return self.authorized - self.captures

    def status(self, now):
        """SPEC 2.2, first match wins; `now=None` leaves out the clock-dependent rows.

        README: `voided` once the whole authorization is voided; a partial void leaves the rest.
        """
        if self.voided and self.captured == 0 and self.authorized == 0:
            return "voided"
        if self.captured > 0 and self.refunded >= self.captured:
            return "refunded"
        if 0 < self.refunded < self.captured:
            return "partially_refunded"
        if self.captured >= self.total:
            return "paid"
        if self.captured > 0:
            return "partially_paid"
        if self.authorized > 0:
            if now is not None and self.auth_ends is not None and self.auth_ends <= now:
                return "expired"
            return "authorized"
        if now is not None and self.due is not None and self.due <= now:
            return "overdue"
        return "pending"

    def markers(self, now):
        if (
            self.status(now) == "authorized"
            and self.auth_ends is not None
            and self.auth_ends <= now + timedelta(days=EXPIRING_DAYS)
        ):
            return ["expiring"]
        return []


def fulfillment_status_of(order):
    """SPEC 2.4, first match wins, from the order's lines and FOs as the API shows them."""
    lines = order["line_items"]
    if lines and all(line["fulfilled_quantity"] >= line["quantity"] for line in lines):
        return "fulfilled"
    if any(line["fulfilled_quantity"] > 0 for line in lines):
        return "partially_fulfilled"
    waiting = [
        fo["status"]
        for fo in order["fulfillment_orders"]
        if sum(line["remaining_quantity"] for line in fo["line_items"]) > 0
    ]
    if waiting and all(status == "on_hold" for status in waiting):
        return "on_hold"
    if waiting and all(status == "scheduled" for status in waiting):
        return "scheduled"
    if any(fo["status"] == "in_progress" for fo in order["fulfillment_orders"]):
        return "in_progress"
    return "unfulfilled"


def return_status_of(order):
    """SPEC 2.5: the most important open task across the returns (declined ones don't count)."""
    present = {r["status"] for r in order["returns"]}
    return next((status for kind, status in RETURN_PRIORITY if kind in present), None)


@dataclass
class Shipment:
    """A fulfillment a service reported, with the delivery events sent for it."""

    fulfillment_order_id: int
    events: list = field(default_factory=list)  # (happened_at, status)
    tracking: dict | None = None


@dataclass
class Delivery:
    """A webhook delivery the model sent, to be sent again later."""

    service: str
    webhook_id: str
    body: str
    kind: str
    payload: dict
    status: int = 0
    response: dict | None = None


@dataclass
class Expect:
    """What the model predicts for a webhook."""

    status: int
    events: int = 0
    codes: tuple = ()
    apply: object = None
    notes: tuple = ()
    fo: ModelFO | None = None
    others: tuple = ()  # other answers the contract leaves room for: they must change nothing


class AdapterModel(RuleBasedStateMachine):
    """One order, driven by the merchant and the services at random, checked after every step."""

    fixtures = None  # (api, service, deliver, clock), set per test

    def __init__(self):
        super().__init__()
        self.api, self.service, self.deliver, self.clock = self.fixtures
        self.order_id = None
        self.fos = {}
        self.lines = {}  # line_item_id -> {"quantity", "service"}
        self.archived = False
        self.cancelled = False
        self.merchant_fulfillments = 0
        self.shipments = {}  # (service, external_id) -> Shipment
        self.returns = {}  # return id -> {"status", "lines": Counter}
        self.applied = []
        self.rejected = []
        self.view = None
        self.events = 0

    # ---- talking to the app -------------------------------------------------------------------

    @property
    def now(self):
        return self.clock.now

    @staticmethod
    def explain(response):
        return f"{response.status_code} {response.get_data(as_text=True)[:800]}"

    def call(self, method, path, body=None):
        response = self.api.call(method, path, body)
        assert response.status_code < 500, (method, path, body, self.explain(response))
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json", self.explain(response)
        return response

    def post(self, path, body=None):
        return self.call("POST", path, body)

    def get(self, path):
        response = self.call("GET", path)
        assert response.status_code == 200, self.explain(response)
        return response.body

    def send(self, service, body, webhook_id):
        response = self.service.send(
            service, None, None, webhook_id=webhook_id, body=body,
            timestamp=self.now.replace(tzinfo=UTC),
        )
        assert response.status_code < 500, (service, body, self.explain(response))
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json", self.explain(response)
        EXPLORED["webhooks"] += 1
        return response

    def view_fo(self, fo_id):
        return next(fo for fo in self.view["fulfillment_orders"] if fo["id"] == fo_id)

    def current_request_id(self, fo_id):
        ids = [
            request["id"]
            for request in self.view_fo(fo_id)["merchant_requests"]
            if request["kind"] == "fulfillment_request"
        ]
        return max(ids) if ids else None

    def busy(self):
        return [fo.id for fo in self.fos.values() if fo.status == "in_progress"]

    def service_fos(self):
        return sorted(fo.id for fo in self.fos.values() if fo.service is not None)

    # ---- checking a step ----------------------------------------------------------------------

    def check(self, events, notes=(), mentions=()):
        """Read the order back: exactly `events` new timeline events, and the model holds."""
        order = self.get(f"/orders/{self.order_id}")
        timeline = self.get(f"/orders/{self.order_id}/timeline")
        new = timeline[self.events:]
        assert len(timeline) - self.events == events, (
            f"expected {events} new timeline event(s), got {[e['kind'] for e in new]}"
        )
        messages = [event["message"] for event in new]
        for note in notes:
            if note is not None:
                assert note in messages, f"note {note!r} not verbatim in {messages}"
        for word in mentions:
            assert any(word in json.dumps(e, ensure_ascii=False).lower() for e in new), (word, new)
        self.compare(order)
        self.view, self.events = order, len(timeline)
        EXPLORED["steps"] += 1

    def compare(self, order):
        now = self.now
        shown = {fo["id"]: fo for fo in order["fulfillment_orders"]}
        assert set(shown) == set(self.fos), ("fulfillment orders", sorted(shown), sorted(self.fos))
        for fo_id, model in self.fos.items():
            fo = shown[fo_id]
            context = (fo_id, model, fo)
            assert fo["service"] == model.service, context
            assert (fo["status"], fo["request_status"]) == (
                model.status_at(now), model.request_status,
            ), context
            assert fo["needs_attention"] is model.needs_attention, context
            lines = defaultdict(lambda: [0, 0])
            for line in fo["line_items"]:
                assert 0 <= line["remaining_quantity"] <= line["quantity"], context
                if line["quantity"]:
                    lines[line["line_item_id"]][0] += line["quantity"]
                    lines[line["line_item_id"]][1] += line["remaining_quantity"]
            assert dict(lines) == model.shown_lines(), context
            if model.status_at(now) == "on_hold":
                assert fo["hold"] == model.hold, context
            supported = set(fo["supported_actions"])
            assert supported <= set(MERCHANT_ACTIONS), context
            assert supported == allowed_actions(model, now), context
            requests = {request["id"] for request in fo["merchant_requests"]}
            assert model.requests <= requests, ("merchant requests are never deleted", context)
            model.requests = requests
        self.compare_lines(order)
        self.compare_statuses(order)
        self.compare_shipments(order)

    def compare_lines(self, order):
        items = {line["id"]: line for line in order["line_items"]}
        assert set(items) == set(self.lines)
        shipped, fo_fulfilled, fo_quantity = Counter(), Counter(), Counter()
        for fulfillment in order["fulfillments"]:
            for line in fulfillment["line_items"]:
                assert line["quantity"] > 0, fulfillment
                shipped[line["line_item_id"]] += line["quantity"]
        for fo in order["fulfillment_orders"]:
            for line in fo["line_items"]:
                fo_fulfilled[line["line_item_id"]] += line["quantity"] - line["remaining_quantity"]
                fo_quantity[line["line_item_id"]] += line["quantity"]
        for line_id, line in items.items():
            assert line["quantity"] == self.lines[line_id]["quantity"], line
            assert 0 <= line["fulfilled_quantity"] <= line["quantity"], line
            assert line["fulfilled_quantity"] == shipped[line_id] == fo_fulfilled[line_id], (
                line, shipped, fo_fulfilled,
            )
            # every ordered unit sits on exactly one FO line
            assert fo_quantity[line_id] == line["quantity"], (line, fo_quantity)

    def compare_statuses(self, order):
        now = self.now
        money = Money.of(order)
        assert Decimal(order["total_price"]) == money.total
        assert Decimal(order["amount_authorized"]) == money.authorized
        assert Decimal(order["amount_captured"]) == money.captured
        assert Decimal(order["amount_refunded"]) == money.refunded
        expected = {
            "order_status": ["archived" if self.archived else "open"]
            + (["cancelled"] if self.cancelled else []),
            "payment_status": money.status(now),
            "payment_markers": money.markers(now),
            "fulfillment_status": fulfillment_status_of(order),
            "return_status": return_status_of(order),
            "needs_attention": any(fo.needs_attention for fo in self.fos.values()),
        }
        assert {key: order[key] for key in expected} == expected, (money, now)
        assert (order["cancelled_at"] is not None) is self.cancelled
        assert {r["id"]: r["status"] for r in order["returns"]} == {
            rid: r["status"] for rid, r in self.returns.items()
        }

    def compare_shipments(self, order):
        fo_service = {fo["id"]: fo["service"] for fo in order["fulfillment_orders"]}
        by_service = [f for f in order["fulfillments"] if f["created_by"] == "service"]
        by_merchant = [f for f in order["fulfillments"] if f["created_by"] == "merchant"]
        assert len(by_merchant) == self.merchant_fulfillments
        keys = [(fo_service[f["fulfillment_order_id"]], f["external_id"]) for f in by_service]
        assert sorted(keys) == sorted(self.shipments), "one fulfillment per external_id"
        for fulfillment, key in zip(by_service, keys, strict=True):
            shipment = self.shipments[key]
            assert fulfillment["fulfillment_order_id"] == shipment.fulfillment_order_id
            if shipment.events:
                latest = max(happened for happened, _ in shipment.events)
                statuses = {status for happened, status in shipment.events if happened == latest}
                assert fulfillment["shipment_status"] in statuses, (fulfillment, shipment)
            else:
                assert fulfillment["shipment_status"] is None, fulfillment
            assert len(fulfillment["events"]) == len(shipment.events)
            if shipment.tracking is not None:
                assert fulfillment["tracking"] == shipment.tracking

    def refused(self, response, fo, codes=("invalid_transition",), legacy_action=None):
        """A 409 that names the FO's state and changes nothing."""
        assert response.status_code == 409, self.explain(response)
        problem = response.body
        assert problem["code"] in codes, problem
        if problem["code"] == "invalid_transition" and fo is not None:
            assert problem.get("current_status") == fo.status_at(self.now), problem
            assert problem.get("request_status") == fo.request_status, problem
        if (
            legacy_action in LEGACY_REFUSED
            and fo.workflow == "legacy"
            and fo.status_at(self.now) == "in_progress"
        ):
            assert "contact" in problem["detail"].lower(), problem
        EXPLORED["refusals"] += 1
        self.check(0)

    # ---- moving the model -----------------------------------------------------------------------

    def draw_fo_lines(self, data, fo_id, *, over=False):
        """Draw `[{id, quantity}]` over lines with something remaining (None if there are none)."""
        candidates = [line for line in self.view_fo(fo_id)["line_items"] if line["remaining_quantity"]]
        if over:
            candidates = self.view_fo(fo_id)["line_items"]
        if not candidates:
            return None
        chosen = data.draw(
            st.lists(st.sampled_from(candidates), min_size=1, max_size=len(candidates),
                     unique_by=lambda line: line["id"])
        )
        if over:
            return [{"id": line["id"], "quantity": line["remaining_quantity"] + 1} for line in chosen]
        return [
            {"id": line["id"], "quantity": data.draw(st.integers(1, line["remaining_quantity"]))}
            for line in chosen
        ]

    def line_item_of(self, fo_id, fo_line_id):
        line = next(line for line in self.view_fo(fo_id)["line_items"] if line["id"] == fo_line_id)
        return line["line_item_id"]

    def all_remaining(self, fo_id):
        return [
            {"id": line["id"], "quantity": line["remaining_quantity"]}
            for line in self.view_fo(fo_id)["line_items"]
            if line["remaining_quantity"]
        ]

    def ship(self, fo, lines):
        """Count a shipment of `[{id, quantity}]` against the FO; SPEC: closed when nothing remains."""
        shipped = Counter()
        for item in lines:
            line_item = self.line_item_of(fo.id, item["id"])
            fo.lines[line_item][1] -= item["quantity"]
            shipped[line_item] += item["quantity"]
        if fo.remaining == 0:
            fo.status = "closed"
        return shipped

    def move(self, fo, quantities):
        """Take {line_item_id: quantity} off `fo` and return them as the lines of a new FO."""
        moved = {}
        for line_item, quantity in quantities.items():
            if quantity > 0:
                fo.lines[line_item][0] -= quantity
                fo.lines[line_item][1] -= quantity
                moved[line_item] = [quantity, quantity]
        return moved

    def paid(self):
        return not self.cancelled and Money.of(self.view).status(None) == "paid"

    def auto_fulfill(self, fos=None):
        """SPEC 2.3: an auto-fulfill FO that is open / unsubmitted on a paid order is requested,
        unless the merchant has had it (requested, or split off, before); return how many."""
        requested = 0
        for fo in self.fos.values() if fos is None else fos:
            if (
                fo.service in AUTO_FULFILL
                and (fo.status_at(self.now), fo.request_status) == ("open", "unsubmitted")
                and fo.remaining > 0
                and not fo.decided
            ):
                fo.status, fo.request_status, fo.decided = "in_progress", "submitted", True
                requested += 1
        return requested

    # ---- the order ----------------------------------------------------------------------------

    @initialize(data=st.data())
    def import_order(self, data):
        now = self.now
        lines = [
            {
                "sku": f"SKU-{index}",
                "title": data.draw(st.sampled_from(["T-shirt", "Mug", "หมวก 🧢"])),
                "quantity": data.draw(st.integers(1, 3)),
                "price": data.draw(st.sampled_from(PRICES)),
                "fulfillment_service": data.draw(st.sampled_from(SERVICE_CHOICES)),
            }
            for index in range(data.draw(st.integers(1, 3)))
        ]
        body = order_payload(line_items=lines)
        timing = data.draw(st.sampled_from(["now", "scheduled", "fulfill_at_passed", "held"]))
        fulfill_at = hold = None
        if timing == "scheduled":
            fulfill_at = now + timedelta(hours=data.draw(st.sampled_from([5, 30])), minutes=7)
        elif timing == "fulfill_at_passed":
            fulfill_at = now - timedelta(hours=3, minutes=7)
        elif timing == "held":
            hold = {"reason": data.draw(st.sampled_from(HOLD_REASONS)), "note": data.draw(NOTES)}
            body["hold"] = hold
        if fulfill_at is not None:
            body["fulfill_at"] = iso(fulfill_at)
        due_in = data.draw(st.sampled_from([None, -1, 1, 3]))
        if due_in is not None:
            body["payment_due_at"] = iso(now + timedelta(days=due_in, minutes=7))
        total = sum(Decimal(line["price"]) * line["quantity"] for line in lines)
        payment = data.draw(st.sampled_from(["none", "authorized", "paid", "part_paid"]))
        if payment == "authorized":
            expires = now + timedelta(days=data.draw(st.sampled_from([1, 4])), minutes=7)
            body["transactions"] = [
                {"kind": "authorization", "amount": f"{total:.2f}", "expires_at": iso(expires)}
            ]
        elif payment == "paid":
            body["transactions"] = [{"kind": "sale", "amount": f"{total:.2f}"}]
        elif payment == "part_paid":
            body["transactions"] = [{"kind": "sale", "amount": "0.50"}]

        response = self.post("/orders", body)
        assert response.status_code == 201, self.explain(response)
        order = response.body
        self.order_id = order["id"]
        items = order["line_items"]
        assert [item["fulfillment_service"] for item in items] == [
            line["fulfillment_service"] for line in lines
        ]
        self.lines = {
            item["id"]: {"quantity": item["quantity"], "service": item["fulfillment_service"]}
            for item in items
        }
        services = list(dict.fromkeys(line["fulfillment_service"] for line in lines))
        shown = {fo["service"]: fo for fo in order["fulfillment_orders"]}
        assert len(order["fulfillment_orders"]) == len(services), "one FO per service at intake"
        assert set(shown) == set(services)
        status = "on_hold" if hold else "scheduled" if timing == "scheduled" else "open"
        for service in services:
            fo_id = shown[service]["id"]
            self.fos[fo_id] = ModelFO(
                fo_id,
                service,
                status,
                fulfill_at=fulfill_at if status == "scheduled" else None,
                hold=hold,
                lines={
                    item["id"]: [item["quantity"], item["quantity"]]
                    for item in items
                    if item["fulfillment_service"] == service
                },
            )
        events = 1 + (self.auto_fulfill() if payment == "paid" else 0)
        EXPLORED["examples"] += 1
        self.check(events, notes=[hold["note"]] if hold else ())

    # ---- merchant actions on fulfillment orders -----------------------------------------------

    @rule(data=st.data())
    def merchant_acts_on_a_fulfillment_order(self, data):
        self.merchant_action(data)

    @rule(data=st.data())
    def merchant_acts_again(self, data):
        self.merchant_action(data)

    @rule(data=st.data())
    def merchant_acts_once_more(self, data):
        self.merchant_action(data)

    def merchant_action(self, data):
        # Mostly an action some FO lists, to reach deep states; otherwise anything, to see refusals.
        pairs = [(fo["id"], action) for fo in self.view["fulfillment_orders"]
                 for action in fo["supported_actions"]]
        if pairs and data.draw(st.integers(0, 9), label="bias") < 7:
            action = data.draw(st.sampled_from(sorted({action for _, action in pairs})))
            fo = self.fos[data.draw(st.sampled_from([f for f, a in pairs if a == action]))]
        else:
            fo = self.fos[data.draw(st.sampled_from(sorted(self.fos)), label="fo")]
            action = data.draw(st.sampled_from((*MERCHANT_ACTIONS, "acknowledge")), label="action")
        self.act(data, fo, action)

    def act(self, data, fo, action):
        EXPLORED[f"merchant:{action}"] += 1
        path = f"/fulfillment_orders/{fo.id}/{PATHS[action]}"
        if action == "acknowledge":
            response = self.post(path)
            assert response.status_code == 200, self.explain(response)
            events = 1 if fo.needs_attention else 0  # README: idempotent, records nothing twice
            fo.needs_attention = False
            self.check(events)
            return
        listed = action in self.view_fo(fo.id)["supported_actions"]
        getattr(self, f"do_{action}")(data, fo, path, listed)

    def do_request_fulfillment(self, data, fo, path, listed):
        note = data.draw(NOTES)
        lines = self.draw_fo_lines(data, fo.id) if data.draw(st.booleans()) else None
        body = {"message": note, "notify_customer": data.draw(st.booleans())}
        if lines is not None:
            body["line_items"] = lines
        response = self.post(path, body)
        if not listed:
            return self.refused(response, fo)
        assert response.status_code == 200, self.explain(response)
        result = response.body
        assert result["submitted_fulfillment_order"]["id"] == fo.id
        rest = {}
        if lines is not None:
            asked = {item["id"]: item["quantity"] for item in lines}
            for line in self.view_fo(fo.id)["line_items"]:
                rest.setdefault(line["line_item_id"], 0)
                rest[line["line_item_id"]] += line["remaining_quantity"] - asked.get(line["id"], 0)
        moved = self.move(fo, rest)
        if moved:  # SPEC 2.3 partial request: the rest moves to a new open / unsubmitted FO
            new_id = result["unsubmitted_fulfillment_order"]["id"]
            assert new_id not in self.fos
            self.fos[new_id] = ModelFO(new_id, fo.service, "open", lines=moved, decided=True)
        else:
            assert result["unsubmitted_fulfillment_order"] is None, result
        fo.status, fo.request_status, fo.decided = "in_progress", "submitted", True
        self.check(1, notes=[note])
        self.check_latest_request(fo.id, "fulfillment_request", note)

    def do_cancel_fulfillment_request(self, data, fo, path, listed):
        note = data.draw(NOTES)
        response = self.post(path, {"message": note})
        if not listed:
            return self.refused(response, fo, legacy_action="cancel_fulfillment_request")
        assert response.status_code == 200, self.explain(response)
        fo.status, fo.request_status = "open", "unsubmitted"
        self.check(1, notes=[note])

    def do_request_cancellation(self, data, fo, path, listed):
        note = data.draw(NOTES)
        response = self.post(path, {"message": note})
        if not listed:
            return self.refused(response, fo, legacy_action="request_cancellation")
        assert response.status_code == 200, self.explain(response)
        fo.status, fo.request_status = "in_progress", "cancellation_requested"
        self.check(1, notes=[note])
        self.check_latest_request(fo.id, "cancellation_request", note)

    def check_latest_request(self, fo_id, kind, note):
        """SPEC 2.3: `merchant_requests` lists every request sent, with its message."""
        latest = max(self.view_fo(fo_id)["merchant_requests"], key=lambda request: request["id"])
        assert (latest["kind"], latest["message"]) == (kind, note), latest

    def do_revert_to_unfulfilled(self, data, fo, path, listed):
        note = data.draw(NOTES)
        lines = self.draw_fo_lines(data, fo.id) if data.draw(st.booleans()) else None
        body = {"message": note}
        if lines is not None:
            body["line_items"] = lines
        response = self.post(path, body)
        if not listed:
            return self.refused(response, fo, legacy_action="revert_to_unfulfilled")
        assert response.status_code == 200, self.explain(response)
        result = response.body
        assert any("inventory" in warning.lower() for warning in result["warnings"]), result
        if lines is not None and sum(item["quantity"] for item in lines) < fo.remaining:
            # SPEC 2.3: only those quantities move to a new open / unsubmitted FO
            taken = Counter()
            for item in lines:
                taken[self.line_item_of(fo.id, item["id"])] += item["quantity"]
            new_id = result["fulfillment_order"]["id"]
            assert new_id not in self.fos, result
            assert result["unchanged_fulfillment_order"]["id"] == fo.id
            self.fos[new_id] = ModelFO(new_id, fo.service, "open", lines=self.move(fo, taken),
                                       decided=True)
        else:
            assert result["fulfillment_order"]["id"] == fo.id
            fo.status, fo.request_status = "open", "unsubmitted"
        self.check(1, notes=[note], mentions=["inventory"])

    def do_mark_as_fulfilled(self, data, fo, path, listed):
        variant = data.draw(st.sampled_from(["all", "some", "over"]))
        lines = None
        if variant in ("some", "over"):
            lines = self.draw_fo_lines(data, fo.id, over=variant == "over")
        body = {"notify_customer": data.draw(st.booleans())}
        if data.draw(st.booleans()):
            body["tracking"] = {"number": f"1Z{secrets.token_hex(4)}", "company": "UPS",
                                "url": "https://ups.example/track"}
        if lines is not None:
            body["line_items"] = lines
        response = self.post(path, body)
        if not listed:
            return self.refused(response, fo, codes=("invalid_transition", "over_fulfillment"))
        if variant == "over" and lines is not None:
            return self.refused(response, fo, codes=("over_fulfillment",))
        assert response.status_code == 201, self.explain(response)
        shipped = self.ship(fo, lines if lines is not None else self.all_remaining(fo.id))
        result = response.body
        assert result["fulfillment"]["created_by"] == "merchant"
        assert result["fulfillment_order"]["id"] == fo.id
        assert Counter(
            {line["line_item_id"]: line["quantity"] for line in result["fulfillment"]["line_items"]}
        ) == shipped
        self.merchant_fulfillments += 1
        self.check(1)

    def do_hold(self, data, fo, path, listed):
        hold = {"reason": data.draw(st.sampled_from(HOLD_REASONS)), "note": data.draw(NOTES)}
        response = self.post(path, hold)
        if not listed:
            return self.refused(response, fo)
        assert response.status_code == 200, self.explain(response)
        fo.status, fo.hold = "on_hold", hold
        self.check(1, notes=[hold["note"]])

    def do_release_hold(self, data, fo, path, listed):
        response = self.post(path)
        if not listed:
            return self.refused(response, fo)
        assert response.status_code == 200, self.explain(response)
        fo.status, fo.hold = "open", None
        self.check(1 + (self.auto_fulfill([fo]) if self.paid() else 0))

    def do_open(self, data, fo, path, listed):
        response = self.post(path)
        if not listed:
            return self.refused(response, fo)
        assert response.status_code == 200, self.explain(response)
        fo.status = "open"
        self.check(1 + (self.auto_fulfill([fo]) if self.paid() else 0))

    def do_send_message(self, data, fo, path, listed):
        message = data.draw(MESSAGES)
        response = self.post(path, {"message": message})
        if not listed:
            return self.refused(response, fo)
        assert response.status_code == 200, self.explain(response)
        self.check(1, notes=[message])

    @precondition(lambda self: self.service_fos())
    @rule(data=st.data())
    def a_request_runs_its_course(self, data):
        """A few natural next moves on one FO, by either side: reaches the deep states quickly."""
        fo = self.fos[data.draw(st.sampled_from(self.service_fos()), label="fo")]
        for _ in range(data.draw(st.integers(1, 5), label="moves")):
            now_listed = allowed_actions(fo, self.now)
            if fo.status_at(self.now) == "in_progress":
                moves = [("service", kind) for kind in EXPECTED_KINDS[fo.request_status]]
                moves += [("merchant", action) for action in sorted(now_listed)]
            else:
                moves = [("merchant", action) for action in sorted(now_listed)
                         if action in ("request_fulfillment", "release_hold", "open")]
            if not moves:
                return
            side, move = data.draw(st.sampled_from(moves), label="move")
            if side == "merchant":
                self.act(data, fo, move)
            else:
                self.webhook(fo.service, move, self.draw_payload(data, fo, move))

    @rule(data=st.data())
    def every_unlisted_action_answers_409(self, data):
        fo_ids = data.draw(st.lists(st.sampled_from(sorted(self.fos)), min_size=1, unique=True))
        for fo_id in fo_ids:
            shown, fo = self.view_fo(fo_id), self.fos[fo_id]
            for action in MERCHANT_ACTIONS:
                if action in shown["supported_actions"]:
                    continue
                path = f"/fulfillment_orders/{fo.id}/{PATHS[action]}"
                response = self.post(path, MINIMAL_BODIES[action])
                assert response.status_code == 409, (action, self.explain(response))
                problem = response.body
                assert problem["code"] == "invalid_transition", (action, problem)
                assert problem.get("current_status") == fo.status_at(self.now), (action, problem)
                assert problem.get("request_status") == fo.request_status, (action, problem)
                EXPLORED["refusals"] += 1
        self.check(0)

    # ---- merchant actions on the order --------------------------------------------------------

    @rule(data=st.data())
    def merchant_acts_on_the_order(self, data):
        actions = [self.merchant_records_a_transaction] * 3 + [
            self.merchant_edits_the_order,
            self.merchant_edits_the_order,
            self.merchant_cancels_the_order,
            self.merchant_archives_or_unarchives,
        ]
        if self.returnable():
            actions += [self.merchant_or_customer_opens_a_return] * 2
        if self.returns:
            actions += [self.merchant_moves_a_return] * 2
        data.draw(st.sampled_from(actions), label="order action")(data)

    def merchant_records_a_transaction(self, data):
        kind = data.draw(st.sampled_from(["authorization", "capture", "sale", "refund", "void"]))
        money = Money.of(self.view)
        room = {
            "authorization": money.total - money.authorized,
            "capture": money.uncaptured,
            "sale": money.total - money.captured,
            "refund": money.captured - money.refunded,
            "void": money.uncaptured,
        }[kind]
        body = {"kind": kind}
        amount = None
        size = data.draw(st.sampled_from(["all", "part", "over"] + (["none"] if kind == "void" else [])))
        if size != "none":
            if room <= 0 or size == "over":
                amount = max(room, Decimal(0)) + CENT
            elif size == "all":
                amount = room
            else:
                amount = max(CENT, (room / 2).quantize(CENT))
            body["amount"] = f"{amount:.2f}"
        if kind == "authorization":
            days = data.draw(st.sampled_from([None, 1, 4]))
            if days is not None:
                body["expires_at"] = iso(self.now + timedelta(days=days, minutes=7))
        # What the contract says of this transaction: "ok", "invalid" (422), "either" (silent).
        if kind == "void" and amount is None:
            # SPEC 2.2: all that is authorized and not captured; nothing such is a 422
            verdict = "ok" if room > 0 else "invalid"
        elif amount > room:
            # over-authorization, over-capture, over-sale, over-refund, voiding what is captured
            verdict = "invalid"
        elif kind == "capture" and money.auth_ends is not None and money.auth_ends <= self.now:
            verdict = "either"  # capturing an expired authorization: the SPEC is silent
        else:
            verdict = "ok"
        response = self.post(f"/orders/{self.order_id}/transactions", body)
        if kind == "refund" and self.busy():
            assert response.status_code == 409, self.explain(response)
            assert response.body["code"] == "order_locked"
            return self.check(0)
        if self.cancelled and kind in ("authorization", "capture", "sale"):
            assert response.status_code == 409, self.explain(response)  # README: no new payments
            return self.check(0)
        if verdict == "invalid" or (verdict == "either" and response.status_code != 201):
            assert response.status_code in ((422,) if verdict == "invalid" else (409, 422)), (
                body, self.explain(response),
            )
            if response.status_code == 422:
                assert response.body["errors"], response.body
            return self.check(0)
        assert response.status_code == 201, (body, money, self.explain(response))
        was_paid = money.status(None) == "paid"
        after = Money.of({**self.view, "transactions": [*self.view["transactions"], response.body]})
        events = 1
        if not was_paid and after.status(None) == "paid" and not self.cancelled:
            events += self.auto_fulfill()
        self.check(events)

    def merchant_cancels_the_order(self, data):
        reason, refund = data.draw(NOTES), data.draw(st.booleans())
        before = Money.of(self.view)
        response = self.post(f"/orders/{self.order_id}/cancel", {"reason": reason, "refund": refund})
        if self.cancelled:
            assert response.status_code == 409, self.explain(response)  # README: twice is a 409
            return self.check(0)
        if self.busy():
            assert response.status_code == 409, self.explain(response)
            problem = response.body
            assert problem["code"] == "order_locked", problem
            assert problem.get("fulfillment_order_id") in self.busy() or any(
                str(fo_id) in problem["detail"] for fo_id in self.busy()
            ), problem
            return self.check(0)
        assert response.status_code == 200, self.explain(response)
        after = Money.of(response.body)
        assert after.uncaptured == 0, "SPEC 2.2: cancel voids whatever is authorized, not captured"
        assert after.authorized == before.captures, "SPEC 2.2: and nothing else"
        if refund:
            assert after.refunded == after.captured, "SPEC 3: refund if asked"
        else:
            assert after.refunded == before.refunded
        self.cancelled = True
        for fo in self.fos.values():
            if fo.remaining > 0:
                fo.status = "cancelled"
        self.check(1, notes=[reason])

    def merchant_edits_the_order(self, data):
        items = self.view["line_items"]
        variant = data.draw(st.sampled_from(["quantities", "add_line", "below_fulfilled"]))
        body, edits = {}, {}
        below = False
        if variant == "add_line":
            body["add_line_items"] = [{
                "sku": "EXTRA", "title": "Extra", "quantity": data.draw(st.integers(1, 2)),
                "price": data.draw(st.sampled_from(PRICES)),
                "fulfillment_service": data.draw(st.sampled_from(SERVICE_CHOICES)),
            }]
        else:
            chosen = data.draw(st.lists(st.sampled_from(items), min_size=1, max_size=2,
                                        unique_by=lambda line: line["id"]))
            for line in chosen:
                fulfilled = line["fulfilled_quantity"]
                if variant == "below_fulfilled" and fulfilled > 0:
                    edits[line["id"]] = data.draw(st.integers(0, fulfilled - 1))
                    below = True
                else:
                    edits[line["id"]] = data.draw(
                        st.integers(fulfilled, line["quantity"] + 2).filter(
                            lambda quantity, line=line: quantity != line["quantity"]
                        )
                    )
            body["line_items"] = [{"id": key, "quantity": value} for key, value in edits.items()]
        response = self.call("PATCH", f"/orders/{self.order_id}", body)
        refusals = set()
        if self.cancelled:
            refusals.add(409)
        if self.busy():
            refusals.add(409)
        if below:
            refusals.add(422)
        kept = {line["id"]: edits.get(line["id"], line["quantity"]) for line in items}
        if edits and not any(quantity >= 1 for quantity in kept.values()):
            refusals.add(422)  # SPEC 2.3: an order keeps a line with quantity 1 or more
        if refusals:
            assert response.status_code in refusals, (body, self.explain(response))
            if response.status_code == 409 and not self.cancelled:
                assert response.body["code"] == "order_locked", response.body
            return self.check(0)
        assert response.status_code == 200, (body, self.explain(response))
        self.adopt_edit(response.body, edits)
        self.check(1)

    def adopt_edit(self, order, edits):
        """Check an edit against README "Edits", then take the API's FO lines as the new truth."""
        now = self.now
        before = {fo_id: fo.shown_lines() for fo_id, fo in self.fos.items()}
        shown = {fo["id"]: fo for fo in order["fulfillment_orders"]}
        assert set(before) <= set(shown), "an edit never removes a fulfillment order"
        new_ids = set(shown) - set(before)
        after = {}
        for fo_id, fo in shown.items():
            lines = defaultdict(lambda: [0, 0])
            for line in fo["line_items"]:
                if line["quantity"]:
                    lines[line["line_item_id"]][0] += line["quantity"]
                    lines[line["line_item_id"]][1] += line["remaining_quantity"]
            after[fo_id] = dict(lines)
        items = {line["id"]: line for line in order["line_items"]}
        added = set(items) - set(self.lines)
        wanted = {line_id: quantity - self.lines[line_id]["quantity"]
                  for line_id, quantity in edits.items()}
        wanted.update({line_id: items[line_id]["quantity"] for line_id in added})
        changes = defaultdict(list)
        for fo_id in after:
            was, now_is = before.get(fo_id, {}), after[fo_id]
            for line_id in set(was) | set(now_is):
                quantity_was, remaining_was = was.get(line_id, (0, 0))
                quantity, remaining = now_is.get(line_id, (0, 0))
                assert quantity - quantity_was == remaining - remaining_was, (
                    "an edit never changes fulfilled units", fo_id, line_id,
                )
                if quantity != quantity_was:
                    changes[line_id].append((fo_id, quantity - quantity_was))
        for line_id in set(changes) | set(wanted):
            want, got = wanted.get(line_id, 0), changes.get(line_id, [])
            service = items[line_id]["fulfillment_service"]
            context = (line_id, want, got, self.fos)
            if want == 0:
                assert not got, context
            elif want > 0:
                assert len(got) == 1 and got[0][1] == want, context
                target = got[0][0]
                loose = [fo.id for fo in self.fos.values() if fo.service == service
                         and fo.status_at(now) == "open" and fo.request_status == "unsubmitted"]
                if target in new_ids:
                    assert not loose, ("SPEC 3: increases join an open, unsubmitted FO", context)
                    assert shown[target]["service"] == service, context
                else:
                    assert target in loose, ("SPEC 3: increases join an open, unsubmitted FO",
                                             context)
            else:
                assert all(delta < 0 for _, delta in got) and sum(d for _, d in got) == want, context
                for fo_id, _ in got:
                    assert fo_id in self.fos and self.fos[fo_id].status_at(now) in (
                        QUANTITIES_COME_OFF
                    ), ("README: decreases come off FOs that are not with a service", context)
        for fo_id in new_ids:
            self.fos[fo_id] = ModelFO(fo_id, shown[fo_id]["service"], "open")
        for fo_id, fo in self.fos.items():
            had = fo.remaining
            fo.lines = {line_id: list(q_r) for line_id, q_r in after[fo_id].items()}
            if had > 0 and fo.remaining == 0:
                fo.status = "closed"  # README: an FO left with nothing to ship is closed
        for line_id, quantity in edits.items():
            self.lines[line_id]["quantity"] = quantity
        for line_id in added:
            self.lines[line_id] = {"quantity": items[line_id]["quantity"],
                                   "service": items[line_id]["fulfillment_service"]}

    def merchant_archives_or_unarchives(self, data):
        archive = data.draw(st.booleans())
        response = self.post(f"/orders/{self.order_id}/{'archive' if archive else 'unarchive'}")
        assert response.status_code == 200, self.explain(response)
        events = 1 if archive != self.archived else 0  # README: idempotent
        self.archived = archive
        self.check(events)

    def returnable(self):
        returned = Counter()
        for return_ in self.returns.values():
            if return_["status"] != "declined":
                returned.update(return_["lines"])
        return {
            line["id"]: line["fulfilled_quantity"] - returned[line["id"]]
            for line in self.view["line_items"]
            if line["fulfilled_quantity"] - returned[line["id"]] > 0
        }

    def merchant_or_customer_opens_a_return(self, data):
        available = self.returnable()
        line_id = data.draw(st.sampled_from(sorted(available)))
        over = data.draw(st.booleans())
        quantity = available[line_id] + 1 if over else data.draw(st.integers(1, available[line_id]))
        by = data.draw(st.sampled_from(["customer", "merchant"]))
        body = {"requested_by": by, "line_items": [
            {"line_item_id": line_id, "quantity": quantity,
             "reason": data.draw(st.sampled_from(RETURN_REASONS))},
        ]}
        response = self.post(f"/orders/{self.order_id}/returns", body)
        if over:
            assert response.status_code == 422, self.explain(response)
            return self.check(0)
        assert response.status_code == 201, self.explain(response)
        status = "requested" if by == "customer" else "in_progress"
        assert response.body["status"] == status
        self.returns[response.body["id"]] = {"status": status, "lines": Counter({line_id: quantity})}
        self.check(1)

    def merchant_moves_a_return(self, data):
        return_id = data.draw(st.sampled_from(sorted(self.returns)))
        action = data.draw(st.sampled_from(["approve", "decline", "complete_inspection", "close"]))
        status = self.returns[return_id]["status"]
        response = self.post(f"/returns/{return_id}/{action}")
        result = RETURN_MOVES.get((status, action))
        if result is None and (status, action) in RETURN_MAY_MOVE and response.status_code == 200:
            result = RETURN_MAY_MOVE[(status, action)]
        if result is None:
            assert response.status_code == 409, self.explain(response)
            return self.check(0)
        assert response.status_code == 200, self.explain(response)
        assert response.body["status"] == result
        self.returns[return_id]["status"] = result
        self.check(1)

    @rule(data=st.data())
    def time_passes_or_the_outbox_is_delivered(self, data):
        hours = data.draw(st.sampled_from([0, 1, 7, 25, 49, 97]))
        if hours:
            self.clock.advance(hours=hours)
            return self.check(0)
        self.deliver(self.now)  # services answer 200: delivery changes no state
        # SPEC 2.3: the dispatcher's loop requests what its `fulfill_at` passing leaves
        # open / unsubmitted on a paid order.
        due = [fo for fo in self.fos.values()
               if fo.status == "scheduled" and fo.status_at(self.now) == "open"]
        for fo in due:
            fo.status = "open"
        self.check(self.auto_fulfill(due) if self.paid() else 0)

    # ---- service webhooks ---------------------------------------------------------------------

    @precondition(lambda self: self.service_fos())
    @rule(data=st.data())
    def service_reports(self, data):
        self.service_report(data)

    @precondition(lambda self: self.service_fos())
    @rule(data=st.data())
    def service_reports_again(self, data):
        self.service_report(data)

    @precondition(lambda self: self.service_fos())
    @rule(data=st.data())
    def service_reports_once_more(self, data):
        self.service_report(data)

    def service_report(self, data):
        # Mostly something the model expects to apply, to reach deep states; otherwise anything.
        pairs = [
            (fo.id, kind) for fo in self.fos.values() if fo.status == "in_progress"
            for kind in EXPECTED_KINDS[fo.request_status]
        ]
        if pairs and data.draw(st.integers(0, 9), label="bias") < 7:
            kind = data.draw(st.sampled_from(sorted({kind for _, kind in pairs})), label="type")
            fo = self.fos[data.draw(st.sampled_from([f for f, k in pairs if k == kind]))]
        else:
            fo = self.fos[data.draw(st.sampled_from(self.service_fos()), label="fo")]
            kind = data.draw(st.sampled_from(SERVICE_KINDS), label="type")
        self.webhook(fo.service, kind, self.draw_payload(data, fo, kind))

    def draw_payload(self, data, fo, kind):
        payload = {"fulfillment_order_id": fo.id}
        note = data.draw(MESSAGES if kind == "fulfillment_order.message" else NOTES)
        if note is not None:
            payload["message"] = note
        if kind.startswith("fulfillment_request."):
            current = self.current_request_id(fo.id)
            choice = data.draw(st.sampled_from(["absent", "current", "stale"]))
            if choice == "current" and current is not None:
                payload["request_id"] = current
            elif choice == "stale":
                payload["request_id"] = (current or 0) + 1_000_000
            if kind.endswith("rejected"):
                payload["reason"] = data.draw(st.sampled_from(REJECT_REASONS))
        elif kind == "fulfillment.created":
            known = [key[1] for key in self.shipments if key[0] == fo.service]
            variant = data.draw(st.sampled_from(["all", "some", "over", "known"]))
            payload["external_id"] = (
                data.draw(st.sampled_from(known)) if variant == "known" and known
                else f"ship-{secrets.token_hex(6)}"
            )
            if variant in ("some", "over"):
                lines = self.draw_fo_lines(data, fo.id, over=variant == "over")
                if lines is not None:
                    payload["line_items"] = lines
            if data.draw(st.booleans()):
                payload["tracking"] = {"number": secrets.token_hex(5), "company": "DHL",
                                       "url": "https://dhl.example/t"}
            payload["notify_customer"] = data.draw(st.booleans())
        return payload

    @precondition(lambda self: self.shipments)
    @rule(data=st.data())
    def service_reports_on_a_shipment(self, data):
        service, external_id = data.draw(st.sampled_from(sorted(self.shipments)))
        if data.draw(st.booleans()):
            payload = {
                "external_id": external_id,
                "status": data.draw(st.sampled_from(SHIPMENT_STATUSES)),
                "happened_at": iso(self.now - timedelta(minutes=data.draw(st.integers(0, 3000)))),
            }
            note = data.draw(NOTES)
            if note is not None:
                payload["message"] = note
            self.webhook(service, "fulfillment.event", payload)
        else:
            payload = {"external_id": external_id,
                       "tracking": {"number": secrets.token_hex(5), "company": "Kerry",
                                    "url": "https://kerry.example/t"}}
            self.webhook(service, "fulfillment.tracking_updated", payload)

    @rule(data=st.data())
    def another_service_reaches_for_this_order(self, data):
        fo = self.fos[data.draw(st.sampled_from(sorted(self.fos)))]
        other = data.draw(st.sampled_from(sorted(s for s in WORKFLOWS if s != fo.service)))
        kind = data.draw(st.sampled_from([
            "fulfillment_request.accepted",
            "cancellation_request.accepted",
            "fulfillment.created",
            "fulfillment_order.closed",
            "fulfillment_order.message",
        ]))
        payload = self.draw_payload(data, fo, kind)
        if kind == "fulfillment_order.message":
            payload["message"] = "hello"
        self.webhook(other, kind, payload)
        foreign = [key for key in self.shipments if key[0] != other]
        if foreign:
            _, external_id = data.draw(st.sampled_from(sorted(foreign)))
            self.webhook(other, "fulfillment.event", {
                "external_id": external_id, "status": "delivered", "happened_at": iso(self.now),
            })

    @precondition(lambda self: self.applied or self.rejected)
    @rule(data=st.data())
    def service_sends_a_delivery_again(self, data):
        actions = []
        if self.applied:
            actions += [self.service_redelivers_an_applied_webhook,
                        self.service_reuses_a_webhook_id_for_another_body]
        if self.rejected:
            actions += [self.service_retries_a_rejected_webhook] * 2
        data.draw(st.sampled_from(actions), label="redelivery")(data)

    def service_redelivers_an_applied_webhook(self, data):
        delivery = data.draw(st.sampled_from(self.applied))
        response = self.send(delivery.service, delivery.body, delivery.webhook_id)
        assert response.status_code == delivery.status, self.explain(response)
        assert response.headers.get("Idempotent-Replayed") == "true"
        assert response.body == delivery.response
        self.check(0)

    def service_reuses_a_webhook_id_for_another_body(self, data):
        delivery = data.draw(st.sampled_from(self.applied))
        fo_id = next((fo.id for fo in self.fos.values() if fo.service == delivery.service), 1)
        body = json.dumps({"type": "fulfillment_order.message", "timestamp": iso(self.now),
                           "data": {"fulfillment_order_id": fo_id,
                                    "message": f"other {secrets.token_hex(4)}"}})
        response = self.send(delivery.service, body, delivery.webhook_id)
        assert response.status_code == 422, self.explain(response)
        assert response.body["code"] == "idempotency_conflict"
        self.check(0)

    def service_retries_a_rejected_webhook(self, data):
        delivery = data.draw(st.sampled_from(self.rejected))
        self.rejected.remove(delivery)  # SPEC 4.2: judged again against the current state
        self.webhook(delivery.service, delivery.kind, delivery.payload,
                     webhook_id=delivery.webhook_id, body=delivery.body)

    def webhook(self, service, kind, payload, webhook_id=None, body=None):
        body = body or json.dumps(
            {"type": kind, "timestamp": iso(self.now), "data": payload}, ensure_ascii=False
        )
        delivery = Delivery(service, webhook_id or f"msg_{secrets.token_hex(8)}", body, kind,
                            payload)
        expect = self.predict(service, kind, payload)
        EXPLORED[f"webhook:{kind}:{expect.status}"] += 1
        response = self.send(service, body, delivery.webhook_id)
        assert response.status_code in (expect.status, *expect.others), (
            service, payload, self.explain(response),
        )
        if response.status_code != expect.status:
            return self.check(0)
        if expect.status == 200:
            EXPLORED["webhooks applied"] += 1
            assert response.body["status"] == "applied"
            assert response.headers.get("Idempotent-Replayed") is None
            if expect.apply is not None:
                expect.apply(response.body)
            delivery.status, delivery.response = 200, response.body
            self.applied.append(delivery)
            self.check(expect.events, notes=expect.notes)
        else:
            if expect.status == 409:  # may apply later, once the state allows it
                self.rejected.append(delivery)
                return self.refused(response, expect.fo, codes=expect.codes)
            assert response.body["code"] in expect.codes, response.body
            self.check(0)

    def predict(self, service, kind, payload):
        """What SPEC 2.3 and 4.2 say this webhook does, from the model's state."""
        note = payload.get("message")
        if kind in ("fulfillment.event", "fulfillment.tracking_updated"):
            shipment = self.shipments.get((service, payload["external_id"]))
            if shipment is None:
                return Expect(404, codes=("not_found",))

            def record(result):
                assert result["fulfillment"]["external_id"] == payload["external_id"]
                if kind == "fulfillment.event":
                    shipment.events.append((parse_time(payload["happened_at"]), payload["status"]))
                else:
                    shipment.tracking = dict(payload["tracking"])

            return Expect(200, 1, apply=record,
                          notes=(note,) if kind == "fulfillment.event" else ())
        fo = self.fos.get(payload["fulfillment_order_id"])
        if fo is None or fo.service != service:
            return Expect(404, codes=("not_found",))
        status, request_status = fo.status_at(self.now), fo.request_status
        refuse = Expect(409, codes=("invalid_transition",), fo=fo)

        def moves(new_status, new_request_status):
            def apply(result):
                assert result["fulfillment_order"]["id"] == fo.id
                fo.status, fo.request_status = new_status, new_request_status

            return Expect(200, 1, apply=apply, notes=(note,))

        if kind == "fulfillment_order.message":
            return Expect(200, 1, notes=(note,))
        if kind.startswith("fulfillment_request."):
            request_id = payload.get("request_id")
            if request_id is not None and request_id != self.current_request_id(fo.id):
                return refuse  # SPEC 4.2: a stale request_id
            if (status, request_status) != ("in_progress", "submitted"):
                return refuse
            return moves(*(("in_progress", "accepted") if kind.endswith("accepted")
                           else ("open", "rejected")))
        if kind.startswith("cancellation_request."):
            if (status, request_status) != ("in_progress", "cancellation_requested"):
                return refuse
            return moves(*(("open", "cancellation_accepted") if kind.endswith("accepted")
                           else ("in_progress", "cancellation_rejected")))
        if kind == "fulfillment_order.closed":
            if status != "in_progress" or request_status not in CLOSABLE:
                return refuse
            return moves("incomplete", "closed")
        assert kind == "fulfillment.created", kind
        return self.predict_shipment(service, fo, payload)

    def predict_shipment(self, service, fo, payload):
        key = (service, payload["external_id"])
        if key in self.shipments:  # SPEC 4.2: the same external_id records one fulfillment

            def same(result):
                assert result["fulfillment"]["external_id"] == payload["external_id"]
                assert result["fulfillment"]["fulfillment_order_id"] == (
                    self.shipments[key].fulfillment_order_id
                )

            # Named with another FO, the SPEC is silent: an answer from memory or a conflict.
            others = () if self.shipments[key].fulfillment_order_id == fo.id else (409, 422)
            return Expect(200, 0, apply=same, others=others)
        remaining = {line["id"]: line["remaining_quantity"]
                     for line in self.view_fo(fo.id)["line_items"]}
        lines = payload.get("line_items")
        if lines is None:
            lines = self.all_remaining(fo.id)
            if not lines:
                return Expect(409, codes=("over_fulfillment", "invalid_transition"), fo=fo)
        if any(item["quantity"] > remaining.get(item["id"], item["quantity"]) for item in lines):
            return Expect(409, codes=("over_fulfillment",), fo=fo)
        if any(item["id"] not in remaining for item in lines):
            # A retried delivery naming a line that has since moved to another FO.
            return Expect(422, codes=("validation_failed",), fo=fo)
        status, request_status = fo.status_at(self.now), fo.request_status
        accepted_state = status == "in_progress" and request_status in SHIPPABLE
        implicit_accept = accepted_state and request_status == "submitted"

        def record(result):
            if implicit_accept:
                fo.request_status = "accepted"
            shipped = self.ship(fo, lines)
            if not accepted_state:
                fo.needs_attention = True  # SPEC 2.3: shipments are never lost
            self.shipments[key] = Shipment(fo.id)
            fulfillment = result["fulfillment"]
            assert fulfillment["created_by"] == "service"
            assert fulfillment["external_id"] == payload["external_id"]
            assert Counter(
                {line["line_item_id"]: line["quantity"] for line in fulfillment["line_items"]}
            ) == shipped

        # README: a shipment on a submitted FO writes two events, the implicit acceptance first.
        return Expect(200, 2 if implicit_accept else 1, apply=record,
                      notes=(payload.get("message"),))


def test_random_interleavings_follow_the_reference_model(api, service, deliver, clock, request):
    machine = type("Machine", (AdapterModel,), {"fixtures": (api, service, deliver, clock)})
    before = EXPLORED["steps"]
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.filter_too_much, HealthCheck.data_too_large],
        ),
    )
    # The figures go to the JUnit report's properties (`--junitxml`, junit_family=legacy).
    request.node.user_properties.extend(sorted(EXPLORED.items()))
    assert EXPLORED["steps"] > before

"""Returns over HTTP: the lifecycle, what may be returned, and the order's `return_status`
(SPEC 2.5)."""

import pytest
from conftest import fo_of

RETURN_FIELDS = {"id", "order_id", "status", "requested_by", "line_items"}


def get_order(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.body
    return response.body


def line_id(order, sku):
    return next(item["id"] for item in order["line_items"] if item["sku"] == sku)


def fulfill_everything(api, order):
    """Mark every FO of the order fulfilled; return the order."""
    for fo in order["fulfillment_orders"]:
        response = api.post(f"/fulfillment_orders/{fo['id']}/mark_fulfilled", {})
        assert response.status_code == 201, response.body
    return get_order(api, order["id"])


def return_body(order, requested_by="customer", **quantities):
    """`quantities` maps a SKU (with `-` as `_`) to the quantity to return."""
    return {
        "requested_by": requested_by,
        "line_items": [
            {"line_item_id": line_id(order, sku.replace("_", "-")), "quantity": quantity,
             "reason": "size_too_small"}
            for sku, quantity in quantities.items()
        ],
    }


def open_return(api, order, requested_by="customer", status=201, **quantities):
    response = api.post(f"/orders/{order['id']}/returns",
                        return_body(order, requested_by, **quantities))
    assert response.status_code == status, response.body
    return response.body


def act(api, return_id, action, status=200):
    response = api.post(f"/returns/{return_id}/{action}", {})
    assert response.status_code == status, (action, response.body)
    return response.body


def events(api, order):
    return api.get(f"/orders/{order['id']}/timeline").body


@pytest.fixture
def fulfilled(api, create_order):
    """An order whose four units (TEE-1 ×2, MUG-1, CARD) were all shipped."""
    return fulfill_everything(api, create_order())


def test_customer_return_goes_requested_approved_inspected_closed(api, fulfilled):
    order = fulfilled
    seen = []

    created = open_return(api, order, "customer", TEE_1=2, MUG_1=1)
    seen.append((created["status"], get_order(api, order["id"])["return_status"]))
    for action in ("approve", "complete_inspection", "close"):
        answer = act(api, created["id"], action)
        assert answer["id"] == created["id"]
        seen.append((answer["status"], get_order(api, order["id"])["return_status"]))

    assert set(created) >= RETURN_FIELDS
    assert (created["order_id"], created["requested_by"]) == (order["id"], "customer")
    assert [(item["line_item_id"], item["quantity"]) for item in created["line_items"]] == [
        (line_id(order, "TEE-1"), 2), (line_id(order, "MUG-1"), 1)]
    assert seen == [
        ("requested", "return_requested"),
        ("in_progress", "return_in_progress"),
        ("inspection_complete", "inspection_complete"),
        ("returned", "returned"),
    ]
    assert [r["status"] for r in get_order(api, order["id"])["returns"]] == ["returned"]


def test_each_return_step_writes_one_timeline_event(api, fulfilled):
    before = len(events(api, fulfilled))
    created = open_return(api, fulfilled, "customer", CARD=1)
    counts = [len(events(api, fulfilled))]
    for action in ("approve", "complete_inspection", "close"):
        act(api, created["id"], action)
        counts.append(len(events(api, fulfilled)))

    assert counts == [before + 1, before + 2, before + 3, before + 4]


def test_declined_return_does_not_count_in_the_return_status(api, fulfilled):
    created = open_return(api, fulfilled, "customer", CARD=1)

    declined = act(api, created["id"], "decline")

    assert declined["status"] == "declined"
    assert get_order(api, fulfilled["id"])["return_status"] is None


def test_merchant_return_starts_in_progress(api, fulfilled):
    created = open_return(api, fulfilled, "merchant", TEE_1=1)

    assert (created["status"], created["requested_by"]) == ("in_progress", "merchant")
    assert get_order(api, fulfilled["id"])["return_status"] == "return_in_progress"


def test_an_order_without_returns_has_no_return_status(create_order):
    assert create_order()["return_status"] is None


def test_quantity_may_reach_fulfilled_minus_already_returned(api, fulfilled):
    open_return(api, fulfilled, "merchant", TEE_1=1)

    too_many = api.post(f"/orders/{fulfilled['id']}/returns",
                        return_body(fulfilled, "customer", TEE_1=2))
    the_rest = api.post(f"/orders/{fulfilled['id']}/returns",
                        return_body(fulfilled, "customer", TEE_1=1))
    nothing_left = api.post(f"/orders/{fulfilled['id']}/returns",
                            return_body(fulfilled, "customer", TEE_1=1))

    assert too_many.status_code == 422, too_many.body
    assert "line_items.0.quantity" in too_many.body["errors"]
    assert the_rest.status_code == 201, the_rest.body
    assert nothing_left.status_code == 422, nothing_left.body
    assert len(get_order(api, fulfilled["id"])["returns"]) == 2


def test_a_declined_return_gives_its_quantity_back(api, fulfilled):
    act(api, open_return(api, fulfilled, "customer", TEE_1=2)["id"], "decline")

    again = open_return(api, fulfilled, "customer", TEE_1=2)

    assert again["status"] == "requested"


def test_only_fulfilled_quantities_can_be_returned(api, create_order):
    order = create_order()
    acme = fo_of(order, "acme")
    tee_fo_line = next(item for item in acme["line_items"] if item["sku"] == "TEE-1")
    response = api.post(f"/fulfillment_orders/{acme['id']}/mark_fulfilled",
                        {"line_items": [{"id": tee_fo_line["id"], "quantity": 1}]})
    assert response.status_code == 201, response.body

    two = api.post(f"/orders/{order['id']}/returns", return_body(order, TEE_1=2))
    unshipped = api.post(f"/orders/{order['id']}/returns", return_body(order, CARD=1))
    one = api.post(f"/orders/{order['id']}/returns", return_body(order, TEE_1=1))

    assert two.status_code == 422, two.body
    assert "line_items.0.quantity" in two.body["errors"]
    assert unshipped.status_code == 422, unshipped.body
    assert "line_items.0.quantity" in unshipped.body["errors"]
    assert one.status_code == 201, one.body


INVALID_RETURNS = [
    ("the same line twice beyond what shipped", lambda o: {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line_id(o, "TEE-1"), "quantity": 2},
                       {"line_item_id": line_id(o, "TEE-1"), "quantity": 1}]},
     "line_items.1.quantity"),
    ("zero quantity", lambda o: {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line_id(o, "TEE-1"), "quantity": 0}]},
     "line_items.0.quantity"),
    ("unknown line item", lambda o: {
        "requested_by": "customer", "line_items": [{"line_item_id": 999999, "quantity": 1}]},
     "line_items.0.line_item_id"),
    ("unknown requester", lambda o: {
        "requested_by": "courier",
        "line_items": [{"line_item_id": line_id(o, "TEE-1"), "quantity": 1}]},
     "requested_by"),
    ("no lines", lambda o: {"requested_by": "customer", "line_items": []}, "line_items"),
    ("unknown reason", lambda o: {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line_id(o, "TEE-1"), "quantity": 1, "reason": "meh"}]},
     "line_items.0.reason"),
    ("unknown field", lambda o: {
        "requested_by": "customer", "refund": True,
        "line_items": [{"line_item_id": line_id(o, "TEE-1"), "quantity": 1}]},
     "refund"),
]


@pytest.mark.parametrize(("make", "field"), [case[1:] for case in INVALID_RETURNS],
                         ids=[case[0] for case in INVALID_RETURNS])
def test_invalid_return_is_422_naming_the_field_and_creates_nothing(api, fulfilled, make, field):
    response = api.post(f"/orders/{fulfilled['id']}/returns", make(fulfilled))

    assert response.status_code == 422, response.body
    assert response.body["code"] == "validation_failed"
    assert field in response.body["errors"], response.body["errors"]
    assert get_order(api, fulfilled["id"])["returns"] == []


def test_a_line_of_another_order_cannot_be_returned(api, create_order, fulfilled):
    other = fulfill_everything(api, create_order())

    response = api.post(f"/orders/{fulfilled['id']}/returns", {
        "requested_by": "customer",
        "line_items": [{"line_item_id": line_id(other, "TEE-1"), "quantity": 1}]})

    assert response.status_code == 422, response.body
    assert "line_items.0.line_item_id" in response.body["errors"]


# how to reach each return status from a fresh return
REACH = {
    "requested": ("customer", []),
    "declined": ("customer", ["decline"]),
    "in_progress": ("merchant", []),
    "approved": ("customer", ["approve"]),
    "inspection_complete": ("merchant", ["complete_inspection"]),
    "returned": ("merchant", ["close"]),
}


def return_in(api, order, state, sku="CARD"):
    requested_by, steps = REACH[state]
    created = open_return(api, order, requested_by, **{sku.replace("-", "_"): 1})
    for step in steps:
        act(api, created["id"], step)
    return created["id"]


INVALID_STEPS = [
    (state, action)
    for state, actions in {
        "requested": ["complete_inspection", "close"],
        "approved": ["approve", "decline"],
        "in_progress": ["approve", "decline"],
        "inspection_complete": ["approve", "decline", "complete_inspection"],
        "returned": ["approve", "decline", "complete_inspection", "close"],
        "declined": ["approve", "decline", "complete_inspection", "close"],
    }.items()
    for action in actions
]


@pytest.mark.parametrize(("state", "action"), INVALID_STEPS,
                         ids=[f"{action} when {state}" for state, action in INVALID_STEPS])
def test_a_lifecycle_step_out_of_order_is_409_and_changes_nothing(api, fulfilled, state, action):
    return_id = return_in(api, fulfilled, state)
    before = get_order(api, fulfilled["id"])

    response = api.post(f"/returns/{return_id}/{action}", {})

    assert response.status_code == 409, response.body
    assert response.body["code"] == "invalid_transition"
    assert get_order(api, fulfilled["id"]) == before


@pytest.mark.parametrize("action", ["approve", "decline", "complete_inspection", "close"])
def test_an_unknown_return_is_404(api, action):
    response = api.post(f"/returns/777777/{action}", {})

    assert response.status_code == 404, response.body
    assert response.body["code"] == "not_found"


def test_return_of_an_unknown_order_is_404(api):
    response = api.post("/orders/777777/returns", {
        "requested_by": "customer", "line_items": [{"line_item_id": 1, "quantity": 1}]})

    assert response.status_code == 404, response.body


@pytest.mark.parametrize(
    ("states", "return_status"),
    [
        (["returned"], "returned"),
        (["returned", "in_progress"], "return_in_progress"),
        (["returned", "approved"], "return_in_progress"),
        (["in_progress", "inspection_complete"], "inspection_complete"),
        (["returned", "inspection_complete"], "inspection_complete"),
        (["inspection_complete", "requested"], "return_requested"),
        (["returned", "in_progress", "inspection_complete", "requested"], "return_requested"),
        (["returned", "declined"], "returned"),
        (["declined"], None),
        (["declined", "declined"], None),
    ],
    ids=lambda value: ",".join(value) if isinstance(value, list) else str(value),
)
def test_order_return_status_is_the_most_important_open_task(api, fulfilled, states,
                                                             return_status):
    skus = ["TEE-1", "TEE-1", "MUG-1", "CARD"]
    for state, sku in zip(states, skus, strict=False):
        return_in(api, fulfilled, state, sku)

    order = get_order(api, fulfilled["id"])

    assert sorted(r["status"] for r in order["returns"]) == sorted(
        {"approved": "in_progress"}.get(state, state) for state in states)
    assert order["return_status"] == return_status
    if return_status is not None:
        listed = api.get(f"/orders?return_status={return_status}").body["orders"]
        assert [o["id"] for o in listed] == [fulfilled["id"]]

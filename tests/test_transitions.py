"""The fulfillment order transition table (SPEC 2.3), checked against a copy written from the SPEC.

The expected table below is transcribed from the SPEC text, not derived from
`adapter.transitions.TRANSITIONS`, so a wrong row in either shows up as a failure.
"""

import itertools
import re
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from adapter.errors import InvalidTransition
from adapter.transitions import (
    MERCHANT_ACTIONS,
    TRANSITIONS,
    check,
    finish_if_done,
    is_allowed,
    perform,
    perform_on_return,
    supported_actions,
    supported_return_actions,
)

NOW = datetime(2026, 3, 10, 12, 0, 0)
REMAINING = 3

STATUSES = ("open", "scheduled", "on_hold", "in_progress", "incomplete", "closed", "cancelled")
REQUEST_STATUSES = (
    "unsubmitted",
    "submitted",
    "accepted",
    "rejected",
    "cancellation_requested",
    "cancellation_accepted",
    "cancellation_rejected",
    "closed",
)
ANY = frozenset(REQUEST_STATUSES)

# The vocabulary of `supported_actions`, as SPEC 2.3 lists it.
SPEC_MERCHANT_ACTIONS = (
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

# New workflow: action -> {status: request statuses it is allowed from}.
NEW_WORKFLOW = {
    # merchant
    "request_fulfillment": {
        "open": {"unsubmitted", "rejected", "cancellation_accepted", "closed"},
        "incomplete": ANY,
    },
    "cancel_fulfillment_request": {"in_progress": {"submitted"}},
    "request_cancellation": {"in_progress": {"accepted", "cancellation_rejected"}},
    "revert_to_unfulfilled": {"in_progress": {"cancellation_requested"}},
    "mark_as_fulfilled": {"open": ANY, "incomplete": ANY},
    "hold": {"open": {"unsubmitted", "rejected", "cancellation_accepted"}},
    "release_hold": {"on_hold": ANY},
    "open": {"scheduled": ANY},
    # a note to a service that has seen the FO: any status, once a request was sent
    "send_message": {status: ANY - {"unsubmitted"} for status in STATUSES},
    # service
    "accept": {"in_progress": {"submitted"}},
    "reject": {"in_progress": {"submitted"}},
    "accept_cancellation": {"in_progress": {"cancellation_requested"}},
    "reject_cancellation": {"in_progress": {"cancellation_requested"}},
    "ship": {"in_progress": {"submitted", "accepted", "cancellation_requested", "cancellation_rejected"}},
    "close": {"in_progress": {"accepted", "cancellation_rejected"}},
    # system: cancelling the order cancels every FO with remaining quantity, never one that is
    # in_progress (SPEC 2.3: the order cannot be cancelled then)
    "cancel_with_order": {"open": ANY, "scheduled": ANY, "on_hold": ANY, "incomplete": ANY},
    # nothing remains to fulfill: the FO is closed, whatever it was waiting for
    "finish": {status: ANY for status in STATUSES if status != "closed"},
    # an undeliverable message undoes what it promised; sending it again puts that back
    "fail_request": {"in_progress": {"submitted"}},
    "fail_cancellation_request": {"in_progress": {"cancellation_requested"}},
    "resubmit_request": {"open": {"unsubmitted"}},
    "resubmit_cancellation_request": {"in_progress": {"accepted"}},
}
# What each action leaves: (status, request_status), None where that part is kept as it was.
# Mark as fulfilled, a shipment and a note leave the state alone (`finish` closes the FO).
RESULTS = {
    "request_fulfillment": ("in_progress", "submitted"),
    "cancel_fulfillment_request": ("open", "unsubmitted"),
    "request_cancellation": ("in_progress", "cancellation_requested"),
    "revert_to_unfulfilled": ("open", "unsubmitted"),
    "mark_as_fulfilled": (None, None),
    "hold": ("on_hold", None),
    "release_hold": ("open", None),
    "open": ("open", None),
    "send_message": (None, None),
    "accept": ("in_progress", "accepted"),
    "reject": ("open", "rejected"),
    "accept_cancellation": ("open", "cancellation_accepted"),
    "reject_cancellation": ("in_progress", "cancellation_rejected"),
    "ship": (None, None),
    "close": ("incomplete", "closed"),
    "cancel_with_order": ("cancelled", None),
    "finish": ("closed", None),
    "fail_request": ("open", "unsubmitted"),
    "fail_cancellation_request": ("in_progress", "accepted"),
    "resubmit_request": ("in_progress", "submitted"),
    "resubmit_cancellation_request": ("in_progress", "cancellation_requested"),
}
# Legacy: as new, but the merchant cannot withdraw, request cancellation or revert.
LEGACY_REFUSED = {"cancel_fulfillment_request", "request_cancellation", "revert_to_unfulfilled"}
# Merchant-managed: no requests; mark as fulfilled, hold, release hold and open early only
# (and its FOs are cancelled with the order, and closed when nothing remains, like any other).
MERCHANT_MANAGED_ROWS = {
    "mark_as_fulfilled", "hold", "release_hold", "open", "cancel_with_order", "finish",
}

WORKFLOWS = {
    "new": ("acme", "new"),
    "legacy": ("oldco", "legacy"),
    "merchant_managed": (None, None),
}


def expected_allowed(workflow, action, status, request_status):
    """What SPEC 2.3 says about `action` from (status, request_status) in `workflow`."""
    if workflow == "legacy" and action in LEGACY_REFUSED:
        return False
    if workflow == "merchant_managed" and action not in MERCHANT_MANAGED_ROWS:
        return False
    return request_status in NEW_WORKFLOW[action].get(status, ())


def make_fo(workflow, status, request_status="unsubmitted", fulfill_at=None):
    """An FO with just the attributes the transition table reads."""
    service, workflow_name = WORKFLOWS[workflow]
    if status == "scheduled" and fulfill_at is None:
        fulfill_at = NOW + timedelta(days=1)
    fo = SimpleNamespace(
        id=7,
        service=service,
        workflow=workflow_name,
        status=status,
        request_status=request_status,
        fulfill_at=fulfill_at,
        updated_at=None,
        saves=0,
    )
    fo.save = lambda: setattr(fo, "saves", fo.saves + 1)
    return fo


def refusal(fo, action, remaining=REMAINING):
    """Return the InvalidTransition `check` raises."""
    with pytest.raises(InvalidTransition) as caught:
        check(fo, action, NOW, remaining)
    return caught.value


STATES = list(itertools.product(STATUSES, REQUEST_STATUSES))
TABLE_CASES = [
    pytest.param(
        workflow, action, status, request_status, id=f"{workflow}-{action}-{status}/{request_status}"
    )
    for workflow in WORKFLOWS
    for action in NEW_WORKFLOW
    for status, request_status in STATES
]


@pytest.mark.parametrize(("workflow", "action", "status", "request_status"), TABLE_CASES)
def test_action_is_allowed_exactly_where_the_spec_table_says(workflow, action, status, request_status):
    fo = make_fo(workflow, status, request_status)
    allowed = expected_allowed(workflow, action, status, request_status)
    assert is_allowed(fo, action, NOW, REMAINING) is allowed
    if allowed:
        check(fo, action, NOW, REMAINING)
    else:
        error = refusal(fo, action)
        assert (error.status, error.code) == (409, "invalid_transition")
        assert (error.extra["current_status"], error.extra["request_status"]) == (status, request_status)


def test_merchant_actions_are_the_spec_supported_actions_vocabulary():
    assert set(MERCHANT_ACTIONS) == set(SPEC_MERCHANT_ACTIONS)


SUPPORTED_CASES = [
    pytest.param(workflow, status, request_status, id=f"{workflow}-{status}/{request_status}")
    for workflow in WORKFLOWS
    for status, request_status in STATES
]


@pytest.mark.parametrize(("workflow", "status", "request_status"), SUPPORTED_CASES)
def test_supported_actions_lists_exactly_the_allowed_merchant_actions(workflow, status, request_status):
    fo = make_fo(workflow, status, request_status)
    listed = supported_actions(fo, NOW, REMAINING)
    assert len(listed) == len(set(listed))
    assert set(listed) <= set(SPEC_MERCHANT_ACTIONS)
    expected = {a for a in SPEC_MERCHANT_ACTIONS if expected_allowed(workflow, a, status, request_status)}
    assert set(listed) == expected


@pytest.mark.parametrize("request_status", REQUEST_STATUSES)
def test_merchant_managed_fulfillment_order_cannot_message_a_service(request_status):
    for status in STATUSES:
        fo = make_fo("merchant_managed", status, request_status)
        assert not is_allowed(fo, "send_message", NOW, REMAINING), status


@pytest.mark.parametrize("workflow", ["new", "legacy"])
@pytest.mark.parametrize(
    "request_status", ["submitted", "accepted", "cancellation_requested", "cancellation_rejected"]
)
def test_merchant_can_message_the_service_that_has_the_request(workflow, request_status):
    fo = make_fo(workflow, "in_progress", request_status)
    assert is_allowed(fo, "send_message", NOW, REMAINING)
    assert "send_message" in supported_actions(fo, NOW, REMAINING)


@pytest.mark.parametrize(
    ("action", "request_status"),
    [
        pytest.param("cancel_fulfillment_request", "submitted", id="withdraw-submitted"),
        pytest.param("request_cancellation", "accepted", id="cancel-accepted"),
        pytest.param("request_cancellation", "cancellation_rejected", id="cancel-again"),
        pytest.param("revert_to_unfulfilled", "cancellation_requested", id="revert"),
    ],
)
def test_legacy_refuses_withdraw_cancel_and_revert_telling_merchant_to_contact_service(
    action, request_status
):
    assert is_allowed(make_fo("new", "in_progress", request_status), action, NOW, REMAINING)
    fo = make_fo("legacy", "in_progress", request_status)
    error = refusal(fo, action)
    assert error.status == 409
    assert re.search(r"\bcontact\b.*\bservice\b", error.detail, re.IGNORECASE), error.detail
    assert (error.extra["current_status"], error.extra["request_status"]) == ("in_progress", request_status)


@pytest.mark.parametrize(
    ("workflow", "status", "request_status", "hint"),
    [
        pytest.param(
            "new", "in_progress", "submitted", r"cancel the request first", id="in_progress-submitted"
        ),
        pytest.param(
            "new", "in_progress", "accepted", r"cancel the request first", id="in_progress-accepted"
        ),
        pytest.param("new", "on_hold", "unsubmitted", r"release the hold first", id="on_hold"),
        pytest.param("legacy", "on_hold", "rejected", r"release the hold first", id="legacy-on_hold"),
        pytest.param(
            "merchant_managed",
            "on_hold",
            "unsubmitted",
            r"release the hold first",
            id="merchant-managed-on_hold",
        ),
        pytest.param("new", "scheduled", "unsubmitted", r"\bopen\b.*\bfirst\b", id="scheduled"),
        pytest.param(
            "merchant_managed",
            "scheduled",
            "unsubmitted",
            r"\bopen\b.*\bfirst\b",
            id="merchant-managed-scheduled",
        ),
    ],
)
def test_mark_as_fulfilled_refusal_says_what_to_do_first(workflow, status, request_status, hint):
    error = refusal(make_fo(workflow, status, request_status), "mark_as_fulfilled")
    assert error.status == 409
    assert re.search(hint, error.detail, re.IGNORECASE), error.detail
    assert (error.extra["current_status"], error.extra["request_status"]) == (status, request_status)


NOTHING_REMAINING_CASES = [
    pytest.param(
        workflow, status, request_status, action, id=f"{workflow}-{action}-{status}/{request_status}"
    )
    for workflow, status, request_status in [
        ("new", "open", "unsubmitted"),
        ("new", "open", "rejected"),
        ("new", "incomplete", "closed"),
        ("legacy", "open", "cancellation_accepted"),
        ("legacy", "incomplete", "closed"),
        ("merchant_managed", "open", "unsubmitted"),
    ]
    for action in ("request_fulfillment", "mark_as_fulfilled")
    if expected_allowed(workflow, action, status, request_status)
]


@pytest.mark.parametrize(("workflow", "status", "request_status", "action"), NOTHING_REMAINING_CASES)
def test_nothing_remaining_disables_fulfilling(workflow, status, request_status, action):
    fo = make_fo(workflow, status, request_status)
    assert is_allowed(fo, action, NOW, REMAINING)
    assert not is_allowed(fo, action, NOW, 0)
    assert action not in supported_actions(fo, NOW, 0)
    assert refusal(fo, action, remaining=0).status == 409


@pytest.mark.parametrize("workflow", list(WORKFLOWS))
@pytest.mark.parametrize(
    "fulfill_at",
    [
        pytest.param(NOW - timedelta(days=1), id="a-day-ago"),
        pytest.param(NOW, id="exactly-now"),
    ],
)
def test_scheduled_fulfillment_order_past_fulfill_at_acts_as_open(workflow, fulfill_at):
    fo = make_fo(workflow, "scheduled", "unsubmitted", fulfill_at=fulfill_at)
    assert is_allowed(fo, "mark_as_fulfilled", NOW, REMAINING)
    assert is_allowed(fo, "request_fulfillment", NOW, REMAINING) is (workflow != "merchant_managed")
    assert not is_allowed(fo, "open", NOW, REMAINING)
    expected = {a for a in SPEC_MERCHANT_ACTIONS if expected_allowed(workflow, a, "open", "unsubmitted")}
    assert set(supported_actions(fo, NOW, REMAINING)) == expected
    error = refusal(fo, "open")
    assert (error.extra["current_status"], error.extra["request_status"]) == ("open", "unsubmitted")


@pytest.mark.parametrize("workflow", list(WORKFLOWS))
def test_scheduled_fulfillment_order_before_fulfill_at_can_only_be_opened(workflow):
    fo = make_fo(workflow, "scheduled", "unsubmitted", fulfill_at=NOW + timedelta(seconds=1))
    assert set(supported_actions(fo, NOW, REMAINING)) == {"open"}


@pytest.mark.parametrize(
    ("action", "request_status"),
    [
        pytest.param("fail_request", "submitted", id="request-delivery-failed"),
        pytest.param(
            "fail_cancellation_request", "cancellation_requested", id="cancellation-delivery-failed"
        ),
    ],
)
def test_failed_delivery_rolls_back_only_the_request_in_flight(action, request_status):
    assert is_allowed(make_fo("new", "in_progress", request_status), action, NOW, REMAINING)
    assert not is_allowed(make_fo("new", "open", "unsubmitted"), action, NOW, REMAINING)
    assert not is_allowed(make_fo("merchant_managed", "in_progress", request_status), action, NOW, REMAINING)


def test_the_table_has_exactly_the_rows_written_here():
    assert set(TRANSITIONS) == set(NEW_WORKFLOW) == set(RESULTS)


PERFORM_CASES = [
    pytest.param(workflow, action, status, request_status,
                 id=f"{workflow}-{action}-{status}/{request_status}")
    for workflow in WORKFLOWS
    for action in NEW_WORKFLOW
    for status, request_status in STATES
    if expected_allowed(workflow, action, status, request_status)
]


@pytest.mark.parametrize(("workflow", "action", "status", "request_status"), PERFORM_CASES)
def test_perform_writes_the_result_the_spec_gives(workflow, action, status, request_status):
    fo = make_fo(workflow, status, request_status)
    before = NOW - timedelta(days=1)
    fo.updated_at = before

    perform(fo, action, NOW, REMAINING)

    result_status, result_request = RESULTS[action]
    assert (fo.status, fo.request_status) == (result_status or status, result_request or request_status)
    changes_state = RESULTS[action] != (None, None)
    assert (fo.updated_at, fo.saves) == ((NOW, 1) if changes_state else (before, 0))


REFUSED_CASES = [
    pytest.param(workflow, action, status, request_status,
                 id=f"{workflow}-{action}-{status}/{request_status}")
    for workflow in WORKFLOWS
    for action in NEW_WORKFLOW
    for status, request_status in STATES
    if not expected_allowed(workflow, action, status, request_status)
]


@pytest.mark.parametrize(("workflow", "action", "status", "request_status"), REFUSED_CASES)
def test_perform_writes_nothing_where_the_spec_refuses(workflow, action, status, request_status):
    fo = make_fo(workflow, status, request_status)

    with pytest.raises(InvalidTransition):
        perform(fo, action, NOW, REMAINING)

    assert (fo.status, fo.request_status, fo.updated_at, fo.saves) == (status, request_status, None, 0)


@pytest.mark.parametrize("workflow", list(WORKFLOWS))
@pytest.mark.parametrize("status", [s for s in STATUSES if s != "closed"])
def test_a_fulfillment_order_with_nothing_remaining_is_closed_by_the_finish_row(workflow, status):
    fo = make_fo(workflow, status, "accepted" if status == "in_progress" else "unsubmitted")

    assert finish_if_done(fo, 1, NOW) is False
    assert (fo.status, fo.saves) == (status, 0)
    assert finish_if_done(fo, 0, NOW) is True
    assert (fo.status, fo.updated_at, fo.saves) == ("closed", NOW, 1)
    assert finish_if_done(fo, 0, NOW) is False
    assert fo.saves == 1


# SPEC 2.5: action -> (the return statuses it is allowed from, the status it leaves).
RETURN_STATUSES = ("requested", "in_progress", "inspection_complete", "returned", "declined")
RETURN_TABLE = {
    "approve": ({"requested"}, "in_progress"),
    "decline": ({"requested"}, "declined"),
    "complete_inspection": ({"in_progress"}, "inspection_complete"),
    "close": ({"in_progress", "inspection_complete"}, "returned"),
}


@pytest.mark.parametrize("status", RETURN_STATUSES)
@pytest.mark.parametrize("action", list(RETURN_TABLE))
def test_return_action_runs_exactly_where_the_spec_says_and_writes_its_result(action, status):
    allowed, result = RETURN_TABLE[action]
    return_ = SimpleNamespace(status=status, updated_at=None, save=lambda: None)

    if status in allowed:
        perform_on_return(return_, action, NOW)
        assert (return_.status, return_.updated_at) == (result, NOW)
    else:
        with pytest.raises(InvalidTransition) as refused:
            perform_on_return(return_, action, NOW)
        assert refused.value.extra == {"current_status": status}
        assert (return_.status, return_.updated_at) == (status, None)


@pytest.mark.parametrize("status", RETURN_STATUSES)
def test_a_return_offers_exactly_the_actions_allowed_from_its_status(status):
    assert supported_return_actions(status) == [
        action for action, (allowed, _) in RETURN_TABLE.items() if status in allowed
    ]

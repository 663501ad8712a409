"""The fulfillment order transition table (SPEC 2.3), as data.

The same rows decide whether an action may run and which actions an FO lists
in `supported_actions`, so the two cannot disagree.
"""

from dataclasses import dataclass, field

from .errors import InvalidTransition
from .statuses import FO_STATUSES, REQUEST_STATUSES, effective_fo_status

ANY = None
NEW, LEGACY, MANAGED = "new", "legacy", "merchant_managed"
SERVICE_WORKFLOWS = frozenset({NEW, LEGACY})
LEGACY_REFUSAL = (
    "This fulfillment service uses the legacy workflow: the adapter cannot withdraw, cancel "
    "or revert its requests. Contact the service directly."
)


@dataclass(frozen=True)
class Transition:
    """One row: who may do it, from which (status, request_status) pairs, and what results.

    `doing` phrases the action in a refusal, `{}` standing for the FO ("mark {} as fulfilled").
    `allowed_from` maps a status to the request statuses allowed with it (ANY = all).
    A `None` in `result` keeps that part as it was; `hints` explain a refusal per status.
    """

    actor: str
    doing: str
    allowed_from: dict
    result: tuple = (None, None)
    workflows: frozenset = SERVICE_WORKFLOWS
    needs_remaining: bool = False
    hints: dict = field(default_factory=dict)

    def allows(self, status, request_status):
        if status not in self.allowed_from:
            return False
        request_statuses = self.allowed_from[status]
        return request_statuses is ANY or request_status in request_statuses


HOLDABLE = {"unsubmitted", "rejected", "cancellation_accepted"}
# The service has seen the FO once a request was sent, whatever happened since.
SEEN_BY_SERVICE = set(REQUEST_STATUSES) - {"unsubmitted"}

TRANSITIONS = {
    # merchant actions, in the order `supported_actions` lists them
    "request_fulfillment": Transition(
        "merchant",
        "request fulfillment of {}",
        {
            "open": HOLDABLE | {"closed"},
            "incomplete": ANY,
        },
        result=("in_progress", "submitted"),
        needs_remaining=True,
    ),
    "cancel_fulfillment_request": Transition(
        "merchant",
        "withdraw the fulfillment request of {}",
        {"in_progress": {"submitted"}},
        result=("open", "unsubmitted"),
        workflows=frozenset({NEW}),
    ),
    "request_cancellation": Transition(
        "merchant",
        "request a cancellation for {}",
        {"in_progress": {"accepted", "cancellation_rejected"}},
        result=("in_progress", "cancellation_requested"),
        workflows=frozenset({NEW}),
    ),
    "revert_to_unfulfilled": Transition(
        "merchant",
        "revert {} to unfulfilled",
        {"in_progress": {"cancellation_requested"}},
        result=("open", "unsubmitted"),
        workflows=frozenset({NEW}),
    ),
    "mark_as_fulfilled": Transition(
        "merchant",
        "mark {} as fulfilled",
        {"open": ANY, "incomplete": ANY},
        workflows=SERVICE_WORKFLOWS | {MANAGED},
        needs_remaining=True,
        hints={
            "in_progress": "The fulfillment service has this request: cancel the request first.",
            "on_hold": "Release the hold first.",
            "scheduled": "Open the fulfillment order first.",
        },
    ),
    "hold": Transition(
        "merchant",
        "hold {}",
        {"open": HOLDABLE},
        result=("on_hold", None),
        workflows=SERVICE_WORKFLOWS | {MANAGED},
        needs_remaining=True,
    ),
    "release_hold": Transition(
        "merchant",
        "release the hold on {}",
        {"on_hold": ANY},
        result=("open", None),
        workflows=SERVICE_WORKFLOWS | {MANAGED},
    ),
    "open": Transition(
        "merchant",
        "open {}",
        {"scheduled": ANY},
        result=("open", None),
        workflows=SERVICE_WORKFLOWS | {MANAGED},
    ),
    "send_message": Transition(
        "merchant",
        "send a message about {}",
        {status: SEEN_BY_SERVICE for status in FO_STATUSES},
    ),
    # service actions, applied from webhooks
    "accept": Transition(
        "service",
        "accept the request of {}",
        {"in_progress": {"submitted"}},
        result=("in_progress", "accepted"),
    ),
    "reject": Transition(
        "service",
        "reject the request of {}",
        {"in_progress": {"submitted"}},
        result=("open", "rejected"),
    ),
    "accept_cancellation": Transition(
        "service",
        "accept a cancellation for {}",
        {"in_progress": {"cancellation_requested"}},
        result=("open", "cancellation_accepted"),
    ),
    "reject_cancellation": Transition(
        "service",
        "reject a cancellation for {}",
        {"in_progress": {"cancellation_requested"}},
        result=("in_progress", "cancellation_rejected"),
    ),
    "ship": Transition(
        "service",
        "report a shipment of {}",
        {
            "in_progress": {
                "submitted",
                "accepted",
                "cancellation_requested",
                "cancellation_rejected",
            }
        },
    ),
    "close": Transition(
        "service",
        "close {}",
        {"in_progress": {"accepted", "cancellation_rejected"}},
        result=("incomplete", "closed"),
    ),
    # system actions
    "cancel_with_order": Transition(
        "system",
        "cancel {}",
        {"open": ANY, "scheduled": ANY, "on_hold": ANY, "incomplete": ANY},
        result=("cancelled", None),
        workflows=SERVICE_WORKFLOWS | {MANAGED},
    ),
    "fail_request": Transition(
        "system",
        "undo the failed request of {}",
        {"in_progress": {"submitted"}},
        result=("open", "unsubmitted"),
    ),
    "fail_cancellation_request": Transition(
        "system",
        "undo the failed cancellation request of {}",
        {"in_progress": {"cancellation_requested"}},
        result=("in_progress", "accepted"),
    ),
}

MERCHANT_ACTIONS = tuple(name for name, row in TRANSITIONS.items() if row.actor == "merchant")


def workflow_of(fo):
    """Return the FO's row key: `new`, `legacy` or `merchant_managed`."""
    return MANAGED if fo.service is None else fo.workflow


def is_allowed(fo, action, now, remaining=None):
    """Tell whether `action` may run on `fo` now (`remaining`: its unfulfilled quantity)."""
    row = TRANSITIONS[action]
    if workflow_of(fo) not in row.workflows:
        return False
    if row.needs_remaining and remaining is not None and remaining <= 0:
        return False
    return row.allows(effective_fo_status(fo.status, fo.fulfill_at, now), fo.request_status)


def check(fo, action, now, remaining=None):
    """Raise InvalidTransition, saying why, unless `action` may run on `fo` now."""
    if is_allowed(fo, action, now, remaining):
        return
    row = TRANSITIONS[action]
    status = effective_fo_status(fo.status, fo.fulfill_at, now)
    workflow = workflow_of(fo)
    if workflow == LEGACY and NEW in row.workflows and LEGACY not in row.workflows:
        detail = LEGACY_REFUSAL
    elif workflow == MANAGED and MANAGED not in row.workflows:
        detail = "Merchant-managed fulfillment orders have no fulfillment service to ask."
    elif workflow == LEGACY and status == "in_progress" and status in row.hints:
        detail = "The fulfillment service has this request. " + LEGACY_REFUSAL
    elif row.needs_remaining and remaining is not None and remaining <= 0:
        detail = "Nothing remains to be fulfilled on this fulfillment order."
    else:
        detail = row.hints.get(status) or (
            "Cannot "
            + row.doing.format(f"a fulfillment order that is {status} / {fo.request_status}")
            + "."
        )
    raise InvalidTransition(detail, **state_of(fo, status))


def state_of(fo, status=None):
    """Describe the FO's state for a 409 answer (the problem's own `status` is the HTTP code)."""
    return {
        "fulfillment_order_id": fo.id,
        "current_status": status or fo.status,
        "request_status": fo.request_status,
        "fulfillment_order": {
            "id": fo.id,
            "status": status or fo.status,
            "request_status": fo.request_status,
        },
    }


def supported_actions(fo, now, remaining):
    """List the merchant actions that are valid for `fo` right now."""
    return [action for action in MERCHANT_ACTIONS if is_allowed(fo, action, now, remaining)]

"""The transition tables, as data: fulfillment orders (SPEC 2.3), returns (SPEC 2.5) and orders.

The same rows decide whether an action may run, write its result, and list the actions
a resource offers in `supported_actions`, so the three cannot disagree.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import InvalidTransition, OrderLocked
from .statuses import effective_fo_status
from .vocabulary import (
    FOAction,
    FOStatus,
    OrderAction,
    RequestStatus,
    ReturnAction,
    ReturnState,
    TransactionKind,
    Workflow,
)

ANY = None
NEW, LEGACY, MANAGED = Workflow.NEW, Workflow.LEGACY, Workflow.MERCHANT_MANAGED
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
    A return's rows are keyed by the return's state alone (its request status is always ANY).
    """

    actor: str
    doing: str
    allowed_from: dict
    result: tuple = (None, None)
    workflows: frozenset = SERVICE_WORKFLOWS
    needs_remaining: bool = False
    hints: dict = field(default_factory=dict)

    def allows(self, status, request_status=None):
        """Tell whether the row runs from `status` / `request_status`."""
        if status not in self.allowed_from:
            return False
        request_statuses = self.allowed_from[status]
        return request_statuses is ANY or request_status in request_statuses


S, R = FOStatus, RequestStatus
HOLDABLE = {R.UNSUBMITTED, R.REJECTED, R.CANCELLATION_ACCEPTED}
# The service has seen the FO once a request was sent, whatever happened since.
SEEN_BY_SERVICE = set(R) - {R.UNSUBMITTED}
ALL_WORKFLOWS = SERVICE_WORKFLOWS | {MANAGED}

TRANSITIONS = {
    # merchant actions, in the order `supported_actions` lists them
    FOAction.REQUEST_FULFILLMENT: Transition(
        "merchant",
        "request fulfillment of {}",
        {
            S.OPEN: HOLDABLE | {R.CLOSED},
            S.INCOMPLETE: ANY,
        },
        result=(S.IN_PROGRESS, R.SUBMITTED),
        needs_remaining=True,
    ),
    FOAction.CANCEL_FULFILLMENT_REQUEST: Transition(
        "merchant",
        "withdraw the fulfillment request of {}",
        {S.IN_PROGRESS: {R.SUBMITTED}},
        result=(S.OPEN, R.UNSUBMITTED),
        workflows=frozenset({NEW}),
    ),
    FOAction.REQUEST_CANCELLATION: Transition(
        "merchant",
        "request a cancellation for {}",
        {S.IN_PROGRESS: {R.ACCEPTED, R.CANCELLATION_REJECTED}},
        result=(S.IN_PROGRESS, R.CANCELLATION_REQUESTED),
        workflows=frozenset({NEW}),
    ),
    FOAction.REVERT_TO_UNFULFILLED: Transition(
        "merchant",
        "revert {} to unfulfilled",
        {S.IN_PROGRESS: {R.CANCELLATION_REQUESTED}},
        result=(S.OPEN, R.UNSUBMITTED),
        workflows=frozenset({NEW}),
    ),
    # Its result is the shipment it records; `finish` closes the FO once nothing remains.
    FOAction.MARK_AS_FULFILLED: Transition(
        "merchant",
        "mark {} as fulfilled",
        {S.OPEN: ANY, S.INCOMPLETE: ANY},
        workflows=ALL_WORKFLOWS,
        needs_remaining=True,
        hints={
            S.IN_PROGRESS: "The fulfillment service has this request: cancel the request first.",
            S.ON_HOLD: "Release the hold first.",
            S.SCHEDULED: "Open the fulfillment order first.",
        },
    ),
    FOAction.HOLD: Transition(
        "merchant",
        "hold {}",
        {S.OPEN: HOLDABLE},
        result=(S.ON_HOLD, None),
        workflows=ALL_WORKFLOWS,
        needs_remaining=True,
    ),
    FOAction.RELEASE_HOLD: Transition(
        "merchant",
        "release the hold on {}",
        {S.ON_HOLD: ANY},
        result=(S.OPEN, None),
        workflows=ALL_WORKFLOWS,
    ),
    FOAction.OPEN: Transition(
        "merchant",
        "open {}",
        {S.SCHEDULED: ANY},
        result=(S.OPEN, None),
        workflows=ALL_WORKFLOWS,
    ),
    # A note changes no state.
    FOAction.SEND_MESSAGE: Transition(
        "merchant",
        "send a message about {}",
        {status: SEEN_BY_SERVICE for status in S},
    ),
    # service actions, applied from webhooks
    "accept": Transition(
        "service",
        "accept the request of {}",
        {S.IN_PROGRESS: {R.SUBMITTED}},
        result=(S.IN_PROGRESS, R.ACCEPTED),
    ),
    "reject": Transition(
        "service",
        "reject the request of {}",
        {S.IN_PROGRESS: {R.SUBMITTED}},
        result=(S.OPEN, R.REJECTED),
    ),
    "accept_cancellation": Transition(
        "service",
        "accept a cancellation for {}",
        {S.IN_PROGRESS: {R.CANCELLATION_REQUESTED}},
        result=(S.OPEN, R.CANCELLATION_ACCEPTED),
    ),
    "reject_cancellation": Transition(
        "service",
        "reject a cancellation for {}",
        {S.IN_PROGRESS: {R.CANCELLATION_REQUESTED}},
        result=(S.IN_PROGRESS, R.CANCELLATION_REJECTED),
    ),
    # A shipment reported from elsewhere is still recorded (late); `finish` may close the FO.
    "ship": Transition(
        "service",
        "report a shipment of {}",
        {
            S.IN_PROGRESS: {
                R.SUBMITTED,
                R.ACCEPTED,
                R.CANCELLATION_REQUESTED,
                R.CANCELLATION_REJECTED,
            }
        },
    ),
    "close": Transition(
        "service",
        "close {}",
        {S.IN_PROGRESS: {R.ACCEPTED, R.CANCELLATION_REJECTED}},
        result=(S.INCOMPLETE, R.CLOSED),
    ),
    # system actions
    "cancel_with_order": Transition(
        "system",
        "cancel {}",
        {S.OPEN: ANY, S.SCHEDULED: ANY, S.ON_HOLD: ANY, S.INCOMPLETE: ANY},
        result=(S.CANCELLED, None),
        workflows=ALL_WORKFLOWS,
    ),
    # Nothing remains to fulfill (the last unit shipped, or an edit took it off): the FO is
    # done whatever it was waiting for, even a shipment that arrived late on a cancelled FO.
    "finish": Transition(
        "system",
        "close {}",
        {status: ANY for status in S if status != S.CLOSED},
        result=(S.CLOSED, None),
        workflows=ALL_WORKFLOWS,
    ),
    "fail_request": Transition(
        "system",
        "undo the failed request of {}",
        {S.IN_PROGRESS: {R.SUBMITTED}},
        result=(S.OPEN, R.UNSUBMITTED),
    ),
    "fail_cancellation_request": Transition(
        "system",
        "undo the failed cancellation request of {}",
        {S.IN_PROGRESS: {R.CANCELLATION_REQUESTED}},
        result=(S.IN_PROGRESS, R.ACCEPTED),
    ),
    # Sending a failed message again puts back what its failure undid.
    "resubmit_request": Transition(
        "system",
        "send the failed request of {} again",
        {S.OPEN: {R.UNSUBMITTED}},
        result=(S.IN_PROGRESS, R.SUBMITTED),
    ),
    "resubmit_cancellation_request": Transition(
        "system",
        "send the failed cancellation request of {} again",
        {S.IN_PROGRESS: {R.ACCEPTED}},
        result=(S.IN_PROGRESS, R.CANCELLATION_REQUESTED),
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
    elif workflow == LEGACY and status == S.IN_PROGRESS and status in row.hints:
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


def perform(fo, action, now, remaining=None):
    """Run `action` on `fo`: refuse it as `check` does, else write its row's result and save.

    `updated_at` moves only when the row changes the state (a note or a shipment row does not).
    """
    check(fo, action, now, remaining)
    status, request_status = TRANSITIONS[action].result
    if status is None and request_status is None:
        return
    if status is not None:
        fo.status = status
    if request_status is not None:
        fo.request_status = request_status
    fo.updated_at = now
    fo.save()


def finish_if_done(fo, remaining, now):
    """Close `fo` by the `finish` row when nothing `remaining` is left; return whether it closed.

    The one place the rule "closed when nothing remains" lives: shipments by the merchant
    or the service and edits that take the last unfulfilled unit off all call it.
    """
    if remaining > 0 or fo.status == S.CLOSED:
        return False
    perform(fo, "finish", now)
    return True


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


# ---- returns (SPEC 2.5) ------------------------------------------------------------------

RETURN_TRANSITIONS = {
    ReturnAction.APPROVE: Transition(
        "merchant", "approve {}", {ReturnState.REQUESTED: ANY},
        result=(ReturnState.IN_PROGRESS, None),
    ),
    ReturnAction.DECLINE: Transition(
        "merchant", "decline {}", {ReturnState.REQUESTED: ANY},
        result=(ReturnState.DECLINED, None),
    ),
    ReturnAction.COMPLETE_INSPECTION: Transition(
        "merchant", "complete the inspection of {}", {ReturnState.IN_PROGRESS: ANY},
        result=(ReturnState.INSPECTION_COMPLETE, None),
    ),
    ReturnAction.CLOSE: Transition(
        "merchant", "close {}", {ReturnState.IN_PROGRESS: ANY, ReturnState.INSPECTION_COMPLETE: ANY},
        result=(ReturnState.RETURNED, None),
    ),
}


def supported_return_actions(return_status):
    """List the actions a return in `return_status` offers."""
    return [action for action, row in RETURN_TRANSITIONS.items() if row.allows(return_status)]


def perform_on_return(return_, action, now):
    """Run `action` on a return: raise InvalidTransition unless its row allows it, else write the result."""
    row = RETURN_TRANSITIONS[action]
    if not row.allows(return_.status):
        raise InvalidTransition(
            "Cannot " + row.doing.format(f"a return that is {return_.status}") + ".",
            current_status=return_.status,
        )
    return_.status = row.result[0]
    return_.updated_at = now
    return_.save()


# ---- orders (SPEC 3.1 `supported_actions`) -----------------------------------------------


@dataclass(frozen=True)
class OrderFacts:
    """What decides the actions an order offers.

    `payment` is its PaymentFacts; `locked_by` the FO (with `id` and `service`) whose request in
    progress blocks edits, refunds and cancellation, or None; `returnable` the units fulfilled
    and not yet returned.
    """

    cancelled: bool
    archived: bool
    payment: object
    locked_by: object = None
    returnable: int = 0


def _always(facts, now):
    return True


@dataclass(frozen=True)
class OrderRule:
    """One order action: what refuses it (409) and what it needs to do anything (`needs`).

    `on_cancelled` is the refusal on a cancelled order (None: a cancelled order allows it);
    `locks` refuses it while an FO of the order is in progress; `doing` phrases it in that
    refusal. `needs` holds the money or quantity the action needs: the operation checks the
    same PaymentFacts amounts field by field (422), and `supported_actions` reads it here.
    `offered` is False for an action that is not the merchant's to take.
    """

    doing: str
    on_cancelled: str | None = None
    locks: bool = False
    needs: Callable = _always
    offered: bool = True


NO_NEW_PAYMENTS = "The order is cancelled; it cannot take new payments."

ORDER_ACTIONS = {
    OrderAction.EDIT: OrderRule(
        "edit the order", on_cancelled="A cancelled order cannot be edited.", locks=True
    ),
    OrderAction.CANCEL: OrderRule(
        "cancel the order", on_cancelled="The order is already cancelled.", locks=True
    ),
    # Archiving twice changes nothing: each is offered where it changes something.
    OrderAction.ARCHIVE: OrderRule("archive the order", needs=lambda f, now: not f.archived),
    OrderAction.UNARCHIVE: OrderRule("unarchive the order", needs=lambda f, now: f.archived),
    # A sale of what is outstanding: total minus what was captured (refunds were paid back).
    OrderAction.MARK_AS_PAID: OrderRule(
        "take a payment", on_cancelled=NO_NEW_PAYMENTS,
        needs=lambda f, now: f.payment.outstanding > 0,
    ),
    OrderAction.CAPTURE: OrderRule(
        "capture the payment", on_cancelled=NO_NEW_PAYMENTS,
        needs=lambda f, now: f.payment.uncaptured > 0 and not f.payment.auth_expired(now),
    ),
    OrderAction.REFUND: OrderRule(
        "refund the order", locks=True, needs=lambda f, now: f.payment.refundable > 0
    ),
    OrderAction.VOID: OrderRule("void the authorization", needs=lambda f, now: f.payment.uncaptured > 0),
    OrderAction.CREATE_RETURN: OrderRule("create a return", needs=lambda f, now: f.returnable > 0),
    OrderAction.ADD_COMMENT: OrderRule("comment"),
    # Authorizations come from the store's checkout, not from a merchant's button.
    "authorize": OrderRule("authorize a payment", on_cancelled=NO_NEW_PAYMENTS, offered=False),
}
# The order action each transaction kind is.
ACTION_OF_TRANSACTION = {
    TransactionKind.AUTHORIZATION: "authorize",
    TransactionKind.CAPTURE: OrderAction.CAPTURE,
    TransactionKind.SALE: OrderAction.MARK_AS_PAID,
    TransactionKind.REFUND: OrderAction.REFUND,
    TransactionKind.VOID: OrderAction.VOID,
}


def order_refusal(action, cancelled, locked_by):
    """Return the error refusing `action` on an order as it stands, or None."""
    rule = ORDER_ACTIONS[action]
    if cancelled and rule.on_cancelled is not None:
        return InvalidTransition(rule.on_cancelled)
    if rule.locks and locked_by is not None:
        return OrderLocked(
            f"Cannot {rule.doing} while fulfillment order {locked_by.id} is in progress with "
            f"{locked_by.service}; withdraw or cancel its request first.",
            fulfillment_order_id=locked_by.id,
        )
    return None


def supported_order_actions(facts, now):
    """List the actions the order offers now, in SPEC 3.1's order."""
    return [
        action
        for action, rule in ORDER_ACTIONS.items()
        if rule.offered
        and order_refusal(action, facts.cancelled, facts.locked_by) is None
        and rule.needs(facts, now)
    ]

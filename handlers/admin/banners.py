"""The banners of a fulfillment order card, told from its state and the timeline's events (SPEC 8)."""

from collections import defaultdict
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from adapter import transitions
from adapter.vocabulary import FOStatus, RequestStatus

NEW_WORKFLOW = _l("This fulfillment service uses the new workflow.")
NEW_WORKFLOW_DETAIL = _l("You can cancel a request until the service accepts it, and ask the service to"
                         " cancel one it has accepted.")
REJECTED = _l("The fulfillment service rejected the request.")
REJECTED_DETAIL = _l("The items are unfulfilled again: request fulfillment again, or fulfill them"
                     " another way.")
CANCELLATION_ACCEPTED = _l("Cancellation accepted")
CANCELLATION_ACCEPTED_DETAIL = _l("The remaining items are unfulfilled again.")
CANCELLATION_REJECTED = _l("Cancellation rejected")
CANCELLATION_REJECTED_DETAIL = _l("The fulfillment service carries on fulfilling these items.")
NEEDS_ATTENTION = _l("A shipment needs checking.")
NEEDS_ATTENTION_DETAIL = _l("The service reported a shipment after the request ended. It was recorded;"
                            " check it, then acknowledge.")
REVERTED = _l("Check your inventory counts to make sure they are correct.")
REVERTED_DETAIL = _l("The fulfillment service may already have picked, restocked or shipped some of"
                     " these items.")
NOT_RECEIVED = _l("The fulfillment service has not received the request yet.")
NOT_RECEIVED_DETAIL = _l("Above is the last delivery error. Retry now sends the request again at once.")
CONTACT_SERVICE = _l("To cancel a fulfillment that is in progress, you need to contact your fulfillment"
                     " service directly.")
# The merchant actions only the new workflow offers: a legacy card names the service instead.
NEW_ONLY = tuple(
    name for name, row in transitions.TRANSITIONS.items()
    if row.actor == "merchant" and transitions.NEW in row.workflows
    and transitions.LEGACY not in row.workflows
)
ENDED = {FOStatus.CLOSED, FOStatus.CANCELLED}


@dataclass(frozen=True)
class Banner:
    """One banner: its tone, words, a reason's label and a text quoted verbatim, if any."""

    kind: str
    tone: str
    title: object
    detail: object = None
    reason: str = None
    message: str = None
    # The merchant request whose message Retry now sends again.
    request_id: int = None


def events_by_fulfillment_order(events):
    """Group the order's timeline events (oldest first) by the FO each concerns."""
    grouped = defaultdict(list)
    for event in events:
        if event.kind == "fulfillment_order.reverted":
            # A revert of some lines is written on the FO they left; the reminder is for their new FO.
            grouped[(event.data or {}).get("reverted_to_fulfillment_order_id")].append(event)
        else:
            grouped[event.fulfillment_order_id].append(event)
    return grouped


def fulfillment_order_banners(fo, own):
    """Return the banners of the FO view `fo`; `own` are the events concerning it, oldest first."""
    banners = []
    for sent in fo["merchant_requests"]:
        delivery = sent["delivery"]
        if delivery and (delivery["status"] == "failed"
                         or (delivery["status"] == "pending" and delivery["attempts"] > 0)):
            banners.append(Banner("not_received", "critical", NOT_RECEIVED, NOT_RECEIVED_DETAIL,
                                  message=delivery["last_error"], request_id=sent["id"]))
    if fo["needs_attention"]:
        banners.append(Banner("needs_attention", "attention", NEEDS_ATTENTION, NEEDS_ATTENTION_DETAIL))
    request_status = fo["request_status"]
    # An answer to a cancellation no longer matters once the FO is closed or cancelled.
    ended = fo["status"] in ENDED
    if request_status == RequestStatus.REJECTED:
        answer = _latest(own, "fulfillment_request.rejected")
        banners.append(Banner("rejected", "critical", REJECTED, REJECTED_DETAIL,
                              reason=(answer.data or {}).get("reason") if answer else None,
                              message=answer.message if answer else None))
    elif request_status == RequestStatus.CANCELLATION_ACCEPTED and not ended:
        answer = _latest(own, "cancellation_request.accepted")
        banners.append(Banner("cancellation_accepted", "info", CANCELLATION_ACCEPTED,
                              CANCELLATION_ACCEPTED_DETAIL, message=answer.message if answer else None))
    elif request_status == RequestStatus.CANCELLATION_REJECTED and not ended:
        answer = _latest(own, "cancellation_request.rejected")
        banners.append(Banner("cancellation_rejected", "attention", CANCELLATION_REJECTED,
                              CANCELLATION_REJECTED_DETAIL, message=answer.message if answer else None))
    if own and own[-1].kind == "fulfillment_order.reverted":
        banners.append(Banner("reverted", "attention", REVERTED, REVERTED_DETAIL))
    if fo["workflow"] == transitions.LEGACY and any(
        transitions.TRANSITIONS[name].allows(fo["status"], request_status) for name in NEW_ONLY
    ):
        banners.append(Banner("contact_service", "info", CONTACT_SERVICE))
    if fo["workflow"] == transitions.NEW and not ended:
        banners.append(Banner("new_workflow", "plain", NEW_WORKFLOW, NEW_WORKFLOW_DETAIL))
    return banners


def _latest(events, kind):
    return next((event for event in reversed(events) if event.kind == kind), None)

"""What the sandbox sends back for each message from the adapter: pure scripts of timed webhooks."""

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from .clock import rfc3339

CARRIER = "Sandbox Post"
TRACKING_URL = "https://sandbox-post.example/track/{number}"
DELIVERY_STATUSES = ("label_printed", "in_transit", "delivered")
CANCELLATION_ANSWERS = ("accept", "reject")


@dataclass(frozen=True)
class Options:
    """How the sandbox answers: the seconds between its steps and the chosen scenario."""

    step_delay: float = 0.5
    reject: str | None = None
    partial: bool = False
    cancellations: str = "accept"
    ship_after_cancel: bool = False
    late_accept: bool = False
    out_of_order: bool = False
    legacy: bool = False


class Step(NamedTuple):
    """One webhook to send: seconds to wait after the previous step, its type and its data."""

    delay: float
    event_type: str
    data: dict


class Reaction(NamedTuple):
    """The answer to one message: its FO, whether that FO's unsent steps stop, and the new steps."""

    fulfillment_order_id: int | None
    cancels_pending: bool
    steps: list


def react(envelope, options, now):
    """Return the Reaction to a message envelope received at `now` (naive UTC)."""
    message_type, data = envelope["type"], envelope["data"]
    if not isinstance(data, dict):
        raise TypeError("data is not an object")
    if message_type == "fulfillment_request.submitted":
        return Reaction(data["fulfillment_order"]["id"], False, _fulfill(data, options, now))
    if message_type == "cancellation_request.submitted":
        accepted = options.cancellations == "accept"
        return Reaction(data["fulfillment_order_id"], accepted, _answer_cancellation(data, options))
    if message_type == "fulfillment_request.withdrawn":
        # A warehouse that is told in time drops the order; --late-accept plays one that is not.
        return Reaction(data["fulfillment_order_id"], not options.late_accept, [])
    if message_type == "fulfillment_order.reverted":
        # A full revert takes the whole FO back; a partial one names only the lines taken.
        return Reaction(data["fulfillment_order_id"], data.get("line_items") is None, [])
    if message_type == "merchant.message":
        return Reaction(data["fulfillment_order_id"], False, [])
    # Services acknowledge types they do not know yet, as the protocol may grow.
    return Reaction(None, False, [])


def tracking_of(external_id):
    """Return the tracking details of the parcel `external_id`."""
    number = external_id.upper()
    return {"number": number, "company": CARRIER, "url": TRACKING_URL.format(number=number)}


def _fulfill(data, options, now):
    fo = data["fulfillment_order"]
    fo_id, request_id, delay = fo["id"], data["request_id"], options.step_delay
    if options.reject:
        return [
            Step(delay, "fulfillment_request.rejected", {
                "fulfillment_order_id": fo_id,
                "request_id": request_id,
                "reason": options.reject,
                "message": f"The sandbox rejects this request: {options.reject.replace('_', ' ')}.",
            })
        ]
    steps = []
    if not options.legacy:
        steps.append(Step(delay, "fulfillment_request.accepted", {
            "fulfillment_order_id": fo_id,
            "request_id": request_id,
            "message": "The sandbox accepts this request.",
        }))
    lines = [{"id": line["id"], "quantity": line["quantity"]} for line in fo["line_items"]]
    parcels = [lines[:1], lines[1:]] if options.partial and len(lines) > 1 else [lines]
    for number, parcel in enumerate(parcels, 1):
        external_id = f"sbx-{fo_id}-{request_id}-{number}"
        steps.append(Step(delay, "fulfillment.created", {
            "fulfillment_order_id": fo_id,
            "external_id": external_id,
            "line_items": parcel,
            "tracking": tracking_of(external_id),
        }))
        shipped_at = now + timedelta(seconds=sum(step.delay for step in steps))
        steps.extend(_delivery(external_id, shipped_at, delay, options.out_of_order))
    return steps


def _delivery(external_id, shipped_at, delay, out_of_order):
    """Return one parcel's delivery events, each dated when its step is due."""
    label, transit, delivered = (
        Step(delay, "fulfillment.event", {
            "external_id": external_id,
            "status": status,
            "happened_at": rfc3339(shipped_at + timedelta(seconds=delay * number)),
        })
        for number, status in enumerate(DELIVERY_STATUSES, 1)
    )
    if not out_of_order:
        return [label, transit, delivered]
    # The carrier's feed holds the in-transit scan back: it arrives after the delivery,
    # still dated when it happened, so no event is dated after it was sent.
    return [label, delivered._replace(delay=2 * delay), transit]


def _answer_cancellation(data, options):
    fo_id, delay = data["fulfillment_order_id"], options.step_delay
    if options.cancellations == "reject":
        return [
            Step(delay, "cancellation_request.rejected", {
                "fulfillment_order_id": fo_id,
                "message": "The sandbox has already packed this order and ships it as planned.",
            })
        ]
    steps = [
        Step(delay, "cancellation_request.accepted", {
            "fulfillment_order_id": fo_id,
            "message": "The sandbox cancelled this order.",
        })
    ]
    if options.ship_after_cancel:
        external_id = f"sbx-{fo_id}-c{data['request_id']}"
        steps.append(Step(delay, "fulfillment.created", {
            "fulfillment_order_id": fo_id,
            "external_id": external_id,
            "tracking": tracking_of(external_id),
            "message": "The parcel had left the sandbox before the cancellation.",
        }))
    return steps

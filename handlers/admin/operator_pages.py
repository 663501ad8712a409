"""The operator's pages: the outbox with Retry now, and the received webhooks with their bodies."""

import base64

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from adapter import operator, store
from adapter.errors import InvalidTransition
from adapter.models import OutboxMessage, WebhookDelivery
from adapter.outbox import NOTIFICATIONS, state_of
from handlers.parsing import MAX_STORED_ID, now

from .blueprint import bp
from .orders import service_name

PAGE_SIZE = 50
# The outbox page opens on what still needs the operator: messages waiting and failed.
WAITING = "waiting"
MESSAGE_STATES = {
    WAITING: ("pending", "failed"),
    "pending": "pending",
    "failed": "failed",
    "delivered": "delivered",
    "all": None,
}
STATE_TITLES = {
    WAITING: _l("Pending and failed"),
    "pending": _l("Pending"),
    "failed": _l("Failed"),
    "delivered": _l("Sent successfully"),
    "all": _l("All"),
}
# The outcomes a received webhook is kept with: applied, replayed, or the error code it was answered.
OUTCOMES = {
    "applied": _l("Applied"),
    "replayed": _l("Answered again (same webhook-id)"),
    "validation_failed": _l("Refused: invalid data"),
    "invalid_transition": _l("Refused: not possible in the current status"),
    "not_found": _l("Refused: unknown fulfillment order"),
    "idempotency_conflict": _l("Refused: same webhook-id, different body"),
    "malformed_json": _l("Refused: not JSON"),
    "order_locked": _l("Refused: order locked"),
    "over_fulfillment": _l("Refused: more items than remain"),
}
RETRY_REFUSED = {
    "delivered": _l("This message was delivered already and is not sent again. Nothing was changed."),
    "moved_on": _l("This message no longer applies: its fulfillment order has moved on since it was"
                   " queued. Nothing was changed."),
}
MAX_KEY = 64


class BadFilter(Exception):
    """A filter or page of the query string that the list does not know."""


def _after(args):
    """Return the `after` row id of a query (a page's keyset), or None."""
    raw = args.get("after", "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_STORED_ID):
        raise BadFilter("after")
    return int(raw)


def _key(args, name):
    value = args.get(name, "").strip()
    if len(value) > MAX_KEY:
        raise BadFilter(name)
    return value or None


def _services():
    """Return the configured service keys, and `notifications` where messages go to the merchant."""
    return [*current_app.extensions["adapter_settings"].services, NOTIFICATIONS]


@bp.get("/outbox")
def outbox():
    """List outbox messages by state and service, in queue order, a page at a time."""
    return outbox_page(request.args)


def outbox_page(args, refusal=None, status=200):
    """Render the outbox list for a query's filters; after a refused retry, with its banner."""
    filters = {"state": args.get("state") or WAITING, "service": None}
    page = dict(filters=filters, states=STATE_TITLES, services=_services(), messages=[], more=None,
                first=None, error=False, refusal=refusal)
    try:
        if filters["state"] not in MESSAGE_STATES:
            raise BadFilter("state")
        filters["service"] = _key(args, "service")
        after = _after(args)
    except BadFilter:
        page["error"] = True
        return render_template("admin/outbox.html", **page), 422
    with store.snapshot():
        found, more = operator.list_messages(
            MESSAGE_STATES[filters["state"]], filters["service"], after, PAGE_SIZE)
    page["messages"] = found
    query = {name: value for name, value in filters.items() if value and value != WAITING}
    if more:
        page["more"] = url_for("admin.outbox", **query, after=found[-1].id)
    if after:
        page["first"] = url_for("admin.outbox", **query)
    return render_template("admin/outbox.html", **page), status


@bp.post("/outbox/<id:message_id>/retry")
def retry_message(message_id):
    """Send a message now, as `POST /outbox/messages/{id}/retry`; back to the list it came from."""
    back = {name: request.form[name] for name in ("state", "service", "after")
            if request.form.get(name)}
    try:
        operator.retry(message_id, now())
    except InvalidTransition:
        delivered = OutboxMessage.get_by_id(message_id).status == "delivered"
        return outbox_page(back, RETRY_REFUSED["delivered" if delivered else "moved_on"], 409)
    flash(_("Message %(id)s will be sent now.", id=message_id), "success")
    return redirect(url_for("admin.outbox", **back, _anchor=f"message-{message_id}"))


@bp.get("/webhooks")
def webhooks():
    """List received webhooks by service and outcome, in the order received, a page at a time."""
    filters = {"service": None, "outcome": None}
    page = dict(filters=filters, services=_services()[:-1], outcomes=OUTCOMES, deliveries=[],
                more=None, first=None, error=False)
    try:
        filters["service"], filters["outcome"] = _key(request.args, "service"), _key(request.args, "outcome")
        after_id = _after(request.args)
    except BadFilter:
        page["error"] = True
        return render_template("admin/webhooks.html", **page), 422
    with store.snapshot():
        after = None
        if after_id is not None:
            last = WebhookDelivery.get_or_none(WebhookDelivery.id == after_id)
            if last is None:
                page["error"] = True
                return render_template("admin/webhooks.html", **page), 422
            after = (last.received_at, last.id)
        found, more = operator.list_deliveries(
            filters["service"], filters["outcome"], None, after, PAGE_SIZE)
    page["deliveries"] = found
    query = {name: value for name, value in filters.items() if value}
    if more:
        page["more"] = url_for("admin.webhooks", **query, after=found[-1].id)
    if after_id:
        page["first"] = url_for("admin.webhooks", **query)
    return render_template("admin/webhooks.html", **page)


@bp.get("/webhooks/<id:delivery_id>")
def webhook_delivery(delivery_id):
    """Show one received webhook: its headers and its raw body as text (base64 if not UTF-8)."""
    delivery = operator.get_delivery(delivery_id)
    raw = bytes(delivery.body)
    try:
        body, body_base64 = raw.decode("utf-8"), None
    except UnicodeDecodeError:
        body, body_base64 = None, base64.b64encode(raw).decode("ascii")
    return render_template("admin/webhook_delivery.html", delivery=delivery,
                           headers=sorted(delivery.headers.items()), body=body,
                           body_base64=body_base64)


@bp.app_template_global()
def outcome_label(code):
    """Return the page's words for a received webhook's outcome; an unknown code as it is."""
    return OUTCOMES.get(code, code)


@bp.app_template_global()
def target_name(key):
    """Return the name of where a message goes: a service, or the merchant's notifications."""
    return _("Merchant notifications") if key == NOTIFICATIONS else service_name(key)


@bp.app_template_global()
def message_state(message):
    """Return the state an operator sees for an outbox message: pending, failed or delivered."""
    return state_of(message.status)

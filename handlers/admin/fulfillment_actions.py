"""Forms of the fulfillment order cards: each runs the API's core operation with the API's schema."""

from dataclasses import dataclass

from flask import flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from adapter import fulfillment_orders as fos
from adapter.errors import NotFound
from adapter.models import FulfillmentOrder, FulfillmentOrderLine
from handlers import schemas
from handlers.parsing import load, now

from .blueprint import bp
from .orders import order_page
from .refusals import REFUSED, Refusal


@dataclass(frozen=True)
class FormAction:
    """One form of a card: its accessible name, the API's schema and operation, its flash message."""

    name: object
    schema: object
    # (FO lines) -> (the body the API endpoint would receive, the FO line id of each `line_items.N`)
    payload: object
    # (fo_id, loaded body, now): the core operation the API endpoint calls
    run: object
    done: object


def _text(name):
    """Return a form field as the API's optional text: empty means none."""
    value = request.form.get(name, "")
    return value if value.strip() else None


def _checked(name):
    return request.form.get(name) == "on"


def _line_items(fo_lines):
    """Return the API's `line_items` from the quantity inputs and the FO line id at each index."""
    # None asks for everything remaining, as the API's default; the ids let `line_items.N.*`
    # errors find their input.
    given, order, everything = [], [], True
    for line in (line for line in fo_lines if line.remaining_quantity):
        raw = request.form.get(f"quantity-{line.id}", "").strip()
        if raw == str(line.remaining_quantity):
            quantity = line.remaining_quantity
        else:
            everything = False
            quantity = _whole_number(raw)
        if quantity != 0:
            given.append({"id": line.id, "quantity": quantity})
            order.append(line.id)
    return (None, []) if everything else (given, order)


def _whole_number(raw):
    """Return an integer typed in a quantity input; anything else as typed, for the schema to refuse."""
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        return raw


def _message_only(fo_lines):
    return {"message": _text("message")}, []


def _request_body(fo_lines):
    line_items, order = _line_items(fo_lines)
    return {"message": _text("message"), "notify_customer": _checked("notify_customer"),
            "line_items": line_items}, order


def _revert_body(fo_lines):
    line_items, order = _line_items(fo_lines)
    return {"message": _text("message"), "line_items": line_items}, order


def _mark_body(fo_lines):
    line_items, order = _line_items(fo_lines)
    tracking = {"number": _text("tracking_number"), "company": _text("tracking_company"),
                "url": _text("tracking_url")}
    return {"line_items": line_items, "notify_customer": _checked("notify_customer"),
            "tracking": tracking if any(tracking.values()) else None}, order


def _hold_body(fo_lines):
    return {"reason": request.form.get("reason", ""), "note": _text("note")}, []


def _message_body(fo_lines):
    return {"message": request.form.get("message", "")}, []


def _nothing(fo_lines):
    return {}, []


def _without_payload(operation):
    return lambda fo_id, payload, at: operation(fo_id, at)


# Keyed by the names of `supported_actions` (and `acknowledge`, offered by the needs-attention
# banner), in the order the table lists them; the names are SPEC 8's accessible names.
FO_ACTIONS = {
    "request_fulfillment": FormAction(
        _l("Request fulfillment"), schemas.FulfillmentRequestSchema(), _request_body,
        lambda fo_id, payload, at: fos.request_fulfillment(fo_id, payload, at),
        _l("Fulfillment requested. The service will answer on this page.")),
    "cancel_fulfillment_request": FormAction(
        _l("Cancel fulfillment request"), schemas.MessageOptionalSchema(), _message_only,
        fos.cancel_request, _l("Fulfillment request withdrawn. The service has been told.")),
    "request_cancellation": FormAction(
        _l("Request cancellation"), schemas.MessageOptionalSchema(), _message_only,
        fos.request_cancellation, _l("Cancellation requested. The service will answer on this page.")),
    "revert_to_unfulfilled": FormAction(
        _l("Revert to unfulfilled"), schemas.RevertSchema(), _revert_body, fos.revert,
        _l("Reverted to unfulfilled. Check your inventory counts to make sure they are correct.")),
    "mark_as_fulfilled": FormAction(
        _l("Mark as fulfilled"), schemas.MarkFulfilledSchema(), _mark_body, fos.mark_fulfilled,
        _l("Items marked as fulfilled.")),
    "hold": FormAction(
        _l("Hold fulfillment"), schemas.HoldInSchema(), _hold_body, fos.hold,
        _l("Fulfillment held.")),
    "release_hold": FormAction(
        _l("Release hold"), schemas.EmptySchema(), _nothing, _without_payload(fos.release_hold),
        _l("Hold released.")),
    "open": FormAction(
        _l("Fulfill now"), schemas.EmptySchema(), _nothing, _without_payload(fos.open_early),
        _l("The fulfillment order is open now.")),
    "send_message": FormAction(
        _l("Send message"), schemas.MessageSchema(), _message_body, fos.send_message,
        _l("Message sent to the service.")),
    "acknowledge": FormAction(
        _l("Acknowledge"), schemas.EmptySchema(), _nothing, _without_payload(fos.acknowledge),
        _l("Marked as seen.")),
}


@bp.post("/fulfillment_orders/<id:fo_id>/<action>")
def fulfillment_order_action(fo_id, action):
    """Run one card's form; back to the order page, or the page again with the reasons (4xx)."""
    form_action = FO_ACTIONS.get(action)
    fo = FulfillmentOrder.get_or_none(FulfillmentOrder.id == fo_id)
    if form_action is None or fo is None:
        raise NotFound()
    lines = fo.lines.order_by(FulfillmentOrderLine.id)
    body, line_order = form_action.payload(list(lines))
    try:
        form_action.run(fo_id, load(form_action.schema, body), now())
    except REFUSED as error:
        return order_page(fo.order_id, Refusal.of(error, fo_id, action, line_order, request.form))
    # Stored as text: a lazy string would be kept as markup in the session.
    flash(str(form_action.done), "success")
    return redirect(url_for("admin.order", order_id=fo.order_id, _anchor=f"fo-{fo_id}"))


@bp.app_template_global()
def fo_action_name(action):
    """Return the accessible name of a fulfillment order action, in the page's language."""
    return FO_ACTIONS[action].name

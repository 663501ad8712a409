"""Forms of the order, its payments, returns and comments, and Retry now: each runs the API's core
operation with the API's schema (SPEC 8)."""

import re
from dataclasses import dataclass

from flask import flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from adapter import operator, orders, payments, returns, timeline, transitions
from adapter.errors import InvalidTransition, NotFound, OrderLocked, ValidationFailed
from adapter.locks import get_order
from adapter.models import FulfillmentOrder, LineItem, MerchantRequest, OutboxMessage, Return
from adapter.money import format_amount, parse_amount
from adapter.statuses import PaymentFacts
from adapter.vocabulary import Requester, ReturnReason, TransactionKind
from handlers import schemas
from handlers.parsing import load, now

from . import labels
from .blueprint import bp
from .orders import order_page
from .refusals import CHECK_FIELDS, CHECK_FORM, CONFLICTS, REFUSED, Refusal
from .refusals import FIELD_HINTS as FO_HINTS

ADDRESS_FIELDS = ("name", "company", "address1", "address2", "city", "province", "zip",
                  "country_code", "phone")


@dataclass(frozen=True)
class OrderForm:
    """One order-level form: its accessible name, the API's schema and operation, its flash message."""

    name: object
    schema: object
    # (the stored order) -> the body the API endpoint would receive
    payload: object
    # (order_id, loaded body, now): the core operation the API endpoint calls
    run: object
    done: object


def _text(name):
    """Return a form field as the API's optional text: empty means none."""
    value = request.form.get(name, "")
    return value if value.strip() else None


def _nothing(order):
    return {}


def _cancel_body(order):
    return {"reason": _text("reason"), "refund": request.form.get("refund") == "on"}


def _edit_body(order):
    """Return `email` and `shipping_address`, keeping the address's parts the form does not show."""
    address = dict(order.shipping_address or {})
    for name in ADDRESS_FIELDS:
        value = _text(f"address-{name}")
        if value is not None:
            address[name] = value
        elif address.get(name) is not None:
            del address[name]
    return {"email": _text("email"), "shipping_address": address or None}


def _transaction_body(kind):
    # An empty amount is no amount: the API's own reason (required, or all for a void) applies.
    return lambda order: {"kind": kind, "amount": _text("amount")}


def _return_body(order):
    """Return the API's `requested_by` and `line_items` from the inputs of each fulfilled line."""
    lines = []
    for item in LineItem.select().where(LineItem.order == order.id).order_by(LineItem.id):
        raw = request.form.get(f"return-quantity-{item.id}", "").strip()
        if raw not in ("", "0"):
            lines.append({"line_item_id": item.id, "quantity": _whole_number(raw),
                          "reason": request.form.get(f"return-reason-{item.id}", "")})
    return {"requested_by": request.form.get("requested_by", ""), "line_items": lines}


def _whole_number(raw):
    """Return an integer typed in a quantity input; anything else as typed, for the schema to refuse."""
    try:
        return int(raw)
    except ValueError:
        return raw


def _comment_body(order):
    return {"message": request.form.get("message", "")}


def _transaction(order_id, payload, at):
    return payments.add_transaction(order_id, payload, at)


# Keyed by the names of the order's `supported_actions`, in SPEC 3.1's order; the names are
# SPEC 8's accessible names.
ORDER_FORMS = {
    "edit": OrderForm(_l("Edit"), schemas.OrderEditSchema(), _edit_body, orders.edit_order,
                      _l("Contact details saved.")),
    "cancel": OrderForm(
        _l("Cancel order"), schemas.CancelOrderSchema(), _cancel_body,
        lambda order_id, payload, at: orders.cancel_order(order_id, payload.get("reason"),
                                                          payload["refund"], at),
        _l("Order cancelled.")),
    "archive": OrderForm(_l("Archive"), schemas.EmptySchema(), _nothing,
                         lambda order_id, payload, at: orders.set_archived(order_id, True, at),
                         _l("Order archived.")),
    "unarchive": OrderForm(_l("Unarchive"), schemas.EmptySchema(), _nothing,
                           lambda order_id, payload, at: orders.set_archived(order_id, False, at),
                           _l("Order unarchived.")),
    "mark_as_paid": OrderForm(_l("Mark as paid"), schemas.TransactionInSchema(),
                              _transaction_body("sale"), _transaction, _l("Marked as paid.")),
    "capture": OrderForm(_l("Capture"), schemas.TransactionInSchema(), _transaction_body("capture"),
                         _transaction, _l("Payment captured.")),
    "refund": OrderForm(_l("Refund"), schemas.TransactionInSchema(), _transaction_body("refund"),
                        _transaction, _l("Refund recorded.")),
    "void": OrderForm(_l("Void"), schemas.TransactionInSchema(), _transaction_body("void"),
                      _transaction, _l("Authorization voided.")),
    "create_return": OrderForm(_l("Create return"), schemas.ReturnInSchema(), _return_body,
                               returns.create_return, _l("Return created.")),
    "add_comment": OrderForm(_l("Add comment"), schemas.CommentInSchema(), _comment_body,
                             lambda order_id, payload, at: timeline.add_comment(
                                 order_id, payload["message"], at),
                             _l("Comment added.")),
}
RETURN_ACTIONS = {
    "approve": (_l("Approve"), _l("Return approved.")),
    "decline": (_l("Decline"), _l("Return declined.")),
    "complete_inspection": (_l("Complete inspection"), _l("Inspection recorded.")),
    "close": (_l("Close return"), _l("Return closed.")),
}
RETRY_NOW = _l("Retry now")
RETRIED = _l("The request will be sent again now.")

ORDER_CHANGED = _l("This action is not possible now: the order changed since the page was drawn."
                   " The page shows it as it is now; nothing was changed.")
AMOUNT_CHANGED = _l("The amount outstanding changed since the page was drawn. The page shows it as it"
                    " is now; nothing was changed.")
FIELD_HINTS = {
    "amount": _l("Enter an amount above 0, at most what the action allows, such as 12.50."),
    "reason": _l("A reason can have at most 5,000 characters."),
    "email": _l("Enter an email address, or leave it empty."),
    "message": _l("Write a comment of at most 5,000 characters."),
    "address-country_code": _l("Enter a two-letter country code, such as TH, or leave it empty."),
    "address": _l("This value is too long."),
    "requested_by": _l("Choose who asked for the return."),
    "return-quantity": _l("Enter a whole number from 0 to the quantity that can be returned."),
    "return-reason": _l("Choose a reason."),
    "lines": FO_HINTS["lines"],
}
ADDRESS_KEY = re.compile(r"^shipping_address\.(\w+)$")
RETURN_LINE_KEY = re.compile(r"^line_items\.(\d+)\.(quantity|reason)$")


def refusal_of(error, action, form, body):
    """Describe a refused order form: reasons next to its inputs (422) or a banner (409).

    `body` is what the form was read as: `line_items.N` of a return names the line of its inputs.
    """
    values = {name: form.get(name) for name in form if name != "csrf_token"}
    if isinstance(error, OrderLocked):
        return Refusal(error.status, None, action, CONFLICTS[OrderLocked], values)
    if not isinstance(error, ValidationFailed):
        return Refusal(error.status, None, action, ORDER_CHANGED, values)
    errors = {}
    for key in error.errors:
        name = _input_of(key, body)
        if name is None or (name == "amount" and action == "mark_as_paid"):
            # Nothing to type into: the page drew a state that has changed since.
            banner = AMOUNT_CHANGED if name == "amount" else CHECK_FORM
            return Refusal(error.status, None, action, banner, values)
        errors[name] = FIELD_HINTS.get(name.rpartition("-")[0] if name.startswith("return-") else name,
                                       FIELD_HINTS["address"])
    return Refusal(error.status, None, action, CHECK_FIELDS, values, errors)


def _input_of(key, body):
    matched = ADDRESS_KEY.match(key)
    if matched and matched.group(1) in ADDRESS_FIELDS:
        return f"address-{matched.group(1)}"
    matched = RETURN_LINE_KEY.match(key)
    if matched and int(matched.group(1)) < len(body.get("line_items") or ()):
        line = body["line_items"][int(matched.group(1))]
        return f"return-{matched.group(2)}-{line['line_item_id']}"
    if key == "line_items":
        return "lines"
    return key if key in ("amount", "reason", "email", "message", "requested_by") else None


@bp.post("/orders/<id:order_id>/<action>")
def order_action(order_id, action):
    """Run an order form; back to the order page, or the page again with the reasons (4xx)."""
    form = ORDER_FORMS.get(action)
    if form is None:
        raise NotFound()
    body = form.payload(get_order(order_id))
    try:
        form.run(order_id, load(form.schema, body), now())
    except REFUSED as error:
        return order_page(order_id, refusal_of(error, action, request.form, body))
    flash(str(form.done), "success")
    return redirect(url_for("admin.order", order_id=order_id))


@bp.post("/returns/<id:return_id>/<action>")
def return_action(return_id, action):
    """Move a return along as `POST /returns/{id}/{action}` does."""
    found = Return.get_or_none(Return.id == return_id)
    if action not in RETURN_ACTIONS or found is None:
        raise NotFound()
    load(schemas.EmptySchema(), {})
    try:
        returns.advance_return(return_id, action, now())
    except REFUSED as error:
        refusal = Refusal(error.status, None, f"return-{return_id}-{action}", ORDER_CHANGED, {})
        return order_page(found.order_id, refusal)
    flash(str(RETURN_ACTIONS[action][1]), "success")
    return redirect(url_for("admin.order", order_id=found.order_id, _anchor=f"return-{return_id}"))


@bp.post("/merchant_requests/<id:request_id>/retry")
def retry_request(request_id):
    """Send the message carrying a request again now, as `POST /outbox/messages/{id}/retry` does."""
    sent = MerchantRequest.get_or_none(MerchantRequest.id == request_id)
    fo = sent and FulfillmentOrder.get_by_id(sent.fulfillment_order_id)
    message = fo and OutboxMessage.get_or_none(
        (OutboxMessage.target == fo.service) & (OutboxMessage.fulfillment_order_id == fo.id)
        & (OutboxMessage.request_id == sent.id) & (OutboxMessage.type == f"{sent.kind}.submitted"))
    if message is None:
        raise NotFound()
    try:
        operator.retry(message.id, now())
    except InvalidTransition as error:
        return order_page(fo.order_id, Refusal.of(error, fo.id, "retry", [], request.form))
    flash(str(RETRIED), "success")
    return redirect(url_for("admin.order", order_id=fo.order_id, _anchor=f"fo-{fo.id}"))


@bp.app_template_global()
def order_action_name(action):
    """Return the accessible name of an order or return action, in the page's language."""
    if action in RETURN_ACTIONS:
        return RETURN_ACTIONS[action][0]
    return RETRY_NOW if action == "retry" else ORDER_FORMS[action].name


@bp.app_template_global()
def outstanding(order):
    """Return what a sale may still take (the total minus what was paid), as the API writes amounts."""
    currency = order["currency"]
    owed = parse_amount(order["total_price"], currency) - parse_amount(order["amount_captured"], currency)
    return format_amount(max(owed, 0), currency)


@bp.app_template_global()
def return_choices():
    """Return (value, word) of who may ask for a return and of the reasons a returned line can
    have, as the API takes them; the form lists the reasons once per line."""
    return ([(value, labels.label("actor", value)) for value in Requester],
            [(value, labels.label("return_reason", value)) for value in ReturnReason])


@bp.app_template_global()
def returnable_lines(order):
    """Return (line, quantity) of each line with units fulfilled and not in a return (not declined)."""
    returned = {}
    for found in order["returns"]:
        if found["status"] != "declined":
            for line in found["line_items"]:
                returned[line["line_item_id"]] = returned.get(line["line_item_id"], 0) + line["quantity"]
    return [(line, line["fulfilled_quantity"] - returned.get(line["id"], 0)) for line in order["line_items"]
            if line["fulfilled_quantity"] > returned.get(line["id"], 0)]


@bp.app_template_global()
def refundable(order):
    """Return what a refund may still take: what was paid and not refunded yet."""
    currency = order["currency"]
    return format_amount(parse_amount(order["amount_captured"], currency)
                         - parse_amount(order["amount_refunded"], currency), currency)


@bp.app_template_global()
def capturable(order):
    """Return what a capture may still take: what is authorized, not voided and not captured."""
    currency = order["currency"]
    captures = sum(parse_amount(tx["amount"], currency)
                   for tx in order["transactions"] if tx["kind"] == TransactionKind.CAPTURE)
    return format_amount(max(parse_amount(order["amount_authorized"], currency) - captures, 0), currency)


@bp.app_template_global()
def locked_actions(order):
    """Return the order actions missing from `supported_actions` only because an FO is in progress."""
    if order["locked_by_fulfillment_order_id"] is None:
        return []
    currency = order["currency"]
    # The lock decides alone: the same table, asked as if no FO were in progress.
    facts = transitions.OrderFacts(
        cancelled="cancelled" in order["order_status"], archived="archived" in order["order_status"],
        payment=PaymentFacts(total=parse_amount(order["total_price"], currency),
                             captured=parse_amount(order["amount_captured"], currency),
                             refunded=parse_amount(order["amount_refunded"], currency)))
    return [action for action in transitions.supported_order_actions(facts, now())
            if transitions.ORDER_ACTIONS[action].locks and action not in order["supported_actions"]]

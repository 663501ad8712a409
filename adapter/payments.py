"""Transactions: authorizations, captures, sales, refunds and voids, with every amount checked."""

from . import derived, store, timeline, transitions
from .errors import ValidationFailed
from .fulfillment_orders import auto_fulfill
from .locks import check_order_action, locked_order
from .models import Return, Transaction
from .money import format_amount, parse_amount
from .times import to_naive_utc
from .vocabulary import Actor, PaymentStatus, TimelineKind, TransactionKind


def _invalid(field, message):
    return ValidationFailed({field: [message]})


def _amount(payload, order, field):
    if payload.get("amount") is None:
        raise _invalid(field, "Missing data for required field.")
    try:
        minor = parse_amount(payload["amount"], order.currency)
    except ValueError as exc:
        raise _invalid(field, str(exc)) from None
    if minor == 0:
        raise _invalid(field, "Must be greater than zero.")
    return minor


def apply_transaction(order, payload, now, field=None):
    """Check a transaction against the order's money and store it (inside a transaction).

    `field` prefixes the names in validation errors (`transactions.0` at intake). The order
    action table refuses the kind first (409); the amounts are checked here against the same
    PaymentFacts amounts the table offers the action by (422, naming the field).
    """
    prefix = f"{field}." if field else ""
    kind = payload["kind"]
    check_order_action(order, transitions.ACTION_OF_TRANSACTION[kind])
    facts = derived.payment_facts_of(order)
    amount_field = f"{prefix}amount"
    if kind == TransactionKind.VOID:
        amount = _void_amount(payload, order, facts, prefix)
    else:
        amount = _amount(payload, order, amount_field)
    if kind == TransactionKind.AUTHORIZATION:
        if facts.authorized + amount > order.total_minor:
            raise _invalid(amount_field, _beyond("authorized", facts.authorized, order))
    elif kind == TransactionKind.CAPTURE:
        if facts.authorized == 0:
            raise _invalid(
                f"{prefix}kind",
                "The authorization was voided; there is nothing left to capture."
                if facts.voided
                else "There is no authorization to capture.",
            )
        if facts.auth_expired(now):
            raise _invalid(f"{prefix}kind", "The authorization has expired.")
        if amount > facts.uncaptured:
            raise _invalid(
                amount_field,
                f"Over-capture: only {format_amount(facts.uncaptured, order.currency)}"
                " of the authorization is left to capture.",
            )
    elif kind == TransactionKind.SALE:
        if amount > facts.outstanding:
            raise _invalid(amount_field, _beyond("paid", facts.captured, order))
    elif kind == TransactionKind.REFUND and amount > facts.refundable:
        raise _invalid(
            amount_field,
            f"Over-refund: only {format_amount(facts.refundable, order.currency)}"
            " was paid and not yet refunded.",
        )
    return_ = None
    if payload.get("return_id") is not None:
        return_ = Return.get_or_none(
            (Return.id == payload["return_id"]) & (Return.order == order.id)
        )
        if return_ is None:
            raise _invalid(f"{prefix}return_id", "No such return on this order.")
    return Transaction.create(
        order=order,
        kind=kind,
        amount_minor=amount,
        expires_at=(
            to_naive_utc(payload.get("expires_at")) if kind == TransactionKind.AUTHORIZATION else None
        ),
        return_=return_,
        created_at=now,
    )


def _void_amount(payload, order, facts, prefix):
    """Return what a void takes off the authorization: its `amount`, or all that is uncaptured."""
    if facts.authorized == 0:
        raise _invalid(
            f"{prefix}kind",
            "The authorization is already voided."
            if facts.voided
            else "There is no authorization to void.",
        )
    if facts.uncaptured == 0:
        raise _invalid(
            f"{prefix}kind",
            "The authorization is fully captured, and a captured payment cannot be voided: "
            "refund it instead.",
        )
    if payload.get("amount") is None:
        return facts.uncaptured
    amount = _amount(payload, order, f"{prefix}amount")
    if amount > facts.uncaptured:
        raise _invalid(
            f"{prefix}amount",
            f"Only {format_amount(facts.uncaptured, order.currency)} of the authorization is "
            "uncaptured and can be voided; refund a captured payment instead.",
        )
    return amount


def _beyond(what, already, order):
    return (
        f"Exceeds the order total of {format_amount(order.total_minor, order.currency)} "
        f"({format_amount(already, order.currency)} already {what})."
    )


def add_transaction(order_id, payload, now):
    """Record a transaction on an order; auto-fulfill if it makes the order paid."""
    with store.transaction():
        order = locked_order(order_id)
        tx = apply_transaction(order, payload, now)
        timeline.record(
            order,
            TimelineKind(f"transaction.{tx.kind}"),
            now,
            actor=Actor.MERCHANT,
            data={
                "transaction_id": tx.id,
                "amount": format_amount(tx.amount_minor, order.currency),
                "return_id": tx.return_id,
            },
        )
        was_paid = derived.refresh(order, now, {derived.PAYMENT})
        after_payment_change(order, was_paid, now)
    return order, tx


def after_payment_change(order, was_paid, now):
    """Send fulfillment requests for auto-fulfill services when the order has just become paid.

    Return whether any request was sent.
    """
    if was_paid or order.payment_state != PaymentStatus.PAID or order.cancelled_at is not None:
        return False
    return auto_fulfill(order, now)


def settle_for_cancel(order, refund, now):
    """Void what is authorized and not captured and, if asked, refund what was paid; describe it."""
    facts = derived.payment_facts_of(order)
    done = {"voided": None, "refunded": None}
    if facts.uncaptured > 0:
        Transaction.create(
            order=order, kind=TransactionKind.VOID, amount_minor=facts.uncaptured, created_at=now
        )
        done["voided"] = format_amount(facts.uncaptured, order.currency)
    if refund and facts.refundable > 0:
        amount = facts.refundable
        Transaction.create(order=order, kind=TransactionKind.REFUND, amount_minor=amount, created_at=now)
        done["refunded"] = format_amount(amount, order.currency)
    return done

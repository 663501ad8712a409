"""What an operator does with the outbox and the received webhooks: list, read, send again (SPEC 9).

`flask outbox` and the operator API call these, so the shell and HTTP do exactly the same.
"""

from . import fulfillment_orders, outbox, store
from .errors import InvalidTransition, NotFound
from .models import OutboxMessage, WebhookDelivery

# A message being sent (leased) is still waiting for an answer: the operator sees it as pending.
STATUSES_OF_STATE = {
    "pending": ("pending", "sending"),
    "failed": ("failed",),
    "delivered": ("delivered",),
}
STATES = tuple(STATUSES_OF_STATE)


def list_messages(state, service, after_id, limit):
    """Return up to `limit` messages in id order after `after_id`, and whether more follow.

    `state` is one state, a tuple of states (the admin page's pending and failed), or None.
    """
    query = OutboxMessage.select().order_by(OutboxMessage.id).limit(limit + 1)
    if state is not None:
        states = (state,) if isinstance(state, str) else state
        query = query.where(OutboxMessage.status.in_(
            [status for one in states for status in STATUSES_OF_STATE[one]]))
    if service is not None:
        query = query.where(OutboxMessage.target == service)
    if after_id is not None:
        query = query.where(OutboxMessage.id > after_id)
    messages = list(query)
    return messages[:limit], len(messages) > limit


def get_message(message_id):
    """Return the message with row id `message_id`, or raise NotFound."""
    message = OutboxMessage.get_or_none(OutboxMessage.id == message_id)
    if message is None:
        raise NotFound(f"No outbox message {message_id}.")
    return message


def find_message(ref):
    """Return the message a CLI argument names: its row id, or its message_id (`msg_...`)."""
    # Message ids are `msg_<hex>`, so a short run of digits can only be a row id.
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:
        return get_message(int(ref))
    message = OutboxMessage.get_or_none(OutboxMessage.message_id == ref)
    if message is None:
        raise NotFound(f"No outbox message {ref}.")
    return message


def retry(message_id, now, *, pending_too=True):
    """Send a message again now; return it as stored after.

    A failed message goes back to pending, unchanged (same webhook-id, same body), once what
    its failure undid is put back; InvalidTransition (409) when its FO has moved on. A pending
    one (if `pending_too`) is due now instead of at its next attempt; one being sent is left
    alone. A delivered one cannot be sent again.
    """
    with store.transaction():
        query = OutboxMessage.select().where(OutboxMessage.id == message_id)
        # The dispatcher locks a message before the order it undoes; so does this.
        message = (query.for_update() if store.is_postgres() else query).first()
        if message is None:
            raise NotFound(f"No outbox message {message_id}.")
        if message.status == "failed":
            fulfillment_orders.message_retried(message, now)
            OutboxMessage.update(
                status="pending", attempts=0, next_attempt_at=now, finished_at=None,
                lease_token=None, lease_until=None,
            ).where(OutboxMessage.id == message.id).execute()
        elif message.status == "pending" and pending_too:
            OutboxMessage.update(next_attempt_at=now).where(
                (OutboxMessage.id == message.id) & (OutboxMessage.status == "pending")
            ).execute()
        elif message.status != "sending" or not pending_too:
            state = outbox.state_of(message.status)
            raise InvalidTransition(
                f"Message {message.id} ({message.message_id}) is {state}; only failed or pending"
                " messages can be sent again." if pending_too else
                f"Message {message.id} ({message.message_id}) is {state}, not failed; only failed"
                " messages can be retried."
            )
        store.database.after_commit(outbox.committed.set)
    return get_message(message_id)


def list_deliveries(service, outcome, since, after, limit):
    """Return up to `limit` received webhooks in the order received, and whether more follow.

    `after` is the (received_at, id) of the last one of the previous page. With a service, the
    (service, received_at) index gives the page without sorting.
    """
    query = (
        WebhookDelivery.select()
        .order_by(WebhookDelivery.received_at, WebhookDelivery.id)
        .limit(limit + 1)
    )
    if service is not None:
        query = query.where(WebhookDelivery.service == service)
    if outcome is not None:
        query = query.where(WebhookDelivery.outcome_code == outcome)
    if since is not None:
        query = query.where(WebhookDelivery.received_at >= since)
    if after is not None:
        at, last_id = after
        query = query.where(
            (WebhookDelivery.received_at > at)
            | ((WebhookDelivery.received_at == at) & (WebhookDelivery.id > last_id))
        )
    deliveries = list(query)
    return deliveries[:limit], len(deliveries) > limit


def get_delivery(delivery_id):
    """Return the received webhook with id `delivery_id`, or raise NotFound."""
    delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
    if delivery is None:
        raise NotFound(f"No webhook delivery {delivery_id}.")
    return delivery

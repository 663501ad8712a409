"""The durable outbox: messages stored in the same transaction as the change that causes them."""

import json
import threading
import uuid

from . import store
from .models import OutboxMessage
from .times import rfc3339

NOTIFICATIONS = "notifications"

# Set when a message is committed so an in-process dispatcher can send it at
# once; other processes find it by polling. Correctness never depends on it.
committed = threading.Event()


def state_of(status):
    """The state operators and merchants see for a stored status: pending, failed or delivered.

    A message being sent is still waiting for its answer.
    """
    return "pending" if status == "sending" else status


def envelope(message_type, data, now):
    """Return the JSON body of a message, exactly as it will be sent and signed."""
    return json.dumps(
        {"type": message_type, "timestamp": rfc3339(now), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def enqueue(target, message_type, data, now, *, order_id=None, fulfillment_order_id=None,
            request_id=None):
    """Store a message for `target` (a service key or `notifications`); call inside a transaction."""
    message = OutboxMessage.create(
        message_id=f"msg_{uuid.uuid4().hex}",
        target=target,
        type=message_type,
        body=envelope(message_type, data, now),
        order_id=order_id,
        fulfillment_order_id=fulfillment_order_id,
        request_id=request_id,
        next_attempt_at=now,
        created_at=now,
    )
    store.database.after_commit(committed.set)
    return message

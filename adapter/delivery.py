"""What an attempt's outcome does to a message: delivered, tried again later, or failed.

A pure function of the message's attempts so far, the outcome and the retry schedule, so it is
tested as a table.
"""

from datetime import timedelta

from .service_client import Answer

RETRYABLE_STATUS_CODES = frozenset({408, 425, 429})
ANSWER_CHARS = 500


def after_attempt(attempts, outcome, now, schedule):
    """Return the column values of a message whose next attempt ended in `outcome` at `now`.

    `attempts` counts the attempts before this one; `outcome` is the service's Answer or the
    DeliveryError that stopped the attempt.
    """
    attempts += 1
    if isinstance(outcome, Answer):
        status_code, retry_after = outcome.status_code, outcome.retry_after_seconds
        answer = outcome.text_excerpt[:ANSWER_CHARS]
        retryable = status_code in RETRYABLE_STATUS_CODES or 500 <= status_code <= 599
    else:
        status_code, retry_after, answer, retryable = None, None, outcome.reason, True
    changes = {
        "attempts": attempts,
        "last_status_code": status_code,
        "last_answer": answer,
        "lease_token": None,
        "lease_until": None,
    }
    if status_code is not None and 200 <= status_code <= 299:
        changes.update(status="delivered", finished_at=now)
    elif retryable and attempts < len(schedule):
        wait = max(schedule[attempts], retry_after or 0)
        changes.update(status="pending", next_attempt_at=now + timedelta(seconds=wait))
    else:
        changes.update(status="failed", finished_at=now)
    return changes

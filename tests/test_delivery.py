"""What an attempt's outcome does to a message (adapter/delivery.py), as a table."""

from datetime import datetime, timedelta

import pytest

from adapter.delivery import ANSWER_CHARS, after_attempt
from adapter.service_client import Answer, DeliveryError

NOW = datetime(2026, 3, 1, 10, 0, 0)
SCHEDULE = (0, 5, 300, 1800)


def answer(status, retry_after=None, text="ok"):
    return Answer(status, retry_after, text)


@pytest.mark.parametrize(
    ("attempts", "outcome", "status", "wait"),
    [
        (0, answer(200), "delivered", None),
        (0, answer(204), "delivered", None),
        (2, answer(299), "delivered", None),
        # retryable answers and transport errors wait the schedule's next delay
        (0, answer(408), "pending", 5),
        (0, answer(425), "pending", 5),
        (0, answer(429), "pending", 5),
        (0, answer(500), "pending", 5),
        (1, answer(503), "pending", 300),
        (2, answer(599), "pending", 1800),
        (0, DeliveryError("timed out after 10 s"), "pending", 5),
        (1, DeliveryError("connection failed (ConnectionError)"), "pending", 300),
        # Retry-After waits longer than the schedule, never shorter
        (0, answer(429, retry_after=60), "pending", 60),
        (2, answer(503, retry_after=1), "pending", 1800),
        # any other answer, 3xx included, fails at once
        (0, answer(301), "failed", None),
        (0, answer(400), "failed", None),
        (0, answer(404), "failed", None),
        (0, answer(410), "failed", None),
        (0, answer(401), "failed", None),
        # the last attempt of the schedule fails whatever the answer
        (3, answer(503), "failed", None),
        (3, DeliveryError("timed out after 10 s"), "failed", None),
        (3, answer(200), "delivered", None),
    ],
)
def test_an_outcome_moves_the_message_as_the_table_says(attempts, outcome, status, wait):
    changes = after_attempt(attempts, outcome, NOW, SCHEDULE)
    assert changes["status"] == status
    assert changes["attempts"] == attempts + 1
    assert changes["lease_token"] is None and changes["lease_until"] is None
    if status == "pending":
        assert changes["next_attempt_at"] == NOW + timedelta(seconds=wait)
        assert "finished_at" not in changes
    else:
        assert changes["finished_at"] == NOW
        assert "next_attempt_at" not in changes


def test_an_answer_is_kept_with_its_status_and_an_excerpt_of_its_text():
    changes = after_attempt(0, answer(422, text="é" * (ANSWER_CHARS + 50)), NOW, SCHEDULE)
    assert changes["last_status_code"] == 422
    assert changes["last_answer"] == "é" * ANSWER_CHARS


def test_a_transport_error_is_kept_as_the_reason_without_a_status():
    changes = after_attempt(0, DeliveryError("connection failed (ConnectionError)"), NOW, SCHEDULE)
    assert changes["last_status_code"] is None
    assert changes["last_answer"] == "connection failed (ConnectionError)"

"""Hooks through which the core reports its outbox attempts, so that metrics stay outside the core.

A listener that fails is logged and skipped: reporting never changes what the outbox does.
"""

import logging

log = logging.getLogger(__name__)

_attempt_listeners = []
_timing_listeners = []


def on_attempt(listener):
    """Call `listener(message, outcome)` for every attempt whose outcome is settled."""
    if listener not in _attempt_listeners:
        _attempt_listeners.append(listener)


def on_timing(listener):
    """Call `listener(target, seconds)` with how long each send took."""
    if listener not in _timing_listeners:
        _timing_listeners.append(listener)


def attempted(message, outcome):
    """Report a settled attempt: `outcome` is delivered, retry, failed or not_recorded."""
    _notify(_attempt_listeners, message, outcome)


def timed(target, seconds):
    """Report how long one send to `target` took."""
    _notify(_timing_listeners, target, seconds)


def _notify(listeners, *args):
    for listener in listeners:
        try:
            listener(*args)
        except Exception:
            log.exception("an outbox listener failed")

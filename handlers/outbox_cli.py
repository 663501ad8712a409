"""`flask outbox`: run the dispatcher in the foreground, list and retry messages."""

import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup
from peewee import fn

from adapter import fulfillment_orders, store
from adapter.dispatcher import Dispatcher
from adapter.errors import AdapterError
from adapter.models import OutboxMessage
from adapter.times import rfc3339, utcnow

outbox_cli = AppGroup("outbox", help="Deliver, list and retry outbox messages.")

STOP_TIMEOUT_SECONDS = 30


def _settings():
    return current_app.extensions["adapter_settings"]


@outbox_cli.command("work")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
def work(once):
    """Deliver outbox messages for every target until stopped (SIGTERM or Ctrl-C)."""
    dispatcher = Dispatcher(_settings())
    if once:
        click.echo(f"Sent {dispatcher.run_once()} message(s).")
        return
    stopping = threading.Event()

    def request_stop(signum, frame):
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        dispatcher.start()
        click.echo(f"Delivering to {', '.join(dispatcher.targets) or 'no targets'}; stop with Ctrl-C.")
        # A timed wait returns to the interpreter regularly, so the signal handlers
        # always get to run in this (the main) thread.
        while not stopping.wait(1):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        click.echo("Stopping...")
        dispatcher.stop(STOP_TIMEOUT_SECONDS)


ANSWER_WIDTH = 60
MESSAGE_COLUMNS = ("id", "message_id", "target", "type", "attempts")


def _table(header, rows):
    """Return the lines of a table whose columns line up, header first; no trailing blanks."""
    cells = [[str(cell) for cell in row] for row in (header, *rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in cells]


def _last_answer(message):
    """The message's last answer or error on one line, cut to ANSWER_WIDTH with an ellipsis."""
    answer = " ".join((message.last_answer or "").split()) or "-"
    return answer if len(answer) <= ANSWER_WIDTH else answer[: ANSWER_WIDTH - 1] + "…"


def _message_row(message, *fields):
    return (message.id, message.message_id, message.target, message.type, message.attempts,
            *fields, message.last_status_code or "-", _last_answer(message))


@outbox_cli.command("status")
def status():
    """Count messages per target and status, then list pending and failed ones with their last answer."""
    counts = (
        OutboxMessage.select(OutboxMessage.target, OutboxMessage.status, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.target, OutboxMessage.status)
        .order_by(OutboxMessage.target, OutboxMessage.status)
        .tuples()
    )
    for line in _table(("target", "status", "count"), counts):
        click.echo(line)
    waiting = (
        OutboxMessage.select()
        .where(OutboxMessage.status.in_(("pending", "sending")))
        .order_by(OutboxMessage.id)
    )
    click.echo("\nPending:")
    header = (*MESSAGE_COLUMNS, "next attempt", "last status", "last answer or error")
    rows = [_message_row(message, rfc3339(message.next_attempt_at)) for message in waiting]
    for line in _table(header, rows):
        click.echo(line)
    failed = OutboxMessage.select().where(OutboxMessage.status == "failed").order_by(OutboxMessage.id)
    click.echo("\nFailed:")
    header = (*MESSAGE_COLUMNS, "failed at", "last status", "last answer or error")
    rows = [_message_row(message, rfc3339(message.finished_at)) for message in failed]
    for line in _table(header, rows):
        click.echo(line)


@outbox_cli.command("retry")
@click.argument("message_ref")
def retry(message_ref):
    """Send a failed message again: MESSAGE_REF is its numeric id or its message_id."""
    # Message ids are `msg_<hex>`, so a short run of digits can only be a row id.
    is_row_id = message_ref.isascii() and message_ref.isdigit() and len(message_ref) <= 9
    key = OutboxMessage.id == int(message_ref) if is_row_id else OutboxMessage.message_id == message_ref
    now = utcnow()
    with store.transaction():
        message = OutboxMessage.get_or_none(key)
        if message is None:
            raise click.ClickException(f"No outbox message {message_ref}.")
        if message.status != "failed":
            raise click.ClickException(
                f"Message {message.id} ({message.message_id}) is {message.status}, not failed; "
                "only failed messages can be retried."
            )
        try:
            fulfillment_orders.message_retried(message, now)
        except AdapterError as exc:
            raise click.ClickException(exc.detail) from None
        OutboxMessage.update(
            status="pending", attempts=0, next_attempt_at=now, finished_at=None,
            lease_token=None, lease_until=None,
        ).where((OutboxMessage.id == message.id) & (OutboxMessage.status == "failed")).execute()
    click.echo(f"Message {message.id} ({message.message_id}) to {message.target} will be sent again.")

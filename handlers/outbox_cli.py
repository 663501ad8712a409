"""`flask outbox`: run the dispatcher in the foreground, list and retry messages."""

import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup
from peewee import fn

from adapter import operator
from adapter.dispatcher import Dispatcher
from adapter.errors import AdapterError
from adapter.models import OutboxMessage
from adapter.times import rfc3339, utcnow

from . import metrics

outbox_cli = AppGroup("outbox", help="Deliver, list and retry outbox messages.")

STOP_TIMEOUT_SECONDS = 30


def _settings():
    return current_app.extensions["adapter_settings"]


@outbox_cli.command("work")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve GET /metrics on this port (needs metrics.token).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address the metrics port listens on.")
def work(once, metrics_port, metrics_host):
    """Deliver outbox messages for every target until stopped (SIGTERM or Ctrl-C)."""
    settings = _settings()
    dispatcher = Dispatcher(settings)
    metrics_server = None
    if metrics_port is not None and not once:
        if not settings.metrics_token:
            raise click.ClickException("--metrics-port needs metrics.token (or METRICS_TOKEN).")
        try:
            metrics_server = metrics.serve(settings, metrics_host, metrics_port)
        except OSError as exc:
            raise click.ClickException(
                f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}"
            ) from None
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
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()


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
@click.option("--now", "now_too", is_flag=True,
              help="Also send a pending message now instead of at its next attempt.")
def retry(message_ref, now_too):
    """Send a failed message again, or with --now a pending one now; MESSAGE_REF is id or message_id."""
    try:
        message = operator.retry(operator.find_message(message_ref).id, utcnow(), pending_too=now_too)
    except AdapterError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"Message {message.id} ({message.message_id}) to {message.target} will be sent now.")

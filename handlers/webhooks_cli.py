"""`flask webhooks`: export stored deliveries as JSON Lines and replay a recording."""

import sys
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup

from adapter import dispatcher, recordings
from adapter.models import WebhookDelivery

webhooks_cli = AppGroup("webhooks", help="Export recorded webhook deliveries and replay them.")

STOP_TIMEOUT_SECONDS = 30
CLEAR_LINE = "\x1b[2K\x1b[G"


class Moment(click.ParamType):
    """An RFC 3339 time or ISO date, read as naive UTC."""

    name = "time"

    def convert(self, value, param, ctx):
        try:
            return recordings.parse_moment(value)
        except ValueError:
            self.fail(
                f"{value!r} is not an RFC 3339 time or ISO date "
                "(such as 2026-03-01 or 2026-03-01T10:00:00Z).",
                param,
                ctx,
            )


def _base_url(ctx, param, value):
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{value!r} is not an http(s) URL such as http://127.0.0.1:5000.")
    return value


@webhooks_cli.command("export")
@click.option("--service", help="Only deliveries from this service key.")
@click.option("--since", type=Moment(),
              help="Only deliveries received at or after this RFC 3339 time or ISO date (UTC unless"
                   " it gives an offset).")
def export(service, since):
    """Write stored deliveries to stdout as JSON Lines, in the order received."""
    if service is not None:
        _check_service(service)
    with click.open_file("-", "wb") as out:
        for line in recordings.export_lines(service, since):
            out.write(line.encode("utf-8"))
        out.flush()


def _check_service(service):
    """Refuse a service key that is neither configured nor found among stored deliveries."""
    settings = current_app.extensions["adapter_settings"]
    if service in settings.services:
        return
    if WebhookDelivery.select().where(WebhookDelivery.service == service).exists():
        return
    known = ", ".join(sorted(settings.services)) or "none"
    raise click.BadParameter(
        f"unknown service {service!r}: it is not configured (configured: {known}) and no "
        "delivery from it is stored.",
        param_hint="'--service'",
    )


def _in_process_sender(client):
    def send(service, headers, body):
        response = client.post(f"/webhooks/{service}", data=body, headers=headers)
        return recordings.Reply(response.status_code, response.headers, response.get_data())

    return send


def _echo_summary(tally):
    click.echo(f"{'status':<8}{'outcome':<24}{'count':>8}")
    total = 0
    for status, label, count in tally.rows():
        click.echo(f"{status or '-':<8}{label or '-':<24}{count:>8}")
        total += count
    click.echo(f"{'total':<32}{total:>8}")


@webhooks_cli.command("replay")
@click.argument("file", type=click.File("rb"))
@click.option("--url", callback=_base_url,
              help="Send to the adapter running at this base URL instead of in process.")
@click.option("--new-ids", is_flag=True,
              help="Send each delivery under a fresh webhook-id, so it is judged again.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Seconds to wait for each answer with --url.")
@click.pass_context
def replay(ctx, file, url, new_ids, timeout):
    """Send the deliveries of FILE again, in order, signed with each service's current secret.

    Exits with status 1 unless every line was sent and none was answered 5xx: a malformed line
    is reported and skipped (the others are still sent), and a FILE with no delivery that could
    be sent replays nothing.
    """
    settings = current_app.extensions["adapter_settings"]
    secrets = {key: service.secret for key, service in settings.services.items()}
    sender = recordings.HttpSender(url, timeout) if url else None
    send = sender or _in_process_sender(current_app.test_client())
    length = recordings.count_lines(file) if file.seekable() else None
    tally = recordings.Tally()
    try:
        outcomes = recordings.replay(file, secrets, send, new_ids)
        with click.progressbar(outcomes, length=length, label="Replaying deliveries",
                               file=sys.stderr) as progress:
            for outcome in progress:
                tally.add(outcome)
                if outcome.reason is not None:
                    # Erase the bar's line first; click strips the codes when stderr is no terminal.
                    click.echo(f"{CLEAR_LINE}line {outcome.line_number}: {outcome.label}: "
                               f"{outcome.reason}", err=True)
    finally:
        if sender is not None:
            sender.close()
        else:
            # Requests in process start this process's outbox dispatcher when the app runs one;
            # let it finish what it is sending rather than die with the command.
            dispatcher.stop_in_process(STOP_TIMEOUT_SECONDS)
    _echo_summary(tally)
    if tally.answered == 0 and not tally.failed:
        click.echo("Nothing was replayed: no line of the file holds a delivery to send.", err=True)
    if not tally.complete:
        ctx.exit(1)

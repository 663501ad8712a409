"""`flask sandbox run`: play a fulfillment service against a running adapter, for development."""

import logging
import signal
import sys
import threading
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup

from sandbox.scripts import CANCELLATION_ANSWERS, Options
from sandbox.server import HOST, PATH, SandboxServer

from .schemas import REJECT_REASONS

sandbox_cli = AppGroup("sandbox", help="Play a fulfillment service against the adapter.")


def _log_to_stdout():
    """Show the sandbox's log lines (one per message received or sent) on stdout."""
    logger = logging.getLogger("sandbox")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _listens_at(url, port):
    """Tell whether a service URL points at the sandbox listening on `port`."""
    parts = urlsplit(url)
    return parts.hostname in (HOST, "localhost") and parts.port == port and parts.path == PATH


@sandbox_cli.command("run")
@click.option("--port", type=click.IntRange(0, 65535), default=5001, show_default=True,
              help="Loopback port to receive the adapter's messages on.")
@click.option("--adapter-url", default="http://127.0.0.1:5000", show_default=True,
              help="Base URL of the adapter; webhooks go to <URL>/webhooks/<service>.")
@click.option("--service", default="sandbox", show_default=True,
              help="Service key to play; its secret comes from the adapter's configuration.")
@click.option("--step-delay", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds between two webhooks of a script.")
@click.option("--reject", type=click.Choice(REJECT_REASONS), help="Reject every request with this reason.")
@click.option("--partial", is_flag=True, help="Ship the first line, then the rest in a second parcel.")
@click.option("--cancellations", type=click.Choice(CANCELLATION_ANSWERS), default="accept",
              show_default=True, help="Answer cancellation requests; after a reject it still ships.")
@click.option("--ship-after-cancel", is_flag=True,
              help="Report a shipment after accepting a cancellation (the FO needs attention).")
@click.option("--late-accept", is_flag=True,
              help="Answer a request even after it was withdrawn (the adapter answers 409).")
@click.option("--out-of-order", is_flag=True,
              help="Send each delivered event before its in_transit event, both correctly dated.")
@click.option("--duplicates", is_flag=True, help="Send every webhook twice with the same webhook-id.")
@click.option("--legacy", is_flag=True, help="Skip the accept and ship directly.")
@click.option("--fail", type=click.IntRange(min=0), default=0,
              help="Answer 500 to the first N messages, before handling them.")
@click.option("--hang", type=click.FloatRange(min=0), default=0,
              help="Wait this many seconds before answering each message.")
def run(port, adapter_url, service, step_delay, reject, partial, cancellations, ship_after_cancel,
        late_accept, out_of_order, duplicates, legacy, fail, hang):
    """Receive the adapter's messages and answer them with signed webhooks until stopped."""
    config = current_app.extensions["adapter_settings"].services.get(service)
    if config is None:
        raise click.UsageError(f"No service {service!r} in the adapter's configuration.")
    if reject and (partial or out_of_order or legacy):
        raise click.UsageError("--reject never ships: drop --partial, --out-of-order and --legacy.")
    if ship_after_cancel and cancellations != "accept":
        raise click.UsageError("--ship-after-cancel needs --cancellations accept.")
    options = Options(
        step_delay=step_delay, reject=reject, partial=partial, cancellations=cancellations,
        ship_after_cancel=ship_after_cancel, late_accept=late_accept, out_of_order=out_of_order,
        legacy=legacy,
    )
    webhooks_url = f"{adapter_url.rstrip('/')}/webhooks/{service}"
    # werkzeug explains a port in use and exits by itself.
    server = SandboxServer(config.secret, webhooks_url, options, port=port, fail=fail, hang=hang,
                           duplicates=duplicates)
    _log_to_stdout()
    stopping = threading.Event()

    def request_stop(signum, frame):
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        click.echo(f"Sandbox {service!r} receives at {server.url} and sends to {webhooks_url}; "
                   "stop with Ctrl-C.")
        if not _listens_at(config.url, port):
            click.echo(f"Warning: the adapter sends {service!r} messages to {config.url}, not here.")
        # A timed wait returns to the interpreter regularly, so the signal handlers
        # always get to run in this (the main) thread.
        while not stopping.wait(1):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        click.echo("Stopping...")
        server.stop()

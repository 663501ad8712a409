"""Measure peak memory and speed of `flask webhooks export` and `replay` over many stored deliveries.

Not a test: it prints figures and never fails on time. It stores `--count` deliveries in a
temporary SQLite store, runs the real `export` command into a file, then replays that file:
`--replay in-process` runs the real `replay` command through the app (every delivery verified,
applied and stored again); `--replay dry-run` only parses and re-signs each line, without
sending, to time the replay core alone. Peak RSS is the process's high-water mark
(`ru_maxrss`), so each figure includes every phase before it.

    python bench/replay_memory.py --count 100000 --replay dry-run
"""

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from adapter import recordings, store
from adapter.models import WebhookDelivery
from adapter.times import utcnow
from app import create_app
from handlers.webhooks_cli import webhooks_cli

TOKEN = "bench-token-0123456789"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ORDERS = 50
INSERT_BATCH = 1000
MESSAGE = "กรุณาส่งด่วน 📦🚚 delivery note"
ORDER = {
    "currency": "USD",
    "line_items": [{"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "price": "10.00",
                    "fulfillment_service": "acme"}],
}


def peak_rss_mib():
    """Return this process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_app(directory):
    """Return an app on a new SQLite store in `directory`, with one service and no dispatcher."""
    return create_app({
        "database": {"url": f"sqlite:///{directory}/bench.db"},
        "merchant": {"api_tokens": [TOKEN]},
        "outbox": {"in_app_dispatcher": False},
        "services": {"acme": {"workflow": "new", "url": "https://acme.example/hooks", "secret": SECRET}},
    })


def create_fulfillment_orders(app):
    """Create orders through the API and return their acme FO ids."""
    client = app.test_client()
    fo_ids = []
    for _ in range(ORDERS):
        response = client.post("/orders", json=ORDER, headers={"Authorization": f"Bearer {TOKEN}"})
        fo_ids.extend(fo["id"] for fo in response.get_json()["fulfillment_orders"] if fo["service"])
    return fo_ids


def delivery_rows(count, fo_ids):
    """Yield `count` stored-delivery rows: messages to the FOs, one in a thousand not UTF-8."""
    start = datetime(2026, 3, 1)
    for number in range(count):
        webhook_id = f"msg_bench_{number:08d}"
        body = json.dumps({
            "type": "fulfillment_order.message",
            "timestamp": "2026-03-01T10:00:00Z",
            "data": {"fulfillment_order_id": fo_ids[number % len(fo_ids)], "message": f"{MESSAGE} {number}"},
        }, ensure_ascii=False).encode()
        if number % 1000 == 999:
            body = body.replace(b"delivery", b"\xffdelivery")
        yield {
            "service": "acme",
            "webhook_id": webhook_id,
            "headers": {"content-type": "application/json", "webhook-id": webhook_id,
                        "webhook-timestamp": "1772359200", "webhook-signature": "v1,c3RhbGU="},
            "body": body,
            "received_at": start + timedelta(milliseconds=number),
            "outcome_status": 200,
            "outcome_code": "applied",
        }


def insert_deliveries(count, fo_ids):
    """Bulk-insert the rows in batches, so building them never holds them all."""
    rows = delivery_rows(count, fo_ids)
    with store.database.connection_context():
        while batch := [row for _, row in zip(range(INSERT_BATCH), rows, strict=False)]:
            with store.database.atomic():
                WebhookDelivery.insert_many(batch).execute()


def run_command(app, args, stdout):
    """Run a `flask webhooks` command in this process with `stdout` as its standard output."""
    with app.app_context(), contextlib.redirect_stdout(stdout):
        return webhooks_cli.main(args, prog_name="flask webhooks", standalone_mode=False)


def dry_run(path):
    """Parse and re-sign every line without sending it; return (re-signed, malformed) counts."""
    secrets = {"acme": SECRET}
    signed = malformed = 0
    with open(path, "rb") as file:
        for raw in file:
            try:
                delivery = recordings.parse_line(raw, secrets)
            except recordings.MalformedLine:
                malformed += 1
                continue
            recordings.signed_headers(delivery, SECRET, utcnow())
            signed += 1
    return signed, malformed


def report(phase, count, seconds):
    """Print one phase's figures."""
    rate = count / seconds if seconds else float("inf")
    print(f"{phase:<24}{seconds:>9.1f} s{rate:>11,.0f} /s   peak RSS {peak_rss_mib():7.1f} MiB")


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="deliveries to store (100000)")
    parser.add_argument("--replay", choices=("in-process", "dry-run"), default="in-process",
                        help="replay through the app, or only parse and re-sign (in-process)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        app = make_app(directory)
        print(f"Python {sys.version.split()[0]}, SQLite store, {options.count:,} deliveries")
        print(f"{'start':<24}{'':>26}   peak RSS {peak_rss_mib():7.1f} MiB")

        began = time.perf_counter()
        with app.app_context():
            insert_deliveries(options.count, create_fulfillment_orders(app))
        report("bulk insert", options.count, time.perf_counter() - began)

        recording = Path(directory) / "deliveries.jsonl"
        began = time.perf_counter()
        with open(recording, "w", encoding="utf-8") as out:
            run_command(app, ["export"], out)
        report("export", options.count, time.perf_counter() - began)
        print(f"{'':<24}file: {recording.stat().st_size / 2**20:.1f} MiB")

        began = time.perf_counter()
        if options.replay == "dry-run":
            signed, malformed = dry_run(recording)
            summary = f"re-signed {signed:,} lines, {malformed:,} malformed, none sent"
        else:
            captured = io.StringIO()
            exit_code = run_command(app, ["replay", str(recording)], captured)
            summary = f"{captured.getvalue().rstrip()}\nexit status {exit_code or 0}"
        report(f"replay ({options.replay})", options.count, time.perf_counter() - began)
        print(summary)
        store.database.close()


if __name__ == "__main__":
    main()

"""The outbox at scale on PostgreSQL (SPEC 4.1): four `flask outbox work` processes share one database.

Every message reaches the service exactly once as the service sees it (by webhook-id); a re-send
after a lost lease is allowed, but never while another send of the same id is in flight; messages
about one fulfillment order arrive in the order they were made. Size: STRESS_MESSAGES (default
2000). Figures are printed (`-s`).
"""

import os
import time
from collections import Counter, defaultdict

import pytest

import config
from adapter import outbox, schema, store
from adapter import settings as core_settings
from adapter.times import utcnow

from .procs import (
    NEEDS_POSTGRES,
    POSTGRES_URL,
    Sink,
    make_secret,
    outbox_statuses,
    postgres_database,
    restored_binding,
    start_outbox_worker,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.stress

MESSAGES = int(os.environ.get("STRESS_MESSAGES", "2000"))
WORKERS = 4
TARGETS = ("alpha", "beta")
FO_CHAINS = 40  # half the messages belong to one of these FOs and must keep their order
ENQUEUE_BATCH = 250
DELIVERY_TIMEOUT_SECONDS = max(60, MESSAGES / 40)


def report(text):
    print(f"\n[stress] {text}", flush=True)


@pytest.fixture
def own_binding():
    """Let the test bind the core to a database of its own; put the previous binding back after."""
    with restored_binding():
        yield


def enqueue_messages(count):
    """Store `count` messages in batches of transactions; return {message_id: (target, FO id, seq)}."""
    made = {}
    with store.database.connection_context():
        for start in range(0, count, ENQUEUE_BATCH):
            with store.transaction():
                for seq in range(start, min(start + ENQUEUE_BATCH, count)):
                    target = TARGETS[seq % len(TARGETS)]
                    fo_id = (seq // 2) % FO_CHAINS + 1 if seq % 4 < 2 else None
                    message = outbox.enqueue(target, "merchant.message",
                                             {"fulfillment_order_id": fo_id, "message": f"#{seq}"},
                                             utcnow(), fulfillment_order_id=fo_id)
                    made[message.message_id] = (target, fo_id, seq)
    return made


def test_four_workers_deliver_every_message_once_and_never_concurrently(tmp_path, own_binding):
    if not POSTGRES_URL:
        pytest.skip(NEEDS_POSTGRES)
    with Sink() as sink, postgres_database("stress_outbox") as url:
        config_path = write_config(
            tmp_path / "adapter.toml",
            {key: {"workflow": "new", "url": sink.url(f"/{key}"), "secret": make_secret(),
                   "timeout_seconds": 5} for key in TARGETS},
            outbox={"in_app_dispatcher": False, "poll_seconds": 0.2},
        )
        settings = config.load_settings(config_path, environ={"DATABASE_URL": url})
        core_settings.configure(settings)
        store.bind(store.open_database(url))
        schema.create_tables()
        workers = [start_outbox_worker(config_path, url, tmp_path / f"worker{n}.log") for n in range(WORKERS)]
        try:
            assert wait_until(lambda: all("Delivering to" in w.log_tail() for w in workers), 30), [
                w.log_tail(800) for w in workers]
            started = time.monotonic()
            made = enqueue_messages(MESSAGES)
            enqueued_in = time.monotonic() - started
            wait_until(lambda: len({r.webhook_id for r in sink.ok_receipts()}) >= len(made),
                       DELIVERY_TIMEOUT_SECONDS, interval=0.2)
            delivered_in = time.monotonic() - started
            time.sleep(1)  # room for a late duplicate to show up
            assert all(w.alive() for w in workers), [w.log_tail(800) for w in workers if not w.alive()]
        finally:
            codes = [worker.stop(30) for worker in workers]
        statuses = outbox_statuses(url)
        logs = [w.log_tail(200_000) for w in workers]

    receipts = sink.snapshot()
    sends = Counter(r.webhook_id for r in receipts)
    missing = set(made) - {r.webhook_id for r in receipts if 200 <= r.status <= 299}
    unknown = set(sends) - set(made)
    resends = {webhook_id: count for webhook_id, count in sends.items() if count > 1}
    overlaps = sink.overlapping()
    # Messages of one FO arrive in the order they were made (first sends, by arrival).
    first_arrival = {}
    for receipt in sorted(receipts, key=lambda r: r.start):
        first_arrival.setdefault(receipt.webhook_id, receipt.start)
    chains = defaultdict(list)
    for message_id, (target, fo_id, seq) in made.items():
        if fo_id is not None and message_id in first_arrival:
            chains[(target, fo_id)].append((first_arrival[message_id], seq))
    out_of_order = {key: [seq for _, seq in sorted(chain)] for key, chain in chains.items()
                    if [seq for _, seq in sorted(chain)] != sorted(seq for _, seq in chain)}

    report(
        f"outbox at scale: {len(made)} messages ({len(TARGETS)} targets, {FO_CHAINS} ordered FO chains), "
        f"{WORKERS} workers; enqueued in {enqueued_in:.1f} s, all delivered {delivered_in:.1f} s after the "
        f"first commit ({len(made) / max(delivered_in, 1e-9):.0f}/s); sends {len(receipts)}, sequential "
        f"re-sends {sum(count - 1 for count in resends.values())}, overlapping sends {len(overlaps)}; "
        f"worker exit codes {codes}; outbox rows {dict(statuses)}"
    )
    assert not missing, f"{len(missing)} messages never reached the service, e.g. {sorted(missing)[:5]}"
    assert not unknown, unknown
    assert not overlaps, f"webhook-ids in flight twice at once: {overlaps[:10]}"
    assert statuses == Counter({"delivered": len(made)}), statuses
    assert not out_of_order, f"FO messages out of order: {dict(list(out_of_order.items())[:3])}"
    assert codes == [0] * WORKERS, [log[-800:] for log in logs]
    assert all("Traceback" not in log for log in logs), [log[-3000:] for log in logs if "Traceback" in log]

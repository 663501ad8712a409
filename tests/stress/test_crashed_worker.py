"""A crashed dispatcher's claimed messages (SPEC 4.1): taken over on the same host once its sends are over.

The claim records its claimer (host, pid namespace, pid and start time). A dispatcher on the
same host takes over the messages of a claimer that is gone as soon as a send it may have left in
flight has ended (`takeover_after` after it last set their lease); a live claimer, or one on
another host, keeps them until the lease runs out. The process test kills a real `flask outbox
work` process (kill -9) in the middle of a send to a slow sink and times the recovery.
"""

import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from adapter import claims, models, outbox, schema, store
from adapter.models import OutboxMessage
from adapter.times import utcnow

from .procs import (
    Remote,
    Sink,
    make_secret,
    outbox_rows,
    start_outbox_worker,
    start_server,
    store_url,
    wait_until,
    write_config,
)
from .test_processes import init_db, new_order, ok

pytestmark = pytest.mark.stress

LEASE_SECONDS = 32
TAKEOVER_AFTER = 4


def a_stopped_process():
    """Return the claimer name of a process that ran on this host and has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        name = claims.this_process().rsplit("|", 2)[0] + f"|{child.pid}|{claims._start_time(child.pid)}"
    finally:
        child.kill()
        child.wait(10)
    return name


def a_running_process():
    """Return the claimer name of a process that still runs (the parent of this one)."""
    parent = os.getppid()
    return claims.this_process().rsplit("|", 2)[0] + f"|{parent}|{claims._start_time(parent)}"


HOLDERS = {
    "a stopped claimer on this host": (a_stopped_process, True),
    "a running claimer on this host": (a_running_process, False),
    "a claimer on another host": (lambda: "elsewhere|boot|1|4242|77", False),
    "a claimer of unknown origin": (lambda: None, False),
}


def claimed_by(holder, lease_set_at):
    """Store one message of `acme` as claimed by `holder`, its lease set at `lease_set_at`."""
    with store.transaction():
        message = outbox.enqueue("acme", "merchant.message", {"message": "hi"}, lease_set_at)
        OutboxMessage.update(
            status="sending", lease_token="theirs", lease_holder=holder,
            lease_until=lease_set_at + timedelta(seconds=LEASE_SECONDS),
        ).where(OutboxMessage.id == message.id).execute()
    return message


@pytest.mark.parametrize(("name", "seconds_since_lease", "taken"), [
    (name, seconds, gone and seconds > TAKEOVER_AFTER)
    for name, (_, gone) in HOLDERS.items()
    for seconds in (1, TAKEOVER_AFTER + 1)
])
def test_a_claim_takes_over_only_from_a_stopped_claimer_on_this_host_once_its_send_is_over(
    app, name, seconds_since_lease, taken
):
    make_holder, _ = HOLDERS[name]
    now = utcnow()
    with store.database.connection_context():
        message = claimed_by(make_holder(), now - timedelta(seconds=seconds_since_lease))
        claimed = claims.claim("acme", now, LEASE_SECONDS, 10, TAKEOVER_AFTER)
        assert [m.message_id for m in claimed] == ([message.message_id] if taken else [])
        row = OutboxMessage.get_by_id(message.id)
        assert (row.lease_token != "theirs") is taken
        if taken:
            assert row.lease_holder == claims.this_process()


def test_any_claimer_loses_its_messages_once_the_lease_ran_out(app):
    now = utcnow()
    with store.database.connection_context():
        message = claimed_by("elsewhere|boot|1|4242|77", now - timedelta(seconds=LEASE_SECONDS + 1))
        assert [m.id for m in claims.claim("acme", now, LEASE_SECONDS, 10, TAKEOVER_AFTER)] == [message.id]


def test_a_version_2_store_gets_the_claimer_column(app):
    table = OutboxMessage._meta.table_name
    with store.database.connection_context():
        store.database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN lease_holder')
        models.SchemaVersion.update(version=2).execute()
    schema.create_tables()
    with store.database.connection_context():
        assert "lease_holder" in {column.name for column in store.database.get_columns(table)}
        assert schema.stored_schema_version() == schema.SCHEMA_VERSION
        assert claimed_by(None, utcnow()).lease_holder is None


# ---- kill -9 a real worker in the middle of a send -----------------------------------------------

SERVICE_TIMEOUT_SECONDS = 2
SINK_DELAY_SECONDS = 0.5
POLL_SECONDS = 0.2
BATCH_SIZE = 3
MESSAGES = 12
# dispatcher.takeover_after: 2 × timeout + RECORD_EVERY_SECONDS + TAKEOVER_SLACK_SECONDS.
TAKEOVER_SECONDS = 2 * SERVICE_TIMEOUT_SECONDS + 2
# The survivor claims again once its own batch is sent.
SURVIVOR_BATCH_SECONDS = BATCH_SIZE * (SINK_DELAY_SECONDS + 0.3)
RECOVERY_BOUND_SECONDS = TAKEOVER_SECONDS + POLL_SECONDS + SURVIVOR_BATCH_SECONDS + 1
LEASE_BOUND_SECONDS = 2 * SERVICE_TIMEOUT_SECONDS + 30


def report(text):
    print(f"\n[stress] {text}", flush=True)


def test_kill_9_of_a_worker_mid_send_another_delivers_its_messages_within_the_bound(tmp_path):
    token, secret = f"stress-token-{secrets.token_hex(8)}", make_secret()
    started = []

    def note_start(path, webhook_id, body, attempt):
        started.append((webhook_id, time.monotonic()))

    with Sink(answer=note_start, delay_seconds=SINK_DELAY_SECONDS) as sink, \
            store_url(tmp_path, "stress_takeover") as url:
        config = write_config(
            tmp_path / "adapter.toml",
            {"acme": {"workflow": "new", "url": sink.url("/acme"), "secret": secret,
                      "timeout_seconds": SERVICE_TIMEOUT_SECONDS}},
            outbox={"in_app_dispatcher": False, "poll_seconds": POLL_SECONDS, "batch_size": BATCH_SIZE},
        )
        init_db(config, url)
        server = start_server(config, url, token, tmp_path / "gunicorn.log")
        workers = {}
        try:
            remote = Remote(server.base_url, token, {"acme": secret})
            for _ in range(MESSAGES):
                _, fo_id, _ = new_order(remote)
                ok(remote.merchant("POST", f"/fulfillment_orders/{fo_id}/fulfillment_request", {}))
            for n in range(2):
                worker = start_outbox_worker(config, url, tmp_path / f"worker-{n}.log")
                workers[worker.pid] = worker

            def in_flight_of_a_worker():
                """Return (worker, webhook-id) of a send the sink is answering right now, or None."""
                finished = {receipt.webhook_id for receipt in sink.snapshot()}
                holders = dict(outbox_rows(url, "message_id", "lease_holder"))
                for webhook_id, _ in reversed(started):
                    holder = holders.get(webhook_id) or ""
                    pid = int(holder.rsplit("|", 2)[1]) if holder.count("|") >= 4 else None
                    if webhook_id not in finished and pid in workers:
                        return workers[pid], webhook_id
                return None

            found = wait_until(in_flight_of_a_worker, 30, interval=0.01)
            assert found, "no worker was seen sending"
            victim, in_flight = found
            victim.kill()
            killed_at = time.monotonic()
            held = {message_id for message_id, status, holder in
                    outbox_rows(url, "message_id", "status", "lease_holder")
                    if status == "sending" and f"|{victim.pid}|" in (holder or "")}
            assert in_flight in held

            def delivered():
                return all(status == "delivered" for _, status in outbox_rows(url, "message_id", "status"))

            assert wait_until(delivered, LEASE_BOUND_SECONDS + 30, interval=0.1), outbox_rows(url, "status")
            done_at = time.monotonic()
        finally:
            for worker in workers.values():
                worker.stop(10)
            server.stop()

        receipts = sink.snapshot()
        resent = [r for r in receipts if r.webhook_id in held and r.start > killed_at]
        first_resend = min(r.start for r in resent) - killed_at
        all_resent = max(r.end for r in resent) - killed_at
        assert {r.webhook_id for r in resent} == held
        assert first_resend <= RECOVERY_BOUND_SECONDS, (first_resend, RECOVERY_BOUND_SECONDS)
        assert all_resent <= RECOVERY_BOUND_SECONDS + len(held) * (SINK_DELAY_SECONDS + 0.3)
        assert not sink.overlapping(), sink.overlapping()
        by_id = {}
        for receipt in receipts:
            assert receipt.headers.get("Idempotency-Key") == receipt.webhook_id, receipt.headers
            assert by_id.setdefault(receipt.webhook_id, receipt.body) == receipt.body, "a resend changed"
        assert sink.sends_per_id()[in_flight] == 2, "the send cut by the crash was not resent once"
        assert len(by_id) == MESSAGES
        report(
            f"crashed worker: kill -9 with {len(held)} messages claimed (1 in flight); the other "
            f"worker resent the first {first_resend:.1f} s and all {all_resent:.1f} s after the kill "
            f"(bound {RECOVERY_BOUND_SECONDS:.1f} s; the lease alone: {LEASE_BOUND_SECONDS} s); "
            f"{sink.resends()} resends, none overlapping; all {MESSAGES} delivered "
            f"{done_at - killed_at:.1f} s after the kill"
        )

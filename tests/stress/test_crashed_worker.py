"""A crashed dispatcher's claimed messages (SPEC 4.1): taken over on the same host once its sends are over.

The claim records its claimer (host, pid namespace, pid and start time). A dispatcher on the
same host takes over the messages of a claimer that is gone as soon as a send it may have left in
flight has ended (`takeover_after` after it last set their lease); a live claimer, or one on
another host, keeps them until the lease runs out. The process test kills a real `flask outbox
work` process (kill -9) in the middle of a send to a slow sink and times the recovery.
"""

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from adapter import claims, models, outbox, schema, store
from adapter.models import OutboxMessage
from adapter.times import utcnow

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

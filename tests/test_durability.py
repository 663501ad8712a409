"""Acknowledged means durable (SPEC 1): on SQLite a transaction returns only after a flush of the
write-ahead log that began once it had committed; writers committing meanwhile share a flush."""

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from adapter import store
from adapter.models import TimelineEvent
from adapter.wal_flush import FlushFailed, WalFlush

pytestmark = pytest.mark.skipif(os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"),
                                reason="SQLite's WAL flush; PostgreSQL commits with synchronous_commit = on")


class Disk:
    """os.fsync that remembers, for each flush of the WAL, which rows were committed when it began."""

    def __init__(self, database_path, monkeypatch, seconds=0.0):
        self.database_path = database_path
        self.wal = os.path.realpath(database_path + "-wal")
        self.seconds = seconds
        self.flushed = []  # the committed row ids each finished WAL flush covers
        self._fsync = os.fsync
        monkeypatch.setattr(os, "fsync", self.fsync)

    def committed(self):
        with sqlite3.connect(self.database_path) as reader:
            return {row[0] for row in reader.execute("SELECT id FROM timeline_event")}

    def fsync(self, fd):
        if os.path.realpath(f"/proc/self/fd/{fd}") != self.wal:
            return self._fsync(fd)
        covered = self.committed()
        time.sleep(self.seconds)  # a disk that takes its time lets writers pile up
        self._fsync(fd)
        self.flushed.append(covered)
        return None

    def covers(self, row_id):
        return any(row_id in covered for covered in list(self.flushed))


def write_event(order_id, number):
    with store.transaction():
        return TimelineEvent.create(order=order_id, at="2026-12-05T10:00:00", actor="system",
                                    kind="comment", message=f"event {number}").id


@pytest.fixture
def order_id(app, create_order):
    return create_order()["id"]


def test_sqlite_commits_without_flushing_and_waits_for_the_wal_flush(app, database_url, order_id,
                                                                      monkeypatch):
    path = database_url[len("sqlite:///"):]
    with store.database.connection_context():
        assert store.database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.database.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # normal
    disk = Disk(path, monkeypatch)

    with store.database.connection_context():
        row_id = write_event(order_id, 1)

    # The flush began after the commit (the row was visible to another connection) and ended
    # before the transaction returned.
    assert disk.covers(row_id)


def test_writers_committing_meanwhile_share_a_flush_and_each_waits_for_one(app, database_url, order_id,
                                                                            monkeypatch):
    disk = Disk(database_url[len("sqlite:///"):], monkeypatch, seconds=0.005)
    uncovered, written, faults = [], [], []

    def writer(number):
        try:
            with store.database.connection_context():
                for round_ in range(15):
                    row_id = write_event(order_id, number * 100 + round_)
                    written.append(row_id)
                    if not disk.covers(row_id):
                        uncovered.append(row_id)
        except Exception as exc:  # noqa: BLE001 - reported below, the thread must not die silently
            faults.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)

    assert faults == []
    assert len(written) == 120
    assert uncovered == []
    assert len(disk.flushed) < len(written) / 2


def test_a_removed_wal_file_beside_its_database_needs_no_flush(tmp_path):
    # SQLite removes the WAL file only once a checkpoint copied it into the (flushed) database.
    (tmp_path / "adapter.db").write_bytes(b"")
    WalFlush(str(tmp_path / "adapter.db")).after_commit()


def test_a_missing_database_is_a_failed_flush(tmp_path):
    with pytest.raises(FlushFailed):
        WalFlush(str(tmp_path / "adapter.db")).after_commit()


def test_the_wal_flushed_is_the_one_beside_the_real_database_file(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "adapter.db"
    connection = sqlite3.connect(real, isolation_level=None)
    connection.execute("PRAGMA journal_mode = wal")
    connection.execute("CREATE TABLE timeline_event (id INTEGER PRIMARY KEY)")
    connection.execute("INSERT INTO timeline_event VALUES (1)")
    (tmp_path / "link.db").symlink_to(real)
    disk = Disk(str(real), monkeypatch)
    WalFlush(str(tmp_path / "link.db")).after_commit()
    connection.close()
    assert disk.flushed == [{1}]


def test_a_failed_flush_is_a_503_and_nothing_more_is_acknowledged_until_looked_at(
        app, database_url, order_id, monkeypatch):
    path = database_url[len("sqlite:///"):]
    disk = Disk(path, monkeypatch)
    real = disk.fsync
    failures = [OSError(5, "Input/output error")]

    def failing(fd):
        if failures and os.path.realpath(f"/proc/self/fd/{fd}") == disk.wal:
            raise failures.pop()
        return real(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with store.database.connection_context():
        with pytest.raises(store.StoreUnavailable, match="may or may not be kept"):
            write_event(order_id, 1)
        # The disk answers again, but what it dropped may be gone: still no acknowledgement.
        with pytest.raises(store.StoreUnavailable):
            write_event(order_id, 2)
        assert "Input/output error" in Path(path + ".flush-failed").read_text(encoding="utf-8")

        os.unlink(path + ".flush-failed")  # the operator has checked the disk and the data
        row_id = write_event(order_id, 3)
    assert disk.covers(row_id)

"""The store: the database opened from a URL, one transaction per operation, and its faults.

This is the bottom layer: it imports nothing of the adapter but its errors and the SQLite
writer queue and WAL flush. The tables and their versioning live beside it, in `schema.py`.
"""

import contextlib
import itertools
import logging
import os
import re
import sqlite3
from urllib.parse import unquote, urlparse

import peewee
import psycopg2
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase

from .errors import StoreUnavailable
from .wal_flush import FlushFailed, WalFlush
from .writer_queue import WriterQueue

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()

SQLITE_BUSY_TIMEOUT_MS = 5000
# Connections per process, and how long a request waits for a free one before it answers 503.
POOL_SIZE = 32
POOL_WAIT_SECONDS = 5
BUSY = "The store is busy or unreachable; retry later."

# SQLite primary result codes (an extended code's low byte) meaning "try again later".
SQLITE_TRANSIENT_CODES = frozenset({
    5,   # SQLITE_BUSY
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL: the disk is full; writes work again once space returns
    14,  # SQLITE_CANTOPEN: e.g. no room for the journal
    15,  # SQLITE_PROTOCOL
})
# PostgreSQL SQLSTATEs (or their classes) meaning "try again later".
POSTGRES_TRANSIENT_CLASSES = ("08", "53", "57P")  # connection, resources, shutdown / starting
POSTGRES_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock
# What a refused connection says when the configuration, not the moment, is wrong.
POSTGRES_MISCONFIGURED_TEXT = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "role \"",
    "database \"",  # ... does not exist
    "invalid dsn",
    "invalid connection option",
)


class SqliteStore(peewee.SqliteDatabase):
    """SQLite in WAL mode whose writers take turns in a WriterQueue rather than SQLite's busy handler."""

    def __init__(self, path):
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # BEGIN IMMEDIATE takes the write lock up front, so two writers never both read a
        # state and then race to change it. A commit writes the WAL without flushing it
        # (`synchronous = normal`); `transaction()` returns only once a flush shared with the
        # writers committing meanwhile has put it on disk (`WalFlush`), so an acknowledged
        # change survives a power loss, not only a crash (SPEC 1).
        super().__init__(
            path,
            lock_type="IMMEDIATE",
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                "foreign_keys": 1,
                "synchronous": "normal",
            },
        )
        on_disk = path != ":memory:"
        self.writer_queue = WriterQueue(path, SQLITE_BUSY_TIMEOUT_MS / 1000) if on_disk else None
        self.wal_flush = WalFlush(path) if on_disk else None

    def writer_turn(self):
        """Wait for this writer's turn; the context yields False if it did not come in time."""
        if self.writer_queue is None:
            return contextlib.nullcontext(True)
        return self.writer_queue.turn()

    def make_durable(self):
        """Return once what this thread committed is on disk (a WAL flush, shared)."""
        if self.wal_flush is not None:
            self.wal_flush.after_commit()


class PreparingConnection(psycopg2.extensions.connection):
    """A connection that remembers which statements it has prepared on the server, and as what."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared = {}  # SQL text -> name of its prepared statement
        self.unconfirmed = {}  # the same, for PREPAREs not yet known to have run
        self.names = itertools.count(1)


class PostgresStore(PooledPostgresqlDatabase):
    """A pool of PostgreSQL connections; row locks order the writers, so there is no queue.

    A transaction's BEGIN, and the statements whose results nobody reads (`later`), wait to
    travel with its next statement or its COMMIT: one round trip instead of one each. The
    server runs them in the order they were asked for, each seeing the ones before, so only
    the moment a failure is reported moves — still inside the transaction, which it rolls back.

    The hot statements (`prepare=True`: those whose text is built once) are prepared on the
    server the first time a connection runs them, in the same round trip, and then only
    executed: the server plans them once per connection instead of at every run.
    """

    def begin(self, isolation_level=None):
        if self.is_closed():
            self.connect()  # now, as peewee's BEGIN would: connecting resets the transaction state
        level = isolation_level or self._isolation_level
        begin = "BEGIN"
        if level:
            begin += f" TRANSACTION ISOLATION LEVEL {self._adapter.isolation_level_str(level)}"
        self._state.waiting = [begin.encode()]
        self._state.begun = False

    def later(self, sql, params, prepare=False):
        """Run a statement whose result is not read: in a transaction, with the next one."""
        if not self.in_transaction():
            self.execute_sql(sql, params, prepare)
            return
        self._log_query(sql, params)
        with peewee.__exception_wrapper__:
            self._state.waiting.append(self._statement(self.cursor(), sql, params, prepare))

    def execute_sql(self, sql, params=None, prepare=False):
        if not prepare and not getattr(self._state, "waiting", None):
            return super().execute_sql(sql, params)
        self._log_query(sql, params)
        cursor = self.cursor()
        with peewee.__exception_wrapper__:
            statement = self._statement(cursor, sql, params, prepare)
        self._send(cursor, [*(self._take_waiting() or ()), statement])
        return cursor

    def commit(self):
        begun, waiting = getattr(self._state, "begun", True), self._take_waiting()
        if not begun and len(waiting) == 1:
            return  # the transaction ran no statement: nothing to send
        if not waiting:
            return super().commit()
        self._send(self.cursor(), [*waiting, b"COMMIT"])

    def rollback(self):
        begun = getattr(self._state, "begun", True)
        self._take_waiting()
        if not self.is_closed():
            self._state.conn.unconfirmed.clear()  # their PREPAREs were never sent
        if begun:
            super().rollback()

    def _take_waiting(self):
        waiting = getattr(self._state, "waiting", None)
        if waiting:
            self._state.waiting, self._state.begun = [], True
        return waiting

    def _statement(self, cursor, sql, params, prepare):
        """The text to send for one statement: itself, or an EXECUTE of it prepared on this
        connection (after its PREPARE, the first time)."""
        if not prepare:
            return cursor.mogrify(sql, params or ())
        connection = self._state.conn
        name = connection.prepared.get(sql) or connection.unconfirmed.get(sql)
        arguments = f"({', '.join(['%s'] * len(params))})" if params else ""
        if name is not None:
            return cursor.mogrify(f"EXECUTE {name}{arguments}", params or ())
        name = f"adapter_{next(connection.names)}"
        execute = cursor.mogrify(f"EXECUTE {name}{arguments}", params or ())
        connection.unconfirmed[sql] = name  # once its text is made: it will be sent
        return f"PREPARE {name}{_parameter_types(params)} AS {_numbered(sql)}; ".encode() + execute

    def _send(self, cursor, statements):
        connection = self._state.conn
        try:
            with peewee.__exception_wrapper__:
                cursor.execute(b"; ".join(statements))
        except BaseException:
            # Whether its PREPAREs ran is unknown (a rollback does not undo one): the next
            # use of those statements prepares them afresh, under new names.
            connection.unconfirmed.clear()
            raise
        connection.prepared.update(connection.unconfirmed)
        connection.unconfirmed.clear()

    def writer_turn(self):
        """Writers need no turn: yield True at once."""
        return contextlib.nullcontext(True)

    def make_durable(self):
        """Nothing to wait for: a commit returns once it is on disk (`synchronous_commit = on`)."""


def _parameter_types(params):
    """The PREPARE's parameter types: a whole number is a bigint and a list of them (ids) a
    bigint[], so an id from outside beyond a 32-bit column's range finds nothing rather than
    failing; the rest as the server infers."""
    if not params:
        return ""
    return f"({', '.join(_parameter_type(value) for value in params)})"


def _parameter_type(value):
    if type(value) is int:
        return "bigint"
    if isinstance(value, list) and all(type(item) is int for item in value):
        return "bigint[]"
    return "unknown"


def _numbered(sql):
    """psycopg2's placeholders (%s, and %% for a %) as PREPARE's ($1, $2, ...)."""
    numbers = itertools.count(1)
    return re.sub(r"%[s%]", lambda found: "%" if found[0] == "%%" else f"${next(numbers)}", sql)


def open_database(url):
    """Return an unconnected store for a `sqlite:///` or `postgresql://` URL."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    parsed = urlparse(url)
    return PostgresStore(
        parsed.path.lstrip("/"),
        user=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        host=parsed.hostname,
        port=parsed.port or 5432,
        connection_factory=PreparingConnection,
        max_connections=POOL_SIZE,
        stale_timeout=300,
        timeout=POOL_WAIT_SECONDS,
        connect_timeout=5,
    )


def bind(db):
    """Point every model at `db`."""
    database.initialize(db)


def init_app(app, url):
    """Bind the store at `url` and give each request a connection (opened when first needed)."""
    try:
        bind(open_database(url))
    except OSError as exc:
        raise SystemExit(f"cannot open the database: {exc}") from None

    @app.teardown_request
    def close(exc):
        # A pooled PostgreSQL connection goes back to the pool; a SQLite connection stays
        # open with its thread, so its pragmas are not set again on every request.
        if is_postgres() and not database.is_closed():
            database.close()


def run(sql, params):
    """Run a hot statement (its text built once); return the cursor. On PostgreSQL it is
    prepared on the server once per connection."""
    if is_postgres():
        return database.obj.execute_sql(sql, params, prepare=True)
    return database.execute_sql(sql, params)


def later(sql, params):
    """Run a hot write whose result is not read; on PostgreSQL it travels with the next statement."""
    if is_postgres():
        database.obj.later(sql, params, prepare=True)
    else:
        database.execute_sql(sql, params)


def is_postgres():
    """Tell whether the bound database is PostgreSQL."""
    return isinstance(database.obj, peewee.PostgresqlDatabase)


@contextlib.contextmanager
def transaction():
    """Run one operation atomically; a locked or unreachable store becomes StoreUnavailable (503).

    Inside a running transaction it simply joins it: the outer operation owns the
    commit, and a failure anywhere rolls back everything.
    """
    if database.in_transaction():
        yield
        return
    with database.writer_turn() as granted:
        if not granted:
            raise StoreUnavailable(BUSY)
        try:
            with database.atomic():
                yield
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailable(BUSY) from exc
            raise
    # Committed; acknowledged only once on disk. Waiting here, after the writer's turn, lets
    # the next writers commit meanwhile and share the flush.
    try:
        database.make_durable()
    except FlushFailed as exc:
        log.critical("the store stops accepting changes: %s", exc)
        raise StoreUnavailable(
            "The change was written but could not be made durable, so it may or may not be kept; "
            "the store accepts no more changes until an operator has checked it."
        ) from exc


def snapshot():
    """Read several tables as of one moment (outside a transaction; inside one, reuse it)."""
    if database.in_transaction():
        return contextlib.nullcontext()
    if is_postgres():
        return database.atomic(isolation_level="REPEATABLE READ")
    # A deferred transaction reads one WAL snapshot without taking the write lock.
    return database.atomic(lock_type="DEFERRED")


def driver_error(exc):
    """Return the database driver's exception behind `exc` (peewee wraps it, maybe twice), or None."""
    return next(driver_errors(exc), None)


def driver_errors(exc):
    """Yield the database driver's exceptions behind `exc`, nearest first, and those they followed."""
    seen, pending = set(), [exc]
    while pending:
        candidate = pending.pop(0)
        if not isinstance(candidate, BaseException) or id(candidate) in seen:
            continue
        if isinstance(candidate, sqlite3.Error | psycopg2.Error):
            yield candidate
        seen.add(id(candidate))
        pending.extend((*candidate.args[:1], candidate.__cause__, candidate.__context__))


def is_unavailable(exc):
    """Tell whether an exception means the store is locked, full or unreachable: retry later.

    Judged by the driver's error codes, not its wording, so every way a store can be away
    (restarting, shutting down, out of connections or disk) is covered.
    """
    if isinstance(exc, StoreUnavailable | MaxConnectionsExceeded):
        return True
    error = driver_error(exc)
    if isinstance(error, sqlite3.Error):
        # A COMMIT that fails on a full disk rolls back by itself, and the ROLLBACK peewee then
        # sends fails in turn ("no transaction is active"): the cause is further down the chain.
        return any(_sqlite_transient(found) for found in driver_errors(exc))
    if isinstance(error, psycopg2.Error):
        code = error.pgcode
        if code is None:
            # Connection-level failures carry no SQLSTATE: refused, reset, timed out,
            # or a server that is starting or shutting down.
            return isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError) and (
                not is_misconfigured(error)
            )
        return code.startswith(POSTGRES_TRANSIENT_CLASSES) or code in POSTGRES_TRANSIENT_CODES
    return False


def _sqlite_transient(error):
    if not isinstance(error, sqlite3.Error):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(error) or "busy" in str(error)
    return code & 0xFF in SQLITE_TRANSIENT_CODES


def is_misconfigured(exc):
    """Tell whether a failure to reach the store is the configuration's fault (credentials, name)."""
    error = driver_error(exc) or exc
    if isinstance(error, psycopg2.Error):
        if error.pgcode is not None:
            return error.pgcode.startswith("28") or error.pgcode == "3D000"
        text = str(error).lower()
        return any(marker in text for marker in POSTGRES_MISCONFIGURED_TEXT)
    return False

"""The database: opened from a URL, schema created and versioned, one transaction per operation."""

import contextlib
import os
from urllib.parse import unquote, urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase

from .errors import StoreUnavailable
from .writer_queue import WriterQueue

database = peewee.DatabaseProxy()

# Raise it whenever the models gain a table or an index: a database recording an older
# version gets what is missing on the next start, and one at the current version is left alone.
SCHEMA_VERSION = 2
SCHEMA_LOCK_KEY = 0x46554C46  # any constant shared by every process of this application
SQLITE_BUSY_TIMEOUT_MS = 5000
BUSY = "The store is busy or unreachable; retry later."


def open_database(url):
    """Return an unconnected peewee database for a `sqlite:///` or `postgresql://` URL."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # BEGIN IMMEDIATE takes the write lock up front, so two writers never
        # both read a state and then race to change it.
        db = peewee.SqliteDatabase(
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
        if path != ":memory:":
            db.writer_queue = WriterQueue(path, SQLITE_BUSY_TIMEOUT_MS / 1000)
        return db
    parsed = urlparse(url)
    return PooledPostgresqlDatabase(
        parsed.path.lstrip("/"),
        user=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        host=parsed.hostname,
        port=parsed.port or 5432,
        max_connections=32,
        stale_timeout=300,
        connect_timeout=5,
    )


def init_app(app, settings):
    """Open the configured store, create its tables, and give each request a connection."""
    from . import settings as core_settings

    core_settings.configure(settings)
    bind(open_database(settings.database_url))
    try:
        create_tables()
    except peewee.PeeweeException as exc:
        raise SystemExit(f"cannot open the database: {exc}".strip()) from None

    @app.before_request
    def connect():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def close(exc):
        # A pooled PostgreSQL connection goes back to the pool; a SQLite connection stays
        # open with its thread, so its pragmas are not set again on every request.
        if is_postgres() and not database.is_closed():
            database.close()


def is_postgres():
    """Tell whether the bound database is PostgreSQL."""
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def bind(db):
    """Point every model at `db`."""
    database.initialize(db)


def create_tables():
    """Create missing tables and indexes and record the schema version (idempotent)."""
    from . import models

    with database.connection_context():
        if stored_schema_version() == SCHEMA_VERSION:
            # Nothing to create. Even CREATE INDEX IF NOT EXISTS locks its table against
            # writes, so running it while other processes serve requests could deadlock them.
            return
        with database.atomic():
            if is_postgres():
                # Processes starting together would race on CREATE TABLE IF NOT EXISTS.
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            version = stored_schema_version()
            if version == SCHEMA_VERSION:
                return
            if version is not None and version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema version {version} is newer than this code's {SCHEMA_VERSION}"
                )
            database.create_tables(models.ALL_MODELS, safe=True)
            models.SchemaVersion.delete().execute()
            models.SchemaVersion.create(version=SCHEMA_VERSION)


def stored_schema_version():
    """The schema version the database records, or None for an empty database."""
    from . import models

    if not database.table_exists(models.SchemaVersion._meta.table_name):
        return None
    return models.SchemaVersion.select(peewee.fn.MAX(models.SchemaVersion.version)).scalar()


def drop_tables():
    """Drop every table (tests use it to start from nothing)."""
    from . import models

    with database.connection_context():
        database.drop_tables(models.ALL_MODELS, safe=True, cascade=is_postgres())


@contextlib.contextmanager
def transaction():
    """Run one operation atomically; a locked or unreachable store becomes a 503.

    Inside a running transaction it simply joins it: the outer operation owns the
    commit, and a failure anywhere rolls back everything.
    """
    if database.in_transaction():
        yield
        return
    with _writer_turn():
        try:
            with database.atomic():
                yield
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            if is_lock_or_connection_error(exc):
                raise StoreUnavailable(BUSY) from exc
            raise


@contextlib.contextmanager
def _writer_turn():
    queue = getattr(database.obj, "writer_queue", None)
    if queue is None:
        yield
        return
    with queue.turn() as granted:
        if not granted:
            raise StoreUnavailable(BUSY)
        yield


def snapshot():
    """Read several tables as of one moment (outside a transaction; inside one, reuse it)."""
    if database.in_transaction():
        return contextlib.nullcontext()
    if is_postgres():
        return database.atomic(isolation_level="REPEATABLE READ")
    # A deferred transaction reads one WAL snapshot without taking the write lock.
    return database.atomic(lock_type="DEFERRED")


def is_lock_or_connection_error(exc):
    """Tell whether a database error means 'try again later' rather than a bug."""
    text = str(exc).lower()
    return any(
        marker in text
        for marker in (
            "database is locked",
            "database is busy",
            "could not connect",
            "connection refused",
            "server closed the connection",
            "terminating connection",
            "connection already closed",
            "timeout expired",
        )
    )

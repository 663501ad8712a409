"""The tables: created on start, versioned, and waited for while the store is away."""

import logging
import threading

import peewee
from playhouse import migrate

from . import models, search_keys, store
from .errors import StoreUnavailable

log = logging.getLogger(__name__)

# Raise it whenever the models gain a table or an index: a database recording an older
# version gets what is missing on the next start, and one at the current version is left alone.
SCHEMA_VERSION = 4  # 4: indexes for an FO's latest request and the message that carried it
SCHEMA_LOCK_KEY = 0x46554C46  # any constant shared by every process of this application
BACKFILL_BATCH = 1000


def _amount_authorized_net_of_voids():
    # Version 2 stores what was authorized and not voided; a void used to void everything.
    models.Order.update(authorized_minor=0).where(models.Order.voided == True).execute()  # noqa: E712


def _add_columns(model, *names):
    """Add the model's columns `names` that its stored table lacks (a rerun adds nothing)."""
    table = model._meta.table_name
    present = {column.name for column in store.database.get_columns(table)}
    for name in names:
        field = model._meta.fields[name]
        if field.column_name not in present:
            migrator = migrate.SchemaMigrator.from_database(store.database.obj)
            migrate.migrate(migrator.add_column(table, field.column_name, field))


def _search_keys():
    # Version 3 finds orders by email and phone (`GET /orders?q=`): key the stored orders,
    # a batch of rows per statement so that a store of millions upgrades in minutes at most.
    _add_columns(models.Order, "email_key", "phone_key")
    Order = models.Order
    last = 0
    while True:
        batch = list(
            Order.select(Order.id, Order.email, Order.shipping_address)
            .where(Order.id > last).order_by(Order.id).limit(BACKFILL_BATCH).namedtuples()
        )
        if not batch:
            return
        last = batch[-1].id
        keyed = [
            (order.id, search_keys.email_key(order.email),
             search_keys.phone_key_of_address(order.shipping_address))
            for order in batch
        ]
        keyed = [row for row in keyed if row[1] is not None or row[2] is not None]
        if keyed:
            param = store.database.obj.param
            values = ", ".join([f"({param}, {param}, {param})"] * len(keyed))
            store.database.execute_sql(
                f"UPDATE orders SET email_key = v.column2, phone_key = v.column3"
                f" FROM (VALUES {values}) AS v WHERE orders.id = v.column1",
                [value for row in keyed for value in row],
            )


def _actor_names():
    # Version 3 names the merchant token that acted; earlier events name none.
    _add_columns(models.TimelineEvent, "actor_name")


def _outbox_lease_holder():
    # Version 3 records who claimed a message, so a dead claimer's messages are taken over soon.
    _add_columns(models.OutboxMessage, "lease_holder")


# What an older database needs, besides missing tables and indexes, to reach each version:
# steps run in order after missing tables are created and before missing indexes are.
UPGRADES = {2: [_amount_authorized_net_of_voids], 3: [_search_keys, _actor_names, _outbox_lease_holder]}


class SchemaError(Exception):
    """The store cannot serve this code: refused credentials, no such database, a newer schema."""


def create_tables():
    """Create missing tables and indexes and record the schema version (idempotent)."""
    database = store.database
    with database.connection_context():
        if stored_schema_version() == SCHEMA_VERSION:
            # Nothing to create. Even CREATE INDEX IF NOT EXISTS locks its table against
            # writes, so running it while other processes serve requests could deadlock them.
            return
        with database.atomic():
            if store.is_postgres():
                # Processes starting together would race on CREATE TABLE IF NOT EXISTS.
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            version = stored_schema_version()
            if version == SCHEMA_VERSION:
                return
            if version is not None and version > SCHEMA_VERSION:
                raise SchemaError(
                    f"database schema version {version} is newer than this code's {SCHEMA_VERSION}"
                )
            ordered = peewee.sort_models(models.ALL_MODELS)
            for model in ordered:
                model._schema.create_table(safe=True)
            # Before the indexes: an index may cover a column an upgrade adds.
            for reached in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                for step in UPGRADES.get(reached + 1, []):
                    step()
            for model in ordered:
                model._schema.create_indexes(safe=True)
            models.SchemaVersion.delete().execute()
            models.SchemaVersion.create(version=SCHEMA_VERSION)
        database.make_durable()


def stored_schema_version():
    """The schema version the database records, or None for an empty database."""
    if not store.database.table_exists(models.SchemaVersion._meta.table_name):
        return None
    return models.SchemaVersion.select(peewee.fn.MAX(models.SchemaVersion.version)).scalar()


def drop_tables():
    """Drop every table (tests use it to start from nothing)."""
    with store.database.connection_context():
        store.database.drop_tables(models.ALL_MODELS, safe=True, cascade=store.is_postgres())


class Readiness:
    """Whether the tables are known to be in place; while the store is away, checked again per request."""

    def __init__(self):
        self._ready = threading.Event()
        self._checking = threading.Lock()

    def check(self):
        """Make sure the tables exist; raise StoreUnavailable while the store cannot be reached."""
        if self._ready.is_set():
            return
        with self._checking:
            if self._ready.is_set():
                return
            try:
                create_tables()
            except peewee.PeeweeException as exc:
                if store.is_unavailable(exc):
                    raise StoreUnavailable(store.BUSY) from exc
                raise
            self._ready.set()
            log.info("the store is reachable; its schema is ready")


def init_app(app):
    """Create the tables on start; ride out a store that is away, stop on one that is misconfigured.

    A store that refuses the credentials, lacks the database or holds a newer schema, or a
    SQLite file that cannot be opened, stops the start with one line (SystemExit). A PostgreSQL
    server that is merely unreachable, starting or shutting down lets the app start: requests
    answer 503 until the tables are confirmed.
    """
    readiness = Readiness()
    try:
        readiness.check()
    except StoreUnavailable as exc:
        reason = " ".join(str(exc.__cause__).split())
        if not store.is_postgres():
            # A SQLite file that cannot be opened on start is a path or disk to fix, not a wait.
            raise SystemExit(f"cannot open the database: {reason}") from None
        log.warning("the store is unavailable (%s); answering 503 until it is back", reason)
    except SchemaError as exc:
        raise SystemExit(f"cannot use the database: {exc}") from None
    except peewee.PeeweeException as exc:
        raise SystemExit(f"cannot open the database: {' '.join(str(exc).split())}") from None

    @app.before_request
    def tables_ready():
        readiness.check()

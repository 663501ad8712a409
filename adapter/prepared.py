"""Statements of the hot paths, with their SQL written once per shape.

peewee builds a query's SQL from its expression tree on every call, and for the short
statements of a webhook that costs several times what running them does. These helpers cover
the simplest shapes — insert a row, select or update rows by equality — and keep the SQL of
each shape (per database kind, model and column list), converting values exactly as the
models' fields do.
"""

import functools

import peewee

from . import store
from .store import database


def _column(model, name):
    quote = database.obj.quote
    return f"{quote[0]}{model._meta.fields[name].column_name}{quote[1]}"


def _table(model):
    quote = database.obj.quote
    return f"{quote[0]}{model._meta.table_name}{quote[1]}"


def _params(model, values):
    fields = model._meta.fields
    return [fields[name].db_value(value) for name, value in values.items()]


@functools.cache
def _insert_sql(kind, model, names, conflict_on):
    columns = ", ".join(_column(model, name) for name in names)
    marks = ", ".join([database.obj.param] * len(names))
    conflict = ""
    if conflict_on:
        conflict = f" ON CONFLICT ({', '.join(_column(model, name) for name in conflict_on)}) DO NOTHING"
    return f"INSERT INTO {_table(model)} ({columns}) VALUES ({marks}){conflict}"


@functools.cache
def _select_sql(kind, model, names):
    return f"SELECT {_columns(model)} FROM {_table(model)} WHERE {_equal_to(model, names, ' AND ')}"


def _columns(model, alias=None):
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + _column(model, field.name) for field in model._meta.sorted_fields)


@functools.cache
def _update_sql(kind, model, names, where_names):
    return (
        f"UPDATE {_table(model)} SET {_equal_to(model, names, ', ')} "
        f"WHERE {_equal_to(model, where_names, ' AND ')}"
    )


def _equal_to(model, names, separator, alias=None):
    prefix = f"{alias}." if alias else ""
    return separator.join(f"{prefix}{_column(model, name)} = {database.obj.param}" for name in names)


def insert_later(model, **values):
    """Insert one row whose result is not read: on PostgreSQL it travels with the next statement."""
    sql = _insert_sql(type(database.obj), model, tuple(values), None)
    store.later(sql, _params(model, values))


def insert_returning_id(model, conflict_on=None, **values):
    """Insert one row and return its new id.

    `conflict_on` names the fields of a unique index: a row whose values there are taken
    already is not inserted, and None is returned.
    """
    postgres = isinstance(database.obj, peewee.PostgresqlDatabase)
    sql = _insert_sql(type(database.obj), model, tuple(values), conflict_on)
    cursor = store.run(sql + (" RETURNING id" if postgres else ""), _params(model, values))
    if postgres:
        row = cursor.fetchone()
        return row[0] if row is not None else None
    return cursor.lastrowid if cursor.rowcount else None


def get_or_none(model, **equals):
    """Return the model instance whose fields equal `equals`, or None."""
    sql = _select_sql(type(database.obj), model, tuple(equals))
    return _instance(model, store.run(sql, _params(model, equals)).fetchone())


def locked_with_parent(parent, model, link, beside=None, children=None, **equals):
    """Lock the `parent` row that the `model` row whose fields equal `equals` links to, then
    read both in one statement; return (parent, row), or Nones when there is no such row.

    On PostgreSQL the lock is a row lock (FOR UPDATE, until the transaction ends) that travels
    with the read, in one round trip; the read starts once the lock is held, so it sees
    whatever the lock's previous holder committed. On SQLite the transaction has held the
    write lock since BEGIN IMMEDIATE, so there is only the read.

    `beside=(other, other_link)` also reads the `other` row the `model` row links to through
    its field `other_link`, returned third. `children=(child, child_link)` also returns, last,
    the list of `child` rows linking to the `model` row through `child_link`, in id order: on
    PostgreSQL in the same read, as one JSON array (so a child's columns must be integers).
    """
    lock, read = _locked_read_sql(
        type(database.obj), parent, model, link, beside, children, tuple(equals)
    )
    params = _params(model, equals)
    if lock is not None:
        store.later(lock, params)
    row = store.run(read, params).fetchone()
    models = (parent, model) if beside is None else (parent, model, beside[0])
    if row is None:
        return (None,) * (len(models) + (children is not None))
    found, start = [], 0
    for each in models:
        end = start + len(each._meta.sorted_fields)
        found.append(_instance(each, row[start:end]))
        start = end
    if children is not None:
        found.append(_children(children, found[1], row[start:]))
    return tuple(found)


def _children(children, row, read):
    """The `children` rows of `row`: read with it on PostgreSQL (`read`), read now on SQLite."""
    child, child_link = children
    if store.is_postgres():
        return [_instance(child, values) for values in read[0] or ()]
    return list(child.select().where(getattr(child, child_link) == row.id).order_by(child.id))


@functools.cache
def _locked_read_sql(kind, parent, model, link, beside, children, names):
    """(lock, read): the lock statement (PostgreSQL; None on SQLite) and the read of the rows."""
    columns = f"{_columns(parent, 'p')}, {_columns(model, 'm')}"
    joins = f"JOIN {_table(parent)} AS p ON p.{_column(parent, 'id')} = m.{_column(model, link)}"
    if beside is not None:
        other, other_link = beside
        columns += f", {_columns(other, 'b')}"
        joins += f" JOIN {_table(other)} AS b ON b.{_column(other, 'id')} = m.{_column(model, other_link)}"
    postgres = issubclass(kind, peewee.PostgresqlDatabase)
    if children is not None and postgres:
        child, child_link = children
        integers = peewee.IntegerField | peewee.ForeignKeyField
        if not all(isinstance(field, integers) for field in child._meta.sorted_fields):
            raise TypeError(f"{child.__name__} rows cannot be read as JSON exactly")
        columns += (
            f", (SELECT json_agg(json_build_array({_columns(child, 'c')}) "
            f"ORDER BY c.{_column(child, 'id')}) FROM {_table(child)} AS c "
            f"WHERE c.{_column(child, child_link)} = m.{_column(model, 'id')})"
        )
    read = (
        f"SELECT {columns} FROM {_table(model)} AS m {joins} "
        f"WHERE {_equal_to(model, names, ' AND ', 'm')}"
    )
    if not postgres:
        return None, read
    lock = (
        f"SELECT 1 FROM {_table(parent)} WHERE {_column(parent, 'id')} IN "
        f"(SELECT {_column(model, link)} FROM {_table(model)} "
        f"WHERE {_equal_to(model, names, ' AND ')}) FOR UPDATE"
    )
    # The read locks the order too: held already from the statement before it, unless the row
    # was committed in between (it was invisible to the lock, so nothing was locked).
    return lock, read + " FOR UPDATE OF p"


def _instance(model, row):
    if row is None:
        return None
    instance = model(__no_default__=True)
    fields = model._meta.sorted_fields
    instance.__data__ = {
        field.name: field.python_value(value) for field, value in zip(fields, row, strict=True)
    }
    return instance


def update(model, where, **values):
    """Set `values` on the rows whose fields equal `where`; return how many rows changed."""
    sql = _update_sql(type(database.obj), model, tuple(values), tuple(where))
    return store.run(sql, _params(model, values) + _params(model, where)).rowcount


def update_later(model, where, **values):
    """Set `values` on the rows whose fields equal `where`, the count not read (see `insert_later`)."""
    sql = _update_sql(type(database.obj), model, tuple(values), tuple(where))
    store.later(sql, _params(model, values) + _params(model, where))

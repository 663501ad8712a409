"""Rows read for rendering by the ids they belong to, with SQL text built once (see RowsByIds)."""

import json
from datetime import datetime

from peewee import (
    SQL,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
    Value,
    fn,
)

from . import store
from .models import JSONField


class RowsByIds:
    """A SELECT of the rows belonging to a list of ids, its SQL text built once per store kind.

    peewee builds a statement from its expression tree on every run, and renders each value
    of an IN list as a node of its own: for a page of orders that cost more than running the
    statements (and converting a row through a model's fields costs more than converting it
    here). Here the ids are the statement's one parameter (an array on PostgreSQL, JSON
    text read by `json_each` on SQLite), so the text never changes and is kept. Each row's
    values become their fields' Python values once, here, so the renderers see one form.
    `latest` keeps only the row with the highest id among those of `ids`.
    """

    def __init__(self, row_type, column, fields=None, order_by=None, join=None, latest=False):
        self.row_type = row_type
        self.latest = latest
        self.column = column
        model = column.model
        self.fields = fields or [model._meta.columns[name] for name in row_type._fields]
        self.order_by = order_by or (model.id,)
        self.join = join
        self.sql = {}
        self.converters = {}

    def _build(self, where):
        query = self.column.model.select(*self.fields)
        for join in self.join if isinstance(self.join, list) else [self.join]:
            if join is not None:
                query = query.join(*join) if isinstance(join, tuple) else query.join(join)
        return query.where(where).order_by(*self.order_by)

    def rows(self, ids):
        """Return the rows of `ids` as `row_type` tuples of Python values."""
        postgres = store.is_postgres()
        param = _ids_param(ids, postgres)
        sql = self.sql.get(postgres)
        if sql is None:
            sql = self.sql[postgres] = self._sql(self._build(self._where(param, postgres)))
            self.converters[postgres] = _converters(self.fields, postgres)
        return self._made(store.run(sql, (param,)), self.converters[postgres])

    def _where(self, param, postgres):
        if postgres:
            where = self.column == fn.ANY(Value(param, unpack=False))
        else:
            where = self.column.in_(SQL("(SELECT value FROM json_each(?))", (param,)))
        if self.latest:
            model = self.column.model
            where = model.id == model.select(fn.MAX(model.id)).where(where)
        return where

    @staticmethod
    def _sql(query):
        return store.database.get_sql_context().sql(query).query()[0]

    def _made(self, rows, converters):
        make = self.row_type._make
        if not converters:
            return [make(row) for row in rows]
        made = []
        for row in rows:
            values = list(row)
            for index, convert in converters:
                if values[index] is not None:
                    values[index] = convert(values[index])
            made.append(make(values))
        return made

    def json_sql(self):
        """PostgreSQL: the same rows as one JSON array of value arrays (NULL when none), in order."""
        if "json" not in self.sql:
            number = fn.ROW_NUMBER().over(order_by=list(self.order_by))
            query = self._build(self._where([], True)).select_extend(number).order_by()
            values = [f"c{index}" for index in range(len(self.fields))]
            order = f"c{len(values)}"
            self.sql["json"] = (
                f"SELECT json_agg(json_build_array({', '.join(values)}) ORDER BY {order}) "
                f"FROM ({self._sql(query)}) AS q({', '.join([*values, order])})"
            )
            self.converters["json"] = _json_converters(self.fields)
        return self.sql["json"]

    def from_json(self, rows):
        """Return the `row_type` tuples of what `json_sql` read."""
        return self._made(rows or (), self.converters["json"])


def together(*reads):
    """Run several (RowsByIds, ids) reads; return their rows, a list per read.

    On PostgreSQL they are one statement, one round trip: each read's rows come back as one
    JSON array, its values made Python values here. SQLite has no server to go to: the reads
    run one after the other (a read of no ids not at all).
    """
    if not store.is_postgres():
        return [read.rows(ids) if ids else [] for read, ids in reads]
    sql = "SELECT " + ", ".join(f"({read.json_sql()})" for read, _ in reads)
    row = store.run(sql, [list(ids) for _, ids in reads]).fetchone()
    return [read.from_json(rows) for (read, _), rows in zip(reads, row, strict=True)]


def _ids_param(ids, postgres):
    ids = list(ids)
    return ids if postgres else json.dumps(ids)


def _json_converters(fields):
    """(index, function) for each column JSON does not carry as its Python value: times come
    as ISO text, JSON columns as the text they hold."""
    converters = []
    for index, column in enumerate(fields):
        if isinstance(column, JSONField):
            converters.append((index, column.python_value))
        elif isinstance(column, DateTimeField):
            converters.append((index, datetime.fromisoformat))
        elif not isinstance(column, IntegerField | ForeignKeyField | TextField | CharField | BooleanField):
            raise TypeError(f"{column} cannot be read as JSON exactly")
    return converters


def _converters(fields, postgres):
    """(index, function) for each column whose driver value is not yet its Python value.

    psycopg2 returns times and booleans as Python values; SQLite returns text and integers.
    JSON is text on both.
    """
    converters = []
    for index, column in enumerate(fields):
        if isinstance(column, JSONField) or (
            not postgres and isinstance(column, DateTimeField | BooleanField)
        ):
            converters.append((index, column.python_value))
    return converters

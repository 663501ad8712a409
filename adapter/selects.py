"""Rows read for rendering by the ids they belong to, with SQL text built once (see RowsByIds)."""

import json

from peewee import SQL, BooleanField, DateTimeField, Value, fn

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
        ids = list(ids)
        param = ids if postgres else json.dumps(ids)
        sql = self.sql.get(postgres)
        if sql is None:
            if postgres:
                where = self.column == fn.ANY(Value(param, unpack=False))
            else:
                where = self.column.in_(SQL("(SELECT value FROM json_each(?))", (param,)))
            if self.latest:
                model = self.column.model
                where = model.id == model.select(fn.MAX(model.id)).where(where)
            sql, _ = store.database.get_sql_context().sql(self._build(where)).query()
            self.sql[postgres] = sql
            self.converters[postgres] = _converters(self.fields, postgres)
        converters = self.converters[postgres]
        make = self.row_type._make
        if not converters:
            return [make(row) for row in store.database.execute_sql(sql, (param,))]
        rows = []
        for row in store.database.execute_sql(sql, (param,)):
            values = list(row)
            for index, convert in converters:
                if values[index] is not None:
                    values[index] = convert(values[index])
            rows.append(make(values))
        return rows


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

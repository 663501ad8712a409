"""Health check and the OpenAPI document."""

import peewee
from flask import Blueprint, current_app

from adapter import store
from adapter.errors import StoreUnavailable

from . import openapi, schemas
from .openapi import documented
from .responses import dump

bp = Blueprint("meta", __name__)
health_out = schemas.HealthSchema()


@bp.get("/healthz")
@documented("200 when the store answers, 503 when it does not.", response=health_out, tag="Operations")
def healthz():
    try:
        store.database.execute_sql("SELECT 1")
    except peewee.PeeweeException as exc:
        raise StoreUnavailable("The store does not answer.") from exc
    return dump(health_out, {"status": "ok"})


@bp.get("/openapi.json")
@documented("This OpenAPI 3.1 document.", tag="Operations")
def openapi_document():
    return openapi.document(current_app), 200, {"Content-Type": "application/json"}

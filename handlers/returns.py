"""Merchant API: the return lifecycle."""

from flask import Blueprint

from adapter import rendering, returns

from . import schemas
from .auth import require_merchant_token
from .openapi import documented
from .parsing import json_body, now
from .responses import rendered

bp = Blueprint("returns", __name__)
bp.before_request(require_merchant_token)

empty = schemas.EmptySchema()
return_out = schemas.ReturnOutSchema()


def _action(action, summary):
    @documented(summary, body=empty, response=return_out, errors=(409,), tag="Returns")
    def view(return_id):
        json_body(empty)
        return rendered(rendering.return_views([returns.advance_return(return_id, action, now())])[0])

    view.__name__ = action
    bp.add_url_rule(f"/returns/<id:return_id>/{action}", action, view, methods=["POST"])


_action("approve", "Approve a return the customer requested.")
_action("decline", "Decline a return the customer requested.")
_action("complete_inspection", "Record that the returned items were inspected.")
_action("close", "Close the return: nothing is left to do.")

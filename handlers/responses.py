"""Writing responses: JSON answers shaped by a schema, or views already in their schema's shape."""

import json


def dump(schema, value, status=200):
    """Answer with `value` shaped by `schema`."""
    return (
        json.dumps(schema.dump(value), ensure_ascii=False),
        status,
        {"Content-Type": "application/json"},
    )


def rendered(value, status=200):
    """Answer with `value` as it is: a view already shaped as its response schema dumps it."""
    return json.dumps(value, ensure_ascii=False), status, {"Content-Type": "application/json"}

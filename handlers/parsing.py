"""Reading requests: JSON bodies and query strings checked by the schemas, path ids, the request's clock."""

import json
import re

from flask import g, request
from marshmallow import ValidationError
from werkzeug.routing import IntegerConverter

from adapter.errors import MalformedJSON, UnsupportedMediaType, ValidationFailed
from adapter.times import utcnow


def flatten_errors(messages, prefix=""):
    """Turn marshmallow's nested messages into `{"a.0.b": [...]}`."""
    flat = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                flat.update(flatten_errors(value, name))
            else:
                flat[name] = [str(message) for message in value] if isinstance(value, list) else [
                    str(value)
                ]
    else:
        flat[prefix or "body"] = [str(message) for message in messages]
    return flat


def is_json(mimetype):
    """Tell whether a content type is JSON (`application/json` or `application/*+json`)."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def parse_json(raw):
    """Parse JSON bytes strictly (UTF-8, no NaN, no lone surrogates, no NUL characters)."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if UNPAIRED_SURROGATE.search(raw):
            # Escaped surrogates are fine in pairs (emoji); a lone one cannot be stored as UTF-8.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJSON("The body has an unpaired UTF-16 surrogate escape.") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedJSON(f"The body is not valid JSON: {exc}") from None
    if b"\\u0000" in raw:
        raise ValidationFailed({"body": ["NUL characters (\\u0000) are not accepted in text."]})
    return data


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def load(schema, data):
    """Validate `data` with `schema`; raise ValidationFailed naming each bad field."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ValidationFailed(flatten_errors(exc.messages)) from None


def json_body(schema):
    """Read, parse and validate the request's JSON body (an empty body is `{}`)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data = {}
    else:
        if not is_json(request.mimetype):
            raise UnsupportedMediaType("Send the body as application/json.")
        data = parse_json(raw)
    if not isinstance(data, dict):
        raise ValidationFailed({"body": ["Must be a JSON object."]})
    return load(schema, data)


def query_args(schema):
    """Validate the query string with `schema`."""
    args = request.args.to_dict()
    bad = [name for name, value in args.items() if "\x00" in value or "\x00" in name]
    if bad:
        raise ValidationFailed({name: ["NUL characters are not accepted."] for name in bad})
    return load(schema, args)


MAX_STORED_ID = 2**63 - 1  # the largest id a 64-bit id column holds
UNPAIRED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


class IdConverter(IntegerConverter):
    """Path ids: an id beyond 64 bits is one that does not exist, so it reads as 0 (404)."""

    def to_python(self, value):
        number = super().to_python(value)
        # Refusing the match instead would make werkzeug answer 405 for the path.
        return number if number <= MAX_STORED_ID else 0


def now():
    """Return the time this request is judged at: one moment for all of it."""
    if "now" not in g:
        g.now = utcnow()
    return g.now

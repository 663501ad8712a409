"""`GET /docs`: the OpenAPI document rendered for people, on the server, with nothing from outside."""

import json

from flask import Blueprint, current_app, render_template

from . import openapi
from .admin.safety import HEADERS

bp = Blueprint(
    "docs", __name__, template_folder="docs_templates", static_folder="docs_static",
    static_url_path="/docs/static",
)
METHODS = ("get", "post", "put", "patch", "delete")
CONSTRAINTS = (
    ("format", "format {}"),
    ("pattern", "pattern {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("default", "default {}"),
)


def _ref_name(ref):
    return ref.rsplit("/", 1)[-1]


def kind_of(schema):
    """Return a schema's type as [(text, component name or None)], components named as links."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return [(name, name)]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            parts = []
            for index, option in enumerate(schema[key]):
                parts += ([(" or ", None)] if index else []) + kind_of(option)
            return parts
    if "const" in schema:
        return [(json.dumps(schema["const"]), None)]
    types = schema.get("type", "any")
    types = types if isinstance(types, list) else [types]
    parts = []
    for index, name in enumerate(types):
        parts += [(" or ", None)] if index else []
        if name == "array":
            parts += [("array of ", None)] + kind_of(schema.get("items", {}))
        else:
            parts.append((name, None))
    return parts


def constraints_of(schema):
    """Return what a value must satisfy beyond its type, in words."""
    found = [
        template.format(json.dumps(schema[key]) if key == "default" else schema[key])
        for key, template in CONSTRAINTS if key in schema
    ]
    for holder in (schema, schema.get("items", {})):
        if "enum" in holder:
            found.append("one of: " + ", ".join(json.dumps(value) for value in holder["enum"]))
    return found


def _fields(schema):
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "required": name in required,
            "kind": kind_of(prop),
            "constraints": constraints_of(prop),
            "description": prop.get("description", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _parameters(operation):
    return [
        {
            "name": parameter["name"],
            "in": parameter["in"],
            "required": parameter.get("required", False),
            "kind": kind_of(parameter["schema"]),
            "constraints": constraints_of(parameter["schema"]),
            "description": parameter.get("description", ""),
        }
        for parameter in operation.get("parameters", ())
    ]


def _content_kind(container):
    content = container.get("content", {})
    return [
        {"media_type": media_type, "kind": kind_of(media.get("schema", {}))}
        for media_type, media in content.items()
    ]


def _operation(method, path, operation):
    return {
        "anchor": operation["operationId"],
        "method": method.upper(),
        "path": path,
        "summary": operation.get("summary", ""),
        "description": operation.get("description", ""),
        "secured": bool(operation.get("security")),
        "parameters": _parameters(operation),
        "body": _content_kind(operation.get("requestBody", {})),
        "body_description": operation.get("requestBody", {}).get("description", ""),
        "responses": [
            {
                "status": status,
                "description": response.get("description", ""),
                "content": _content_kind(response),
                "headers": sorted(response.get("headers", {})),
                "links": sorted(response.get("links", {})),
            }
            for status, response in operation["responses"].items()
        ],
    }


def page_of(document):
    """Return what the page shows: operations by tag, the messages sent, and every schema."""
    groups = {tag["name"]: {"tag": tag, "operations": []} for tag in document.get("tags", ())}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["Other"])[0]
                groups.setdefault(tag, {"tag": {"name": tag}, "operations": []})
                groups[tag]["operations"].append(_operation(method, path, operation))
    return {
        "info": document["info"],
        "version": document["openapi"],
        "groups": [group for group in groups.values() if group["operations"]],
        "webhooks": [
            _operation("post", name, item["post"]) for name, item in document.get("webhooks", {}).items()
        ],
        "schemas": [
            {
                "name": name,
                "description": schema.get("description", ""),
                "fields": _fields(schema),
                "example": json.dumps(schema["example"], indent=2, ensure_ascii=False)
                if "example" in schema else None,
            }
            for name, schema in sorted(document["components"]["schemas"].items())
        ],
    }


@bp.get("/docs")
def docs_page():
    if "docs_page" not in current_app.extensions:
        page = page_of(json.loads(openapi.document(current_app)))
        current_app.extensions["docs_page"] = render_template("docs/page.html", page=page)
    return current_app.extensions["docs_page"], 200, {"Content-Type": "text/html; charset=utf-8"}


@bp.after_request
def add_headers(response):
    """Send the admin pages' safety headers: scripts and styles only from the app's own files."""
    response.headers.update(HEADERS)
    return response

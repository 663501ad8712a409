"""Load and validate the adapter's configuration from TOML files and the environment."""

import base64
import binascii
import math
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import urlsplit

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.toml")
ENVIRONMENT = "environment"
TEST_CONFIG = "test config"
SERVICE_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
WORKFLOWS = ("new", "legacy")
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
ADMIN_SECRET_KEY_MIN_LENGTH = 32
TOKEN_NAME_MAX_LENGTH = 255


class Setting(NamedTuple):
    """Describe one configuration key: its dotted name, type, default and meaning."""

    key: str
    type: str
    default: object
    description: str


SETTINGS = (
    Setting("database.url", "str", "sqlite:///instance/adapter.db",
            "Store: `sqlite:///path.db` or `postgresql://user:pass@host:5432/db`."),
    Setting("merchant.api_tokens", "list[str]", [],
            "Bearer tokens accepted on the merchant API."),
    Setting("merchant.tokens", "list[table]", [],
            "Named bearer tokens, as `[[merchant.tokens]]` tables with `name` and `token`: accepted"
            " like `api_tokens`, and the timeline records the name as `actor_name` on what each"
            " did. Names are 1 to 255 characters; a token may be listed once in all."),
    Setting("webhooks.tolerance_seconds", "int", 300,
            "Largest accepted gap between an inbound webhook's timestamp and now."),
    Setting("webhooks.max_body_bytes", "int", 262144,
            "Largest accepted inbound webhook body; bigger ones answer 413."),
    Setting("outbox.retry_schedule", "list[float]",
            [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
            "Seconds to wait before each delivery attempt; its length is the number of attempts."),
    Setting("outbox.in_app_dispatcher", "bool", True,
            "Run the outbox dispatcher inside the web app process."),
    Setting("outbox.poll_seconds", "float", 1.0,
            "Seconds the dispatcher sleeps when it finds nothing to send."),
    Setting("outbox.batch_size", "int", 100,
            "Messages the dispatcher claims per poll."),
    Setting("outbox.sends_in_flight", "int", 4,
            "Messages of one claimed batch the dispatcher sends to a service at once (each to a"
            " different fulfillment order, so each order's messages still arrive in order)."),
    Setting("orders.auto_archive", "bool", False,
            "Archive an order once it is fully paid and fulfilled."),
    Setting("orders.expiring_days", "int", 2,
            "An authorization expiring within this many days marks the order `expiring`."),
    Setting("notifications.url", "str", "",
            "Endpoint that receives customer notifications; empty means none."),
    Setting("notifications.secret", "str", "",
            "Standard Webhooks secret (`whsec_...`) used to sign notifications; required when"
            " `notifications.url` is set, unless `notifications.secret_env` is."),
    Setting("notifications.secret_env", "str", "",
            "Name of an environment variable holding `notifications.secret` instead."),
    Setting("notifications.timeout_seconds", "float", 10,
            "Seconds to wait for the notifications endpoint."),
    Setting("admin.secret_key", "str", "",
            "Signs the admin pages' session cookies (at least 32 characters); give every host the"
            " same one. Empty: a SQLite deployment generates one in the instance folder, a"
            " PostgreSQL deployment refuses to start. `ADMIN_SECRET_KEY` overrides it."),
    Setting("admin.timezone", "str", "UTC",
            "IANA time zone the admin pages show dates in, e.g. `Asia/Bangkok`."),
    Setting("admin.session_hours", "int", 12,
            "Hours an admin sign-in lasts."),
    Setting("metrics.token", "str", "",
            "Bearer token that `GET /metrics` requires; empty: no `/metrics` (404)."
            " `METRICS_TOKEN` overrides it."),
)

# LOG_FORMAT (environment only): `json`, one object per line, or `text` for people.
LOG_FORMATS = ("json", "text")

# Keys of each `[services.<key>]` table; a default of None means the key has no plain default.
SERVICE_SETTINGS = (
    Setting("name", "str", None, "Display name; defaults to the service key."),
    Setting("workflow", "str", None, 'Required: `"new"` or `"legacy"`.'),
    Setting("url", "str", None, "Required: http(s) URL where the adapter POSTs its messages."),
    Setting("secret", "str", None,
            "Standard Webhooks secret (`whsec_...`) shared with the service."),
    Setting("secret_env", "str", None,
            "Name of an environment variable holding the secret; give this or `secret`."),
    Setting("previous_secrets", "list[str]", [],
            "Older `whsec_...` secrets still accepted on inbound webhooks while rotating."),
    Setting("auto_fulfill", "bool", False,
            "Request fulfillment automatically when the order becomes paid."),
    Setting("timeout_seconds", "float", 10, "Seconds to wait for the service to answer."),
    Setting("enabled", "bool", True,
            "`false` removes the service, e.g. the development `sandbox` in production."),
)


class ConfigError(Exception):
    """Report one bad configuration value on one line, naming its source and key."""

    def __init__(self, source, key, problem):
        self.source, self.key, self.problem = str(source), key, " ".join(str(problem).split())
        where = f"{self.source}: {key}" if key else self.source
        super().__init__(f"{where}: {self.problem}")


@dataclass(frozen=True)
class ServiceConfig:
    """Hold one fulfillment service's validated settings."""

    key: str
    name: str
    workflow: str
    url: str
    secret: str
    previous_secrets: tuple
    auto_fulfill: bool
    timeout_seconds: float

    @property
    def secrets(self):
        """Return every secret accepted on inbound webhooks, the current one first."""
        return (self.secret, *self.previous_secrets)


@dataclass(frozen=True)
class Settings:
    """Hold the validated store-wide settings and services."""

    database_url: str
    api_tokens: tuple  # every accepted merchant token, named ones included
    token_names: Mapping[str, str]  # token -> name, for the named ones
    tolerance_seconds: int
    max_body_bytes: int
    retry_schedule: tuple
    in_app_dispatcher: bool
    poll_seconds: float
    batch_size: int
    sends_in_flight: int
    auto_archive: bool
    expiring_days: int
    notifications_url: str | None
    notifications_secret: str | None
    notifications_timeout_seconds: float
    admin_secret_key: str | None
    admin_timezone: str
    admin_session_hours: int
    services: Mapping[str, ServiceConfig]
    metrics_token: str | None = None
    log_format: str = "json"

    @property
    def is_postgres(self):
        """Tell whether the store is PostgreSQL (shared by several hosts) rather than SQLite."""
        return self.database_url.startswith(("postgresql://", "postgres://"))


def load_settings(config_path=None, environ=os.environ, overrides=None):
    """Return Settings from default.toml, a config file, the environment and overrides."""
    tree, origins = {}, {}
    _merge(tree, _read_toml(DEFAULT_CONFIG_PATH), str(DEFAULT_CONFIG_PATH), origins)
    config_path = config_path or environ.get("ADAPTER_CONFIG")
    if config_path:
        _merge(tree, _read_toml(config_path), str(config_path), origins)
    if environ.get("DATABASE_URL"):
        _merge(tree, {"database": {"url": environ["DATABASE_URL"]}}, ENVIRONMENT, origins)
    if environ.get("MERCHANT_API_TOKENS"):
        tokens = [t.strip() for t in environ["MERCHANT_API_TOKENS"].split(",") if t.strip()]
        _merge(tree, {"merchant": {"api_tokens": tokens}}, ENVIRONMENT, origins)
    if environ.get("ADMIN_SECRET_KEY"):
        _merge(tree, {"admin": {"secret_key": environ["ADMIN_SECRET_KEY"]}}, ENVIRONMENT, origins)
    if environ.get("METRICS_TOKEN"):
        _merge(tree, {"metrics": {"token": environ["METRICS_TOKEN"]}}, ENVIRONMENT, origins)
    if overrides:
        _merge(tree, overrides, TEST_CONFIG, origins)
    return _build(tree, _Origins(origins), environ)


def _read_toml(path):
    """Parse one TOML file, turning read and syntax errors into ConfigError."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from None


def _merge(base, new, source, origins, prefix=()):
    """Deep-merge table `new` into `base`, recording which source set each key."""
    for key, value in new.items():
        path = (*prefix, key)
        origins[path] = source
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, source, origins, path)
        else:
            for stale in [p for p in origins if p[: len(path)] == path and p != path]:
                del origins[stale]
            base[key] = value


class _Origins:
    """Name the source that last set a key, or else the nearest table containing it."""

    def __init__(self, origins):
        self._origins = origins

    def error(self, path, problem):
        """Return a ConfigError for the key at `path`."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._origins:
                return ConfigError(self._origins[path[:end]], ".".join(path), problem)
        return ConfigError("configuration", ".".join(path), problem)


def _build(tree, origins, environ):
    """Validate the merged tree and return Settings."""
    known = {}
    for setting in SETTINGS:
        table, name = setting.key.split(".")
        known.setdefault(table, {})[name] = setting
    for table, entries in tree.items():
        if table == "services":
            continue
        if table not in known:
            kind = "table" if isinstance(entries, dict) else "key"
            raise origins.error((table,), f"unknown {kind}")
        if not isinstance(entries, dict):
            raise origins.error((table,), "must be a table")
        for name in entries:
            if name not in known[table]:
                raise origins.error((table, name), "unknown key")
    values = {}
    for setting in SETTINGS:
        path = tuple(setting.key.split("."))
        values[setting.key] = _checked(setting.type, tree[path[0]][path[1]], path, origins)

    if not values["database.url"].startswith(DATABASE_SCHEMES):
        raise origins.error(("database", "url"), "must start with " + ", ".join(DATABASE_SCHEMES))
    if any(not token.strip() for token in values["merchant.api_tokens"]):
        raise origins.error(("merchant", "api_tokens"), "tokens must not be blank")
    token_names = _named_tokens(values["merchant.tokens"], origins)
    if set(token_names) & set(values["merchant.api_tokens"]):
        raise origins.error(("merchant", "tokens"),
                            "a named token is also in api_tokens; give each token once")
    api_tokens = (*values["merchant.api_tokens"], *token_names)
    if not values["outbox.retry_schedule"]:
        raise origins.error(("outbox", "retry_schedule"), "must list at least one attempt")
    if any(delay < 0 for delay in values["outbox.retry_schedule"]):
        raise origins.error(("outbox", "retry_schedule"), "delays must not be negative")

    admin_secret_key = values["admin.secret_key"] or None
    if admin_secret_key is not None and len(admin_secret_key) < ADMIN_SECRET_KEY_MIN_LENGTH:
        raise origins.error(("admin", "secret_key"),
                            f"must be at least {ADMIN_SECRET_KEY_MIN_LENGTH} characters")
    try:
        zoneinfo.ZoneInfo(values["admin.timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise origins.error(("admin", "timezone"),
                            "not an IANA time zone name such as UTC or Asia/Bangkok") from None

    notifications = tree["notifications"]
    notifications_url = values["notifications.url"] or None
    if notifications_url:
        _check_url(notifications_url, ("notifications", "url"), origins)
    notifications_secret = _secret(notifications, ("notifications",), environ, origins,
                                   required=notifications_url is not None)

    log_format = log_format_of(environ)
    services = tree.get("services", {})
    if not isinstance(services, dict):
        raise origins.error(("services",), "must be a table")
    return Settings(
        database_url=values["database.url"],
        api_tokens=api_tokens,
        token_names=MappingProxyType(token_names),
        tolerance_seconds=values["webhooks.tolerance_seconds"],
        max_body_bytes=values["webhooks.max_body_bytes"],
        retry_schedule=values["outbox.retry_schedule"],
        in_app_dispatcher=values["outbox.in_app_dispatcher"],
        poll_seconds=values["outbox.poll_seconds"],
        batch_size=values["outbox.batch_size"],
        sends_in_flight=values["outbox.sends_in_flight"],
        auto_archive=values["orders.auto_archive"],
        expiring_days=values["orders.expiring_days"],
        notifications_url=notifications_url,
        notifications_secret=notifications_secret,
        notifications_timeout_seconds=values["notifications.timeout_seconds"],
        admin_secret_key=admin_secret_key,
        admin_timezone=values["admin.timezone"],
        admin_session_hours=values["admin.session_hours"],
        metrics_token=values["metrics.token"] or None,
        log_format=log_format,
        services=MappingProxyType({
            key: service
            for key, table in services.items()
            if (service := _service(key, table, environ, origins)) is not None
        }),
    )


def log_format_of(environ):
    """The LOG_FORMAT the environment names: `json` (the default) or `text`; ConfigError otherwise."""
    log_format = environ.get("LOG_FORMAT", "").strip().lower() or "json"
    if log_format not in LOG_FORMATS:
        raise ConfigError(ENVIRONMENT, "LOG_FORMAT", 'must be "json" or "text"')
    return log_format


def _named_tokens(tables, origins):
    """Return {token: name} of the `[[merchant.tokens]]` tables, validated."""
    names = {}
    path = ("merchant", "tokens")
    for number, table in enumerate(tables, start=1):
        for key in table:
            if key not in ("name", "token"):
                raise origins.error(path, f"table {number}: unknown key {key!r}")
        name, token = table.get("name"), table.get("token")
        if not isinstance(name, str) or not name.strip() or len(name) > TOKEN_NAME_MAX_LENGTH:
            raise origins.error(path, f"table {number}: name must be a string of 1 to"
                                      f" {TOKEN_NAME_MAX_LENGTH} characters, not blank")
        if not isinstance(token, str) or not token.strip():
            raise origins.error(path, f"table {number}: token must be a string, not blank")
        if token in names:
            raise origins.error(path, f"table {number}: its token is listed twice; give each once")
        names[token] = name
    return names


def _service(key, table, environ, origins):
    """Validate one `[services.<key>]` table and return its ServiceConfig (None if disabled)."""
    path = ("services", key)
    if not SERVICE_KEY.fullmatch(key):
        raise origins.error(path, f"service key must match {SERVICE_KEY.pattern}")
    if not isinstance(table, dict):
        raise origins.error(path, "must be a table")
    settings = {setting.key: setting for setting in SERVICE_SETTINGS}
    for name in table:
        if name not in settings:
            raise origins.error((*path, name), "unknown key")
    values = {
        name: _checked(setting.type, table[name], (*path, name), origins)
        if name in table else setting.default
        for name, setting in settings.items()
    }
    if values["workflow"] not in WORKFLOWS:
        problem = "missing" if values["workflow"] is None else "unknown workflow"
        raise origins.error((*path, "workflow"), f'{problem}; must be "new" or "legacy"')
    if values["url"] is None:
        raise origins.error((*path, "url"), "missing; must be an http(s) URL")
    _check_url(values["url"], (*path, "url"), origins)
    if values["name"] == "":
        raise origins.error((*path, "name"), "must not be empty")
    for secret in values["previous_secrets"]:
        if not _is_secret(secret):
            raise origins.error((*path, "previous_secrets"), "each must be whsec_ + base64")
    if not values["enabled"]:
        return None
    return ServiceConfig(
        key=key,
        name=values["name"] or key,
        workflow=values["workflow"],
        url=values["url"],
        secret=_secret(table, path, environ, origins, required=True),
        previous_secrets=tuple(values["previous_secrets"]),
        auto_fulfill=values["auto_fulfill"],
        timeout_seconds=float(values["timeout_seconds"]),
    )


_TYPES = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "table": ("a table", lambda v: isinstance(v, dict)),
}
_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string",
               list: "array", dict: "table"}


def _checked(kind, value, path, origins):
    """Return `value` if it has type `kind` (numbers positive), else raise ConfigError."""
    if kind.startswith("list["):
        if not isinstance(value, list):
            raise origins.error(path, f"must be an array, got {_toml_type(value)}")
        item_kind = kind[5:-1]
        description, is_kind = _TYPES[item_kind]
        for item in value:
            if not is_kind(item) or (item_kind == "float" and not math.isfinite(item)):
                raise origins.error(path, f"items must be {description}, got {_toml_type(item)}")
        return tuple(float(i) for i in value) if item_kind == "float" else list(value)
    description, is_kind = _TYPES[kind]
    if not is_kind(value):
        raise origins.error(path, f"must be {description}, got {_toml_type(value)}")
    if kind in ("int", "float"):
        if not (math.isfinite(value) and value > 0):
            raise origins.error(path, "must be a positive number")
        return float(value) if kind == "float" else value
    return value


def _toml_type(value):
    """Name the TOML type of `value` without revealing the value."""
    return _TOML_TYPES.get(type(value), "date/time")


def _check_url(url, path, origins):
    """Raise ConfigError unless `url` is an http or https URL with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise origins.error(path, "malformed URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        raise origins.error(path, "must be an http or https URL with a host")


def _secret(table, path, environ, origins, required):
    """Return the secret given by `secret` or `secret_env` in `table`, validated."""
    secret, secret_env = table.get("secret") or None, table.get("secret_env") or None
    if secret and secret_env:
        raise origins.error((*path, "secret_env"), "give secret or secret_env, not both")
    if secret_env:
        if secret_env not in environ:
            raise origins.error((*path, "secret_env"),
                                f"environment variable {secret_env} is not set")
        if not _is_secret(environ[secret_env]):
            raise origins.error((*path, "secret_env"),
                                f"environment variable {secret_env} must hold whsec_ + base64")
        return environ[secret_env]
    if secret is None:
        if required:
            raise origins.error((*path, "secret"), "missing; set secret or secret_env")
        return None
    if not _is_secret(secret):
        raise origins.error((*path, "secret"), "must be whsec_ followed by non-empty base64")
    return secret


def _is_secret(value):
    """Tell whether `value` is a Standard Webhooks secret: whsec_ + non-empty base64."""
    if not isinstance(value, str) or not value.startswith("whsec_"):
        return False
    try:
        return bool(base64.b64decode(value.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False

"""Check that configuration loads, merges, validates and is documented consistently."""

import base64
import dataclasses
import tomllib
from pathlib import Path

import pytest

from config import (
    DEFAULT_CONFIG_PATH,
    SERVICE_SETTINGS,
    SETTINGS,
    ConfigError,
    load_settings,
)

README = Path(__file__).resolve().parents[1] / "README.md"
SECRET = "whsec_" + base64.b64encode(b"current-secret-for-tests-0123456").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"previous-secret-for-tests-012345").decode()
ACME = f"""
[services.acme]
name = "ACME Fulfillment"
workflow = "new"
url = "https://acme.example/adapter-hooks"
secret = "{SECRET}"
"""


def write(tmp_path, text, name="adapter.toml"):
    """Write `text` to a TOML file under tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_without_any_file_or_environment():
    settings = load_settings(environ={})
    assert settings.database_url == "sqlite:///instance/adapter.db"
    assert settings.api_tokens == ()
    assert settings.tolerance_seconds == 300
    assert settings.max_body_bytes == 262144
    assert settings.retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert settings.in_app_dispatcher is True
    assert settings.poll_seconds == 1.0
    assert settings.batch_size == 100
    assert settings.sends_in_flight == 4
    assert settings.auto_archive is False
    assert settings.expiring_days == 2
    assert settings.notifications_url is None
    assert settings.notifications_secret is None
    assert settings.notifications_timeout_seconds == 10.0
    assert list(settings.services) == ["sandbox"]
    assert settings.services["sandbox"].url == "http://127.0.0.1:5001/adapter-hooks"


def test_a_disabled_service_is_not_configured(tmp_path):
    path = write(tmp_path, ACME + "[services.sandbox]\nenabled = false\n")
    settings = load_settings(path, environ={})
    assert sorted(settings.services) == ["acme"]


def test_config_file_merges_over_defaults(tmp_path):
    path = write(tmp_path, ACME + "[webhooks]\ntolerance_seconds = 60\n")
    settings = load_settings(path, environ={})
    assert settings.tolerance_seconds == 60
    assert settings.max_body_bytes == 262144
    acme = settings.services["acme"]
    assert acme.key == "acme"
    assert acme.name == "ACME Fulfillment"
    assert acme.workflow == "new"
    assert acme.url == "https://acme.example/adapter-hooks"
    assert acme.secret == SECRET
    assert acme.previous_secrets == ()
    assert acme.auto_fulfill is False
    assert acme.timeout_seconds == 10.0
    assert acme.secrets == (SECRET,)


def test_service_defaults_name_to_key_and_keeps_previous_secrets(tmp_path):
    path = write(tmp_path, f"""
[services.beta-2]
workflow = "legacy"
url = "http://localhost:8080/hooks"
secret = "{SECRET}"
previous_secrets = ["{OLD_SECRET}"]
auto_fulfill = true
timeout_seconds = 2.5
""")
    beta = load_settings(path, environ={}).services["beta-2"]
    assert beta.name == "beta-2"
    assert beta.secrets == (SECRET, OLD_SECRET)
    assert beta.auto_fulfill is True
    assert beta.timeout_seconds == 2.5


def test_adapter_config_variable_names_the_file(tmp_path):
    path = write(tmp_path, "[orders]\nexpiring_days = 5\n")
    assert load_settings(environ={"ADAPTER_CONFIG": str(path)}).expiring_days == 5


def test_config_path_argument_wins_over_adapter_config_variable(tmp_path):
    chosen = write(tmp_path, "[orders]\nexpiring_days = 7\n", "chosen.toml")
    ignored = write(tmp_path, "[orders]\nexpiring_days = 5\n", "ignored.toml")
    settings = load_settings(chosen, environ={"ADAPTER_CONFIG": str(ignored)})
    assert settings.expiring_days == 7


def test_environment_overrides_file(tmp_path):
    path = write(tmp_path, '[database]\nurl = "sqlite:///file.db"\n'
                           '[merchant]\napi_tokens = ["from-file"]\n')
    environ = {
        "DATABASE_URL": "postgresql://user:pass@db:5432/adapter",
        "MERCHANT_API_TOKENS": " tok-a, ,tok-b ,,",
    }
    settings = load_settings(path, environ=environ)
    assert settings.database_url == "postgresql://user:pass@db:5432/adapter"
    assert settings.api_tokens == ("tok-a", "tok-b")


def test_empty_environment_variables_count_as_unset(tmp_path):
    path = write(tmp_path, '[merchant]\napi_tokens = ["from-file"]\n')
    settings = load_settings(path, environ={"DATABASE_URL": "", "MERCHANT_API_TOKENS": ""})
    assert settings.database_url == "sqlite:///instance/adapter.db"
    assert settings.api_tokens == ("from-file",)


def test_secrets_can_come_from_the_environment(tmp_path):
    path = write(tmp_path, """
[services.acme]
workflow = "new"
url = "https://acme.example/hooks"
secret_env = "ACME_SECRET"

[notifications]
url = "https://notify.example/hooks"
secret_env = "NOTIFY_SECRET"
""")
    settings = load_settings(path, environ={"ACME_SECRET": SECRET, "NOTIFY_SECRET": OLD_SECRET})
    assert settings.services["acme"].secret == SECRET
    assert settings.notifications_url == "https://notify.example/hooks"
    assert settings.notifications_secret == OLD_SECRET


def test_overrides_win_over_file_and_environment(tmp_path):
    path = write(tmp_path, ACME + "[outbox]\nbatch_size = 5\n")
    settings = load_settings(
        path,
        environ={"DATABASE_URL": "postgres://db/adapter"},
        overrides={
            "database": {"url": "sqlite:///:memory:"},
            "outbox": {"batch_size": 7, "in_app_dispatcher": False},
            "services": {"acme": {"auto_fulfill": True}},
        },
    )
    assert settings.database_url == "sqlite:///:memory:"
    assert settings.batch_size == 7
    assert settings.in_app_dispatcher is False
    assert settings.services["acme"].auto_fulfill is True
    assert settings.services["acme"].name == "ACME Fulfillment"


def test_settings_are_frozen():
    settings = load_settings(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.batch_size = 1  # type: ignore[misc]


SERVICE_WITHOUT = """
[services.acme]
workflow = "new"
url = "https://acme.example/hooks"
"""

BAD_FILES = [
    ("unknown workflow", ACME.replace('"new"', '"old"'), "services.acme.workflow"),
    ("missing workflow", ACME.replace('workflow = "new"', ""), "services.acme.workflow"),
    ("missing url", ACME.replace('url = "https://acme.example/adapter-hooks"', ""),
     "services.acme.url"),
    ("missing secret", SERVICE_WITHOUT, "services.acme.secret"),
    ("secret_env unset", SERVICE_WITHOUT + 'secret_env = "NOPE"\n', "services.acme.secret_env"),
    ("secret and secret_env", ACME + 'secret_env = "NOPE"\n', "services.acme.secret_env"),
    ("secret not whsec", SERVICE_WITHOUT + 'secret = "abc"\n', "services.acme.secret"),
    ("secret not base64", SERVICE_WITHOUT + 'secret = "whsec_***"\n', "services.acme.secret"),
    ("secret empty base64", SERVICE_WITHOUT + 'secret = "whsec_"\n', "services.acme.secret"),
    ("bad previous secret", ACME + 'previous_secrets = ["nope"]\n',
     "services.acme.previous_secrets"),
    ("service url not http", ACME.replace("https://", "ftp://"), "services.acme.url"),
    ("service url without host", ACME.replace("acme.example/adapter-hooks", ""),
     "services.acme.url"),
    ("service url bad port", ACME.replace("acme.example", "acme.example:99999"),
     "services.acme.url"),
    ("unknown service key", ACME + "colour = 1\n", "services.acme.colour"),
    ("bad service key", ACME.replace("services.acme", "services.ACME"), "services.ACME"),
    ("service not a table", "services = 3\n", "services"),
    ("service timeout zero", ACME + "timeout_seconds = 0\n", "services.acme.timeout_seconds"),
    ("service auto_fulfill not bool", ACME + 'auto_fulfill = "yes"\n',
     "services.acme.auto_fulfill"),
    ("unknown key", "[webhooks]\ntolerance = 30\n", "webhooks.tolerance"),
    ("unknown top-level table", "[email]\nhost = 'x'\n", "email"),
    ("unknown top-level key", "debug = true\n", "debug"),
    ("table given as value", "outbox = 3\n", "outbox"),
    ("wrong type", '[webhooks]\ntolerance_seconds = "300"\n', "webhooks.tolerance_seconds"),
    ("bool as int", "[outbox]\nbatch_size = true\n", "outbox.batch_size"),
    ("float as int", "[outbox]\nbatch_size = 2.5\n", "outbox.batch_size"),
    ("zero", "[webhooks]\nmax_body_bytes = 0\n", "webhooks.max_body_bytes"),
    ("negative", "[outbox]\npoll_seconds = -1.0\n", "outbox.poll_seconds"),
    ("infinite", "[outbox]\npoll_seconds = inf\n", "outbox.poll_seconds"),
    ("empty retry schedule", "[outbox]\nretry_schedule = []\n", "outbox.retry_schedule"),
    ("negative retry delay", "[outbox]\nretry_schedule = [0, -5]\n", "outbox.retry_schedule"),
    ("bool retry delay", "[outbox]\nretry_schedule = [true]\n", "outbox.retry_schedule"),
    ("tokens not a list", '[merchant]\napi_tokens = "abc"\n', "merchant.api_tokens"),
    ("blank token", '[merchant]\napi_tokens = [" "]\n', "merchant.api_tokens"),
    ("bad database url", '[database]\nurl = "mysql://db/x"\n', "database.url"),
    ("notifications url without secret",
     '[notifications]\nurl = "https://notify.example/hooks"\n', "notifications.secret"),
    ("notifications url malformed", '[notifications]\nurl = "notify.example"\n',
     "notifications.url"),
]


@pytest.mark.parametrize(
    ("text", "key"), [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES]
)
def test_bad_config_file_names_file_and_key_on_one_line(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: ")
    assert "\n" not in message


def test_bad_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, '[webhooks]\ntolerance_seconds = 300\nmax_body_bytes\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in message
    assert "\n" not in message


@pytest.mark.parametrize("make_path", [
    pytest.param(lambda tmp_path: tmp_path / "missing.toml", id="missing"),
    pytest.param(lambda tmp_path: tmp_path, id="directory"),
])
def test_unreadable_file_is_named(tmp_path, make_path):
    path = make_path(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith(f"{path}: cannot read file: ")


def test_bad_environment_value_is_blamed_on_environment():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"DATABASE_URL": "mysql://db/x"})
    assert str(caught.value).startswith("environment: database.url: ")


def test_bad_override_is_blamed_on_test_config():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides={"outbox": {"batch_size": "many"}})
    assert str(caught.value).startswith("test config: outbox.batch_size: ")


def test_error_names_the_file_that_set_the_key(tmp_path):
    path = write(tmp_path, "[webhooks]\ntolerance_seconds = 60\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, overrides={"webhooks": {"max_body_bytes": -1}})
    assert str(caught.value).startswith("test config: webhooks.max_body_bytes: ")


@pytest.mark.parametrize(("text", "environ", "leak"), [
    (SERVICE_WITHOUT + 'secret = "whsec_hunter2!!"\n', {}, "hunter2"),
    (SERVICE_WITHOUT + 'secret = "hunter2"\n', {}, "hunter2"),
    (ACME + 'previous_secrets = ["whsec_hunter2!!"]\n', {}, "hunter2"),
    (SERVICE_WITHOUT + 'secret_env = "ACME"\n', {"ACME": "whsec_hunter2!!"}, "hunter2"),
    ('[notifications]\nurl = "https://n.example"\nsecret = "whsec_hunter2!!"\n', {}, "hunter2"),
    ("", {"DATABASE_URL": "mysql://user:hunter2@db/x"}, "hunter2"),
    ('[merchant]\napi_tokens = ["hunter2", 3]\n', {}, "hunter2"),
    (ACME + 'secret_env = "ACME"\n', {"ACME": SECRET}, SECRET),
])
def test_secrets_never_appear_in_error_messages(tmp_path, text, environ, leak):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=environ)
    assert leak not in str(caught.value)
    assert leak not in repr(caught.value.args)


def flatten(tree, prefix=""):
    """Return a nested TOML table as {dotted.key: value}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def typed(mapping):
    """Pair each value with its type so that 1 and 1.0 or 1 and True differ."""
    return {key: (type(value), value) for key, value in mapping.items()}


def test_settings_table_agrees_with_default_toml():
    with DEFAULT_CONFIG_PATH.open("rb") as file:
        defaults = flatten(tomllib.load(file))
    # The development sandbox service is a shipped service, not a store-wide setting.
    defaults = {key: value for key, value in defaults.items() if not key.startswith("services.")}
    assert typed(defaults) == typed({setting.key: setting.default for setting in SETTINGS})


def readme_configuration_keys():
    """Return the keys listed in the README's `## Configuration keys` table."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Configuration keys")
    section = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        section.append(line)
    header = section.index("| key | default | meaning |")
    keys = []
    for row in section[header + 2:]:
        if not row.startswith("|"):
            break
        keys.append(row.split("|")[1].strip().strip("`"))
    return keys


def test_readme_configuration_table_agrees_with_settings():
    keys = readme_configuration_keys()
    documented = [setting.key for setting in SETTINGS]
    documented += [f"services.<key>.{setting.key}" for setting in SERVICE_SETTINGS]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(documented)

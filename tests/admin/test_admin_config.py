"""The admin pages' configuration keys: session key, time zone, session length."""

import os
import stat

import pytest
from flask import Flask

from config import ConfigError, load_settings
from handlers.admin import sessions

KEY = "k" * 32


def test_admin_defaults():
    settings = load_settings(environ={})
    assert settings.admin_secret_key is None
    assert settings.admin_timezone == "UTC"
    assert settings.admin_session_hours == 12


def test_admin_secret_key_environment_variable_wins_over_the_file(tmp_path):
    path = tmp_path / "adapter.toml"
    path.write_text(f'[admin]\nsecret_key = "{"f" * 32}"\n', encoding="utf-8")
    settings = load_settings(path, environ={"ADMIN_SECRET_KEY": KEY})
    assert settings.admin_secret_key == KEY


@pytest.mark.parametrize("table, problem", [
    ({"secret_key": "short"}, "admin.secret_key: must be at least 32 characters"),
    ({"timezone": "Mars/Olympus"}, "admin.timezone: not an IANA time zone name"),
    ({"timezone": "../../etc/passwd"}, "admin.timezone: not an IANA time zone name"),
    ({"timezone": ""}, "admin.timezone: not an IANA time zone name"),
    ({"timezone": 7}, "admin.timezone: must be a string"),
    ({"session_hours": 0}, "admin.session_hours: must be a positive number"),
    ({"session_hours": 1.5}, "admin.session_hours: must be an integer"),
    ({"sessions": 1}, "admin.sessions: unknown key"),
])
def test_bad_admin_settings_name_the_key(table, problem):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, overrides={"admin": table})
    assert problem in str(raised.value)


def test_a_named_time_zone_is_accepted():
    assert load_settings(environ={}, overrides={"admin": {"timezone": "Asia/Bangkok"}}).admin_timezone == (
        "Asia/Bangkok"
    )


def test_postgresql_without_a_session_key_refuses_to_start_with_one_line():
    settings = load_settings(environ={"DATABASE_URL": "postgresql://db/adapter"})
    with pytest.raises(SystemExit) as raised:
        sessions.init_app(Flask(__name__), settings)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("configuration error: admin.secret_key: missing")
    assert "ADMIN_SECRET_KEY" in message


def test_postgresql_with_a_session_key_uses_it():
    settings = load_settings(environ={"DATABASE_URL": "postgresql://db/adapter", "ADMIN_SECRET_KEY": KEY})
    app = Flask(__name__)
    sessions.init_app(app, settings)
    assert app.secret_key == KEY


def test_sqlite_without_a_session_key_generates_one_in_the_instance_folder_and_keeps_it(tmp_path):
    settings = load_settings(environ={})
    first, second = Flask(__name__, instance_path=str(tmp_path)), Flask(__name__, instance_path=str(tmp_path))
    sessions.init_app(first, settings)
    sessions.init_app(second, settings)
    key_file = tmp_path / sessions.SECRET_KEY_FILE
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key == key_file.read_text()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert os.listdir(tmp_path) == [sessions.SECRET_KEY_FILE]


def test_a_configured_session_key_writes_nothing_to_the_instance_folder(tmp_path):
    settings = load_settings(environ={"ADMIN_SECRET_KEY": KEY})
    sessions.init_app(Flask(__name__, instance_path=str(tmp_path / "instance")), settings)
    assert not (tmp_path / "instance").exists()


def test_session_hours_set_the_cookie_lifetime():
    settings = load_settings(environ={"ADMIN_SECRET_KEY": KEY}, overrides={"admin": {"session_hours": 3}})
    app = Flask(__name__)
    sessions.init_app(app, settings)
    assert app.permanent_session_lifetime.total_seconds() == 3 * 3600

"""Starting the adapter: configuration mistakes stop it with one line, init-db is idempotent."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from conftest import SECRETS, TOKEN

from adapter import dispatcher, models, schema, store


def flask(*args, cwd, env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("ADAPTER_CONFIG", "DATABASE_URL")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project_dir():
    """The directory holding app.py, where `flask --app app` is run."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[services.acme]\nworkflow = "sideways"\nurl = "https://a.example"\nsecret = "{secret}"\n',
         "services.acme.workflow"),
        ('[services.acme]\nworkflow = "new"\nurl = "https://a.example"\n', "services.acme"),
        ('[services.acme]\nworkflow = "new"\nurl = "not a url"\nsecret = "{secret}"\n',
         "services.acme.url"),
        ("[webhooks]\ntolerance = 3\n", "webhooks.tolerance"),
    ],
    ids=["unknown-workflow", "missing-secret", "malformed-url", "unknown-key"],
)
def test_bad_configuration_stops_start_with_one_line(tmp_path, project_dir, toml, key):
    config_file = tmp_path / "adapter.toml"
    config_file.write_text(toml.replace("{secret}", SECRETS["acme"]))
    result = flask(
        "init-db",
        cwd=project_dir,
        env_extra={
            "ADAPTER_CONFIG": str(config_file),
            "DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
        },
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(error_lines) == 1, result.stderr
    assert str(config_file) in error_lines[0]
    assert key in error_lines[0]


def test_unreadable_config_file_names_the_file(tmp_path, project_dir):
    missing = tmp_path / "nope.toml"
    result = flask(
        "init-db",
        cwd=project_dir,
        env_extra={"ADAPTER_CONFIG": str(missing), "DATABASE_URL": f"sqlite:///{tmp_path}/a.db"},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(missing) in result.stderr


def test_init_db_twice_is_harmless(tmp_path, project_dir):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    first = flask("init-db", cwd=project_dir, env_extra=env)
    second = flask("init-db", cwd=project_dir, env_extra=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "a.db").exists()


@pytest.fixture
def writer_holding_orders(app, database_url):
    """Another process's connection in the middle of a write transaction on `orders`."""
    if database_url.startswith("postgresql"):
        connection = psycopg2.connect(database_url)
        connection.cursor().execute('LOCK TABLE "orders" IN ROW EXCLUSIVE MODE')
    else:
        connection = sqlite3.connect(database_url[len("sqlite:///"):], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("DELETE FROM orders")
    yield
    connection.rollback()
    connection.close()


def test_start_on_a_current_schema_does_not_wait_for_writers(writer_holding_orders):
    """A process booting next to busy ones must not lock tables they write (a deadlock on PostgreSQL)."""
    starting = threading.Thread(target=schema.create_tables, daemon=True)
    starting.start()
    starting.join(timeout=3)
    assert not starting.is_alive()


@pytest.fixture
def newer_schema(app):
    """The store as a later version of the adapter left it (the run's shared database is restored)."""
    with store.database.connection_context():
        models.SchemaVersion.update(version=schema.SCHEMA_VERSION + 1).execute()
    yield
    with store.database.connection_context():
        models.SchemaVersion.update(version=schema.SCHEMA_VERSION).execute()


def test_start_on_a_newer_schema_refuses(newer_schema):
    with pytest.raises(schema.SchemaError, match="newer"):
        schema.create_tables()


def test_healthz_answers_when_store_answers(api):
    response = api.get("/healthz", token=None)
    assert response.status_code == 200
    assert response.body == {"status": "ok"}


@pytest.fixture
def in_app_dispatcher(overrides):
    """Run the app with its own dispatcher, as `flask run` and gunicorn do."""
    overrides["outbox"] = {"in_app_dispatcher": True, "poll_seconds": 0.05}
    yield
    dispatcher.stop_in_process(5)


def test_in_app_dispatcher_delivers_without_a_worker(in_app_dispatcher, api, create_order, outbound):
    order = create_order()
    fo = next(fo for fo in order["fulfillment_orders"] if fo["service"] == "acme")
    response = api.post(f"/fulfillment_orders/{fo['id']}/fulfillment_request", {})
    assert response.status_code == 200, response.body
    deadline = time.monotonic() + 10
    while not outbound.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [call.request.url for call in outbound.calls] == ["https://acme.example/hooks"]


NO_TOKENS_LINE = "no merchant API tokens are configured"


@pytest.mark.parametrize(
    ("env_extra", "warned"),
    [
        ({}, True),
        ({"MERCHANT_API_TOKENS": " , "}, True),
        ({"MERCHANT_API_TOKENS": "tok_3f9a0c2e7b"}, False),
    ],
    ids=["unset", "only-blanks", "set"],
)
def test_start_without_merchant_tokens_warns_once_on_stderr(tmp_path, project_dir, env_extra, warned):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "MERCHANT_API_TOKENS": "", **env_extra}
    result = flask("init-db", cwd=project_dir, env_extra=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if NO_TOKENS_LINE in line]
    assert len(warnings) == (1 if warned else 0), result.stderr
    assert all(json.loads(line)["level"] == "warning" for line in warnings), result.stderr  # SPEC 9
    assert "tok_3f9a0c2e7b" not in result.stderr + result.stdout


@pytest.fixture
def no_tokens(overrides):
    overrides["merchant"] = {"api_tokens": []}


@pytest.mark.parametrize("token", [None, "dev-token", "x" * 300], ids=["none", "guess", "long"])
def test_without_configured_tokens_401_says_to_set_them(no_tokens, api, token):
    response = api.get("/orders", token=token)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.body["code"] == "unauthorized"
    assert response.body["detail"] == "no merchant API tokens are configured; set MERCHANT_API_TOKENS"


def test_with_configured_tokens_401_does_not_reveal_them(api):
    response = api.get("/orders", token="wrong")
    assert response.status_code == 401
    assert TOKEN not in response.get_data(as_text=True)
    assert "configured" not in response.body["detail"]


FREEZE_IN_A_WORKER = r"""
import gc, runpy, sys
from types import SimpleNamespace

hooks = runpy.run_path(sys.argv[1])
before = gc.get_freeze_count()
hooks["post_worker_init"](SimpleNamespace(wsgi=object()))
print(before, gc.get_freeze_count())
"""


def test_a_gunicorn_worker_freezes_what_it_loaded_out_of_the_collectors_full_passes(tmp_path, project_dir):
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_IN_A_WORKER, os.path.join(project_dir, "gunicorn.conf.py")],
        capture_output=True, text=True, timeout=60, cwd=project_dir,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before == 0 and after > 10_000

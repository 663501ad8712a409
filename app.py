"""Assemble the fulfillment adapter's Flask application."""

import logging
import sys

from flask import Flask

import config
from adapter import log_lines

log = logging.getLogger("adapter")

# Gunicorn's arbiter halts, instead of booting another worker, when a worker exits with this code
# (its WORKER_BOOT_ERROR); any other server and `flask` only see a non-zero exit.
BOOT_ERROR_EXIT = 3

NO_TOKENS_WARNING = ("no merchant API tokens are configured (MERCHANT_API_TOKENS or "
                     "merchant.api_tokens): every merchant API call will be refused with 401")

# Warnings already given by this process or the process it was forked from (gunicorn's master
# checks the configuration before it forks its workers), so a warning is given once per start.
_warned = set()


def stop(line):
    """Stop the start with one line on stderr and the exit code that halts gunicorn's arbiter."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    raise SystemExit(BOOT_ERROR_EXIT) from None


def check_configuration(test_config=None):
    """Load the settings, log in their format and warn about risky ones; one line and exit on an error."""
    try:
        settings = config.load_settings(overrides=test_config)
    except config.ConfigError as exc:
        stop(f"configuration error: {exc}")
    log_lines.configure(settings.log_format)
    if not settings.api_tokens and "no tokens" not in _warned:
        _warned.add("no tokens")
        log.warning(NO_TOKENS_WARNING)
    return settings


def create_app(test_config=None):
    """Create the app: defaults, then the config file and environment, then test overrides."""
    # Imported here, not above: gunicorn's master imports this module to check the configuration,
    # and must not import the HTTP client before its gevent workers patch the standard library.
    import handlers
    from adapter import schema, store
    from adapter import settings as core_settings
    from handlers import log_format
    from handlers.buffering import BUFFER_LIMIT_BYTES, BufferedBody

    app = Flask(__name__, instance_relative_config=True)
    settings = check_configuration(test_config)
    log_format.configure(settings.log_format)
    app.extensions["adapter_settings"] = settings
    core_settings.configure(settings)
    try:
        store.init_app(app, settings.database_url)
        schema.init_app(app)
    except SystemExit as exc:
        # A store that refuses the start (credentials, missing database, newer schema) exits
        # with its one line; with the boot error code, gunicorn does not try again forever.
        if not isinstance(exc.code, str):
            raise
        stop(exc.code)
    handlers.init_app(app, settings)
    app.wsgi_app = BufferedBody(app.wsgi_app, max(settings.max_body_bytes, BUFFER_LIMIT_BYTES))
    return app

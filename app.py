"""Assemble the fulfillment adapter's Flask application."""

from flask import Flask

import config
import handlers
from adapter import schema, store
from adapter import settings as core_settings


def create_app(test_config=None):
    """Create the app: defaults, then the config file and environment, then test overrides."""
    app = Flask(__name__, instance_relative_config=True)
    try:
        settings = config.load_settings(overrides=test_config)
    except config.ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    app.extensions["adapter_settings"] = settings
    core_settings.configure(settings)
    store.init_app(app, settings.database_url)
    schema.init_app(app)
    handlers.init_app(app, settings)
    return app

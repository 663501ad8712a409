"""Assemble the fulfillment adapter's Flask application."""

from flask import Flask

import config
import handlers
from adapter import store


def create_app(test_config=None):
    """Create the app: defaults, then the config file and environment, then test overrides."""
    app = Flask(__name__, instance_relative_config=True)
    try:
        settings = config.load_settings(overrides=test_config)
    except config.ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    app.extensions["adapter_settings"] = settings
    store.init_app(app, settings)
    handlers.init_app(app, settings)
    return app

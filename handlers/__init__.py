"""HTTP: blueprints that translate requests into calls of the core and results into responses."""

from adapter import dispatcher

from . import (
    admin,
    auth,
    cli,
    docs,
    fulfillment_orders,
    log_format,
    meta,
    metrics,
    operator,
    orders,
    problems,
    returns,
    webhooks,
)
from .outbox_cli import outbox_cli
from .parsing import IdConverter
from .sandbox_cli import sandbox_cli
from .webhooks_cli import webhooks_cli


def init_app(app, settings):
    """Register blueprints, the error handler, CLI commands and the in-app dispatcher."""
    app.url_map.converters["id"] = IdConverter
    for module in (orders, fulfillment_orders, returns, webhooks, meta, operator, docs):
        app.register_blueprint(module.bp)
    problems.init_app(app)
    auth.init_app(app)
    app.before_request(log_format.started)
    app.after_request(log_format.log_request)
    metrics.init_app(app, settings)
    admin.init_app(app, settings)
    app.cli.add_command(cli.init_db)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(sandbox_cli)
    app.cli.add_command(webhooks_cli)
    if settings.in_app_dispatcher:

        @app.before_request
        def start_dispatcher():
            # Started lazily so CLI commands never run one; gunicorn.conf.py starts it at boot.
            dispatcher.ensure_started(settings)

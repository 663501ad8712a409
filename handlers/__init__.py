"""HTTP: blueprints that translate requests into calls of the core and results into responses."""

from adapter import dispatcher

from . import admin, cli, docs, fulfillment_orders, meta, orders, problems, returns, webhooks
from .outbox_cli import outbox_cli
from .parsing import IdConverter
from .sandbox_cli import sandbox_cli
from .webhooks_cli import webhooks_cli


def init_app(app, settings):
    """Register blueprints, the error handler, CLI commands and the in-app dispatcher."""
    app.url_map.converters["id"] = IdConverter
    for module in (orders, fulfillment_orders, returns, webhooks, meta, docs):
        app.register_blueprint(module.bp)
    problems.init_app(app)
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

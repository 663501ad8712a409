"""Operator commands that are not about the outbox."""

import click
from flask.cli import with_appcontext

from adapter import schema


@click.command("init-db")
@with_appcontext
def init_db():
    """Create the tables (harmless when they exist)."""
    schema.create_tables()
    click.echo("Database ready.")

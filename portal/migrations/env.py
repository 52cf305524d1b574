"""Alembic environment: migrations run on the connection handed over by portal.migrate."""

from __future__ import annotations

from alembic import context

from portal.schema import METADATA

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=list(METADATA),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

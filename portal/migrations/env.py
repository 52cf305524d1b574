"""Alembic environment: migrations run on the connection handed over by portal.migrate."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import audit.tables  # noqa: F401  (registers the audit tables on SQLModel.metadata)
import portal.accounts.models
import portal.console.alerts
import portal.destruction.models
import portal.exchange.models
import portal.models  # noqa: F401  (registers every table on SQLModel.metadata)
from portal.uploads import models as upload_models  # noqa: F401  (the upload tables)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

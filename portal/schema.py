"""Every table the portal's database holds, for the migrations and the tests that hold them to the
models: the portal's models, on SQLModel's metadata, and the audit library's tables, on its own."""

from __future__ import annotations

from sqlalchemy import MetaData, Table
from sqlmodel import SQLModel

import audit
import portal.accounts.models
import portal.console.alerts
import portal.destruction.models
import portal.exchange.models
import portal.models
import portal.uploads.models  # noqa: F401  (each module registers its tables on SQLModel.metadata)

METADATA: tuple[MetaData, ...] = (SQLModel.metadata, audit.metadata)


def tables() -> dict[str, Table]:
    """Every table by name."""
    return {name: table for metadata in METADATA for name, table in metadata.tables.items()}

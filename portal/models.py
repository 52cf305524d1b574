"""The portal's tables. Every table the database holds is registered here (for migrations)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Enum, Field, SQLModel

from portal.text import is_whole_number


def utc_column(*, nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class OrganisationKind(enum.StrEnum):
    authority = "authority"  # uploads records
    inspectorate = "inspectorate"  # inspects them


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    kind: OrganisationKind = Field(sa_type=Enum(OrganisationKind, native_enum=False, length=20))
    created_at: datetime = Field(sa_column=utc_column())


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything the portal stores is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


MAX_ID = 2**31 - 1  # the largest INTEGER primary key on PostgreSQL


def parse_id(text: str | None) -> int | None:
    """A row id typed in a path or query, or None when it cannot be one (never a database error)."""
    if text is None or not is_whole_number(text) or len(text) > 10:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


class InstallationRecord(SQLModel, table=True):
    """Which key service's keys this database belongs to (one row, written by ``portal init``).

    Nothing here is secret: the signing key's fingerprint and an HMAC check value that tells
    whether a key service derives the same secrets, without revealing any.
    """

    __tablename__ = "installation"

    id: int = Field(default=1, primary_key=True)
    installation_id: str = Field(max_length=32)
    signing_key_fingerprint: str = Field(max_length=64)
    secret_check: str = Field(max_length=64)
    key_service: str = Field(max_length=300)  # where it was at init, for messages
    created_at: datetime = Field(sa_column=utc_column())

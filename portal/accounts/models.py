"""Tables of the accounts domain.

Secrets are never stored as given: passwords as Argon2id hashes; session ids, API tokens, enrolment
tokens and recovery codes (all random, 128 bits or more) as SHA-256 digests, so a copy of the database
cannot be replayed against the portal; TOTP secrets sealed with a key from the key store (outside the
database), so a database backup alone cannot mint codes.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, String
from sqlmodel import Enum, Field, SQLModel

from portal.models import utc_column


class Role(enum.StrEnum):
    uploader = "uploader"
    inspector = "inspector"
    lead = "lead"
    dpo = "dpo"
    admin = "admin"


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)  # stored lower-cased
    # The person's name, for the signed identity in destruction certificates: never logged.
    name: str | None = Field(default=None, max_length=200)
    organisation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("organisation.id"), nullable=False, index=True)
    )
    role: Role = Field(sa_type=Enum(Role, native_enum=False, length=20))
    password_hash: str | None = Field(default=None, max_length=200)
    totp_secret_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The newest TOTP time step accepted: a code of that step or older is never accepted again.
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    enrolled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    disabled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(sa_column=utc_column())


class Enrolment(SQLModel, table=True):
    """A one-time link that lets a new user set a password and enrol TOTP."""

    __tablename__ = "enrolment"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    created_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class RecoveryCode(SQLModel, table=True):
    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class WebSession(SQLModel, table=True):
    """A signed-in (or half signed-in: password done, code pending) browser session."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    id_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    mfa_done: bool = Field(default=False)
    created_at: datetime = Field(sa_column=utc_column())
    last_seen_at: datetime = Field(sa_column=utc_column())
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class Throttle(SQLModel, table=True):
    """Failure counters for one key: an account (hashed e-mail), a client address, or a known
    browser (``device:<user id>:<hashed device cookie part>``; portal/accounts/throttle.py).

    ``window_started_at`` is the time of the latest failure, ``locked_until`` when the next
    attempt may come, ``lockouts`` how many waits there have been.

    Keyed by a hash of the e-mail typed, whether or not such a user exists, so that lock-out
    behaves the same for unknown addresses and gives away nothing.
    """

    __tablename__ = "sign_in_throttle"

    key: str = Field(sa_column=Column(String(80), primary_key=True))
    failures: int = Field(default=0)
    lockouts: int = Field(default=0)
    window_started_at: datetime = Field(sa_column=utc_column())
    locked_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))

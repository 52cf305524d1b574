"""Tables of resumable uploads: a session per upload in progress, a row per part received.

Nothing here is readable without the review's key: each part is its own sealed blob under its own
data key, bound to its upload and position; the file name is sealed under the session's key. A
completed session keeps only a pointer to its document until it expires and is swept. A session
being completed holds a lease (``lease_owner``, ``lease_until``), so that the completion of a
process that died is taken over by another.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlmodel import Enum, Field, SQLModel

from portal.models import utc_column


class UploadState(enum.StrEnum):
    receiving = "receiving"  # parts arrive
    completing = "completing"  # the last byte arrived: the parts are becoming a document
    complete = "complete"  # the document exists; the parts are gone


class UploadSession(SQLModel, table=True):
    __tablename__ = "upload_session"

    # 192 random bits, URL-safe: the id is in the upload's URL, so it must not be guessable.
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    review_id: int = Field(
        sa_column=Column(Integer, ForeignKey("review.id"), nullable=False, index=True)
    )
    request_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("records_request.id"), nullable=True)
    )
    case_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("case_file.id"), nullable=True)
    )
    state: UploadState = Field(sa_type=Enum(UploadState, native_enum=False, length=20))
    length: int = Field(sa_column=Column(BigInteger, nullable=False))
    received: int = Field(sa_column=Column(BigInteger, nullable=False))
    parts: int = Field(default=0)
    sha256: str | None = Field(default=None, max_length=64)
    # The session's own data key (wrapped by the review key) seals the file name: personal data.
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    filename_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    document_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("document.id"), nullable=True)
    )
    # While ``completing``: which attempt is turning the parts into a document, and until when.
    # A live attempt renews its lease; once it has run out (the process died) another request
    # or the worker takes the completion over (portal.uploads.recovery).
    lease_owner: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True, index=True)
    )
    created_at: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


class UploadPart(SQLModel, table=True):
    """One PATCH's bytes (or what arrived of them), sealed as a blob of its own."""

    __tablename__ = "upload_part"
    __table_args__ = (UniqueConstraint("upload_id", "part_index"),)

    id: int | None = Field(default=None, primary_key=True)
    upload_id: str = Field(
        sa_column=Column(String(64), ForeignKey("upload_session.id"), nullable=False, index=True)
    )
    part_index: int
    start: int = Field(sa_column=Column(BigInteger, nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    blob_id: str = Field(max_length=64)
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))

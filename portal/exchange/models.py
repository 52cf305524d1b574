"""Tables of the exchange: reviews, their teams and organisations, requests, cases, documents.

No table has a field for a person's name: cases are pseudonymous references, and a document's
original file name (personal data too) is stored only sealed under the document's own key. A
request's title and instructions are sealed under the review's key (``portal.exchange.asking``).
A review's own title and legal basis stay readable: the destruction certificate names them after
the key is gone, so they must not name a person (``portal.classification`` records why).
"""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, UniqueConstraint
from sqlmodel import Enum, Field, SQLModel

from portal.models import utc_column


class ReviewState(enum.StrEnum):
    draft = "draft"
    open = "open"  # uploads accepted
    closed = "closed"  # no uploads; retrieval goes on
    destroyed = "destroyed"


class DocumentState(enum.StrEnum):
    receiving = "receiving"  # reserved: uploads in progress are tracked apart, never as documents
    pending_scan = "pending_scan"
    available = "available"
    rejected = "rejected"
    withdrawn = "withdrawn"
    destroyed = "destroyed"


class DocumentKind(enum.StrEnum):
    record = "record"  # sent by an organisation
    note = "note"  # the review team's own notes: never shown to organisations


class WithdrawReason(enum.StrEnum):
    wrong_file = "wrong_file"
    wrong_review = "wrong_review"
    wrong_case = "wrong_case"
    duplicate = "duplicate"
    not_requested = "not_requested"


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Column[int]:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


class Review(SQLModel, table=True):
    __tablename__ = "review"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True, index=True)
    # Its title and legal basis are free texts a lead types ("Thematic review: the Mackenzie
    # children"): sealed under the review's own key, bound to this row (portal.exchange.
    # review_texts), so destroying the key erases them in every copy. None only until the row's
    # id exists, or for a review destroyed before they were sealed (migration 0019).
    title_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    legal_basis_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    state: ReviewState = Field(sa_type=Enum(ReviewState, native_enum=False, length=20))
    opens_on: date
    closes_on: date
    retention_days: int
    lead_user_id: int = Field(sa_column=_fk("user_account.id"))
    created_at: datetime = Field(sa_column=utc_column())
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    destroyed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))

    @property
    def destroy_on(self) -> date:
        return self.closes_on + timedelta(days=self.retention_days)


class ReviewMember(SQLModel, table=True):
    """A member of a review's team (an inspector or its lead)."""

    __tablename__ = "review_member"
    __table_args__ = (UniqueConstraint("review_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    user_id: int = Field(sa_column=_fk("user_account.id"))


class ReviewOrganisation(SQLModel, table=True):
    """An organisation taking part in a review (it may upload while the review is open)."""

    __tablename__ = "review_organisation"
    __table_args__ = (UniqueConstraint("review_id", "organisation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    organisation_id: int = Field(sa_column=_fk("organisation.id"))


class Request(SQLModel, table=True):
    """What the team asks one organisation for.

    Its title and instructions may name a child: they are kept only sealed under the review's
    key (bound to this row), so destroying the review's key erases them in every copy.
    """

    __tablename__ = "records_request"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    organisation_id: int = Field(sa_column=_fk("organisation.id"))
    # None only until the row's id exists (the texts are bound to it), or once erased.
    title_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    instructions_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    due_on: date
    expected_items: int
    created_by: int = Field(sa_column=_fk("user_account.id", index=False))
    created_at: datetime = Field(sa_column=utc_column())


class Case(SQLModel, table=True):
    """A pseudonymous reference grouping the documents about one person; never a name."""

    __tablename__ = "case_file"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=14, unique=True, index=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    organisation_id: int = Field(sa_column=_fk("organisation.id"))
    created_by: int = Field(sa_column=_fk("user_account.id", index=False))
    created_at: datetime = Field(sa_column=utc_column())


class Document(SQLModel, table=True):
    __tablename__ = "document"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=14, unique=True, index=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    organisation_id: int = Field(sa_column=_fk("organisation.id"))
    request_id: int | None = Field(default=None, sa_column=_fk("records_request.id", nullable=True))
    case_id: int | None = Field(default=None, sa_column=_fk("case_file.id", nullable=True))
    kind: DocumentKind = Field(sa_type=Enum(DocumentKind, native_enum=False, length=10))
    state: DocumentState = Field(
        sa_type=Enum(DocumentState, native_enum=False, length=20), index=True
    )
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    content_type: str = Field(max_length=100)
    # The document's data key wrapped by its review's key, and the original file name sealed
    # under that data key. Erasing wrapped_key destroys both content and name (crypto-shredding).
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    filename_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    blob_id: str | None = Field(default=None, max_length=64, index=True)
    uploaded_by: int = Field(sa_column=_fk("user_account.id", index=False))
    uploaded_at: datetime = Field(sa_column=utc_column())
    scan_verdict: str | None = Field(default=None, max_length=20)
    scan_signature: str | None = Field(default=None, max_length=100)
    scanned_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    scan_attempts: int = Field(default=0)
    next_scan_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    scan_flagged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    rejected_reason: str | None = Field(default=None, max_length=40)
    withdrawn_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    withdrawn_by: int | None = Field(
        default=None, sa_column=_fk("user_account.id", nullable=True, index=False)
    )
    withdraw_reason: str | None = Field(default=None, max_length=40)
    destroyed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))

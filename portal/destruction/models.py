"""Tables of destruction: holds, notices, early destruction, runs, their items and certificates.

No table has a readable free-text field that could carry personal data: a hold has a reason
category and the reference of its order (held to safe characters, and sealed under the review's
key all the same); certificates hold references, sizes, hashes and times only.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlmodel import Enum, Field, SQLModel

from portal.models import utc_column


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Column[int]:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


def _enum(kind: type[enum.StrEnum], length: int = 20) -> Enum:
    return Enum(kind, native_enum=False, length=length)


class HoldReason(enum.StrEnum):
    legal = "legal"  # litigation, an inquiry, a court order
    safeguarding = "safeguarding"
    complaint = "complaint"
    other = "other"


class LiftReason(enum.StrEnum):
    """Why a hold was lifted (or a lead's request declined): a category, never free text."""

    proceedings_concluded = "proceedings_concluded"  # the case, inquiry or order has ended
    placed_in_error = "placed_in_error"
    superseded = "superseded"  # replaced by another hold
    other = "other"


class HoldScope(enum.StrEnum):
    review = "review"
    document = "document"
    case = "case"  # every document of the case, those uploaded later included


class HoldState(enum.StrEnum):
    requested = "requested"  # asked for by a lead: recorded and shown to DPOs; not binding
    active = "active"  # placed by a DPO: destruction skips what it covers
    lifted = "lifted"  # lifted by a DPO (or a request declined)


class Hold(SQLModel, table=True):
    """Stops destruction of a review (``document_id`` and ``case_id`` None), of one document,
    or of every document of one case (``case_id``), whenever it was uploaded."""

    __tablename__ = "destruction_hold"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    document_id: int | None = Field(default=None, sa_column=_fk("document.id", nullable=True))
    case_id: int | None = Field(default=None, sa_column=_fk("case_file.id", nullable=True))
    reason: HoldReason = Field(sa_type=_enum(HoldReason))
    # Sealed under the review's key, bound to this row (portal.sealing); None if none was given.
    order_reference_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    state: HoldState = Field(sa_type=_enum(HoldState), index=True)
    requested_by: int | None = Field(
        default=None, sa_column=_fk("user_account.id", nullable=True, index=False)
    )
    requested_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    placed_by: int | None = Field(
        default=None, sa_column=_fk("user_account.id", nullable=True, index=False)
    )
    placed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    lifted_by: int | None = Field(
        default=None, sa_column=_fk("user_account.id", nullable=True, index=False)
    )
    lifted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    lift_reason: LiftReason | None = Field(
        default=None, sa_type=_enum(LiftReason, 30), nullable=True
    )

    @property
    def scope(self) -> HoldScope:
        if self.document_id is not None:
            return HoldScope.document
        if self.case_id is not None:
            return HoldScope.case
        return HoldScope.review


class NoticeKind(enum.StrEnum):
    days_30 = "days_30"
    days_7 = "days_7"


class Notice(SQLModel, table=True):
    """A notice that a review's destruction is near: in the portal, and by e-mail if configured.

    One per review, kind and due date: if the date moves (a review closed early) new notices go.
    """

    __tablename__ = "destruction_notice"
    __table_args__ = (UniqueConstraint("review_id", "kind", "due_on"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    kind: NoticeKind = Field(sa_type=_enum(NoticeKind))
    due_on: date
    created_at: datetime = Field(sa_column=utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    recipients: int = Field(default=0)


class EarlyState(enum.StrEnum):
    pending = "pending"  # requested by a DPO, waiting for a second person
    approved = "approved"  # approved: the next run destroys the review
    done = "done"  # the review was destroyed on this authority


class EarlyDestruction(SQLModel, table=True):
    """Destruction brought forward: requested by a DPO, approved by another DPO or an admin."""

    __tablename__ = "destruction_early"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    state: EarlyState = Field(sa_type=_enum(EarlyState), index=True)
    requested_by: int = Field(sa_column=_fk("user_account.id", index=False))
    requested_at: datetime = Field(sa_column=utc_column())
    approved_by: int | None = Field(
        default=None, sa_column=_fk("user_account.id", nullable=True, index=False)
    )
    approved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class DestructionRun(SQLModel, table=True):
    """One destruction of a review (or of its documents not held): ends with one certificate.

    ``open_review_id`` is the review's id while the run is open and NULL once it is complete: its
    unique constraint lets only one open run exist per review, whatever the number of workers.
    """

    __tablename__ = "destruction_run"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    open_review_id: int | None = Field(
        default=None, sa_column=Column(Integer, nullable=True, unique=True)
    )
    early_id: int | None = Field(
        default=None, sa_column=_fk("destruction_early.id", nullable=True, index=False)
    )
    started_at: datetime = Field(sa_column=utc_column())
    completed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class DestructionItem(SQLModel, table=True):
    """A document destroyed by a run. Unique per document: no document is destroyed twice.

    Keeps the blob id until the certificate's verification has checked that the blob is gone.
    """

    __tablename__ = "destruction_item"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(sa_column=_fk("destruction_run.id"))
    document_id: int = Field(
        sa_column=Column(Integer, ForeignKey("document.id"), nullable=False, unique=True)
    )
    blob_id: str | None = Field(default=None, max_length=64)
    previous_state: str = Field(max_length=20)
    destroyed_at: datetime = Field(sa_column=utc_column())


class DestroyedUpload(SQLModel, table=True):
    """An unfinished resumable upload of the review (``receiving`` or ``completing``) destroyed by
    a run: its session and part rows (and with them their wrapped keys and the sealed file name)
    are deleted in the run's batch; this row is what the certificate counts.

    Keeps its part blobs' ids (space-separated) until the verification has checked them gone; no
    upload id, no name, nothing that leads back to the person.
    """

    __tablename__ = "destruction_upload"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(sa_column=_fk("destruction_run.id"))
    previous_state: str = Field(max_length=20)
    parts: int
    blob_ids: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    destroyed_at: datetime = Field(sa_column=utc_column())

    def part_blob_ids(self) -> list[str]:
        return self.blob_ids.split() if self.blob_ids else []


class Certificate(SQLModel, table=True):
    """A signed destruction certificate: its canonical JSON, as signed, and the signature."""

    __tablename__ = "destruction_certificate"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=14, unique=True, index=True)
    review_id: int = Field(sa_column=_fk("review.id"))
    run_id: int = Field(
        sa_column=Column(Integer, ForeignKey("destruction_run.id"), nullable=False, unique=True)
    )
    issued_at: datetime = Field(sa_column=utc_column())
    documents: int = Field(sa_column=Column(BigInteger, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    signature: str = Field(max_length=128)
    key_fingerprint: str = Field(max_length=64)

"""The access history of one document or one user, for DPOs.

A document's page shows its metadata *without* its file name (personal data, sealed under the
document's key: a DPO never needs it, and never decrypts it) and every event naming it. It works for
destroyed documents too: the audit log outlives them (SPEC §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from audit import EventFilter, Target
from portal.accounts.models import User
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.console.display import people
from portal.destruction.models import Hold
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound
from portal.exchange.models import Case, Document, Review
from portal.models import Organisation, as_utc, parse_id
from portal.references import parse_reference


def iso_time(value: Any) -> str | None:
    """A stored time as ISO 8601 UTC with microseconds (None stays None)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def document_metadata(db: Session, document: Document) -> dict[str, Any]:
    """What a DPO sees of a document: never its file name, never its content."""
    review = db.get(Review, document.review_id)
    organisation = db.get(Organisation, document.organisation_id)
    case = db.get(Case, document.case_id) if document.case_id else None
    uploader = people(db, [document.uploaded_by]).get(document.uploaded_by)
    holds = db.exec(
        select(Hold).where(Hold.document_id == document.id).order_by(col(Hold.id))
    ).all()
    return {
        "reference": document.reference,
        "review": review.code if review else None,
        "organisation": organisation.name if organisation else None,
        "kind": document.kind.value,
        "state": document.state.value,
        "case": case.reference if case else None,
        "size": document.size,
        "sha256": document.sha256,
        "content_type": document.content_type,
        "uploaded_at": iso_time(document.uploaded_at),
        "uploaded_by": {
            "user_id": document.uploaded_by,
            "email": uploader.email if uploader else None,
        },
        "scan": {
            "verdict": document.scan_verdict,
            "signature": document.scan_signature,
            "scanned_at": iso_time(document.scanned_at),
            "attempts": document.scan_attempts,
            "flagged_at": iso_time(document.scan_flagged_at),
        },
        "withdrawn_at": iso_time(document.withdrawn_at),
        "withdraw_reason": document.withdraw_reason,
        "destroyed_at": iso_time(document.destroyed_at),
        "holds": [{"id": h.id, "state": h.state.value, "reason": h.reason.value} for h in holds],
    }


def find_document(db: Session, typed_reference: str) -> Document:
    """Any document, destroyed ones included (the console is for DPOs only)."""
    reference = parse_reference(typed_reference[:100], "document reference")
    document = db.exec(select(Document).where(Document.reference == reference)).first()
    if document is None:
        raise NotFound("There is no document with that reference.")
    return document


def view_document_history(
    db: Session, auditor: Auditor, acting: Acting, typed_reference: str
) -> tuple[dict[str, Any], EventFilter]:
    """The metadata and the filter of its events; the view is audited as a metadata view (SPEC
    §5: DPOs' reading is access too). The caller commits."""
    document = find_document(db, typed_reference)
    metadata = document_metadata(db, document)
    auditor.record_as(
        db,
        acting,
        Action.DOCUMENT_METADATA_VIEWED,
        target=Target(TargetKind.DOCUMENT, document.reference),
        review=metadata["review"],
        document=document.reference,
    )
    return metadata, EventFilter(document=document.reference)


@dataclass(frozen=True)
class Account:
    user_id: int
    email: str
    role: str
    organisation: str | None
    enrolled_at: str | None
    disabled_at: str | None
    created_at: str | None


def find_account(db: Session, typed_id: str) -> Account:
    number = parse_id(typed_id)
    user = db.get(User, number) if number is not None else None
    if user is None or user.id is None:
        raise NotFound("There is no user with that number.")
    organisation = db.get(Organisation, user.organisation_id)
    return Account(
        user_id=user.id,
        email=user.email,
        role=user.role.value,
        organisation=organisation.name if organisation else None,
        enrolled_at=iso_time(user.enrolled_at),
        disabled_at=iso_time(user.disabled_at),
        created_at=iso_time(user.created_at),
    )

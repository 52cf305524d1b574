"""What a certificate says (its content, before signing) and the JSON shapes of the API.

A certificate names people by user id and role only, never by name or e-mail: the portal resolves
ids for those entitled to know; the certificate itself carries no personal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from portal.accounts.models import User
from portal.destruction.certificates import FORMAT
from portal.destruction.models import (
    Certificate,
    DestroyedUpload,
    DestructionItem,
    DestructionRun,
    EarlyDestruction,
    Hold,
)
from portal.destruction.schedule import Entry
from portal.exchange.models import Document, Review
from portal.models import as_utc
from portal.sealing import open_text, text_place
from storage import TextPlace, Vault

METHOD = {
    "standard": "NIST SP 800-88 Rev. 1",
    "technique": "cryptographic_erase",
    "description": (
        "Each document's data key, wrapped by the review key, and its sealed file name were "
        "erased from the database; its ciphertext was deleted from storage, every version; the "
        "review key was erased from the key store (outside the database and its backups), which "
        "puts every remaining copy of the review's ciphertext, backups included, beyond use. "
        "Uploads still in progress were discarded the same way: the wrapped keys of their parts "
        "and their sealed file names were erased from the database, and their parts deleted from "
        "storage."
    ),
}


def iso(moment: datetime) -> str:
    """UTC, to the microsecond, with a Z: one text form for one instant."""
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _person(db: Session, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    user = db.get(User, user_id)
    return {"user_id": user_id, "role": user.role.value if user else None}


def certificate_content(
    db: Session,
    *,
    reference: str,
    review: Review,
    run: DestructionRun,
    items: Sequence[DestructionItem],
    uploads: Sequence[DestroyedUpload],
    held: Sequence[str],
    early: EarlyDestruction | None,
    verification: dict[str, Any],
    whole: bool,
    issued_at: datetime,
    public_url: str,
) -> dict[str, Any]:
    by_id = (
        {
            d.id: d
            for d in db.exec(
                select(Document).where(col(Document.id).in_([i.document_id for i in items]))
            ).all()
        }
        if items
        else {}
    )
    documents: list[dict[str, Any]] = []
    for item in items:
        document = by_id[item.document_id]
        documents.append(
            {
                "reference": document.reference,
                "size": document.size,
                "sha256": document.sha256,
                "uploaded_at": iso(document.uploaded_at),
                "destroyed_at": iso(item.destroyed_at),
                "state_before": item.previous_state,
            }
        )
    documents.sort(key=lambda d: str(d["reference"]))
    if early is not None:
        authority: dict[str, Any] = {
            "basis": "early_destruction_approved",
            "requested_by": _person(db, early.requested_by),
            "requested_at": iso(early.requested_at),
            "approved_by": _person(db, early.approved_by),
            "approved_at": iso(early.approved_at) if early.approved_at else None,
        }
    else:
        authority = {
            "basis": "retention_schedule",
            "closes_on": review.closes_on.isoformat(),
            "retention_days": review.retention_days,
            "destroy_on": review.destroy_on.isoformat(),
        }
    return {
        "format": FORMAT,
        "reference": reference,
        "issuer": public_url,
        "review": {"code": review.code, "scope": "whole_review" if whole else "documents_only"},
        "documents": documents,
        "held_documents": sorted(held),
        # Resumable uploads that never became documents: counted, since they name nothing.
        "unfinished_uploads": {
            "count": len(uploads),
            "part_blobs_deleted": sum(upload.parts for upload in uploads),
        },
        "method": METHOD,
        "authorised_by": authority,
        "verification": verification,
        "started_at": iso(run.started_at),
        "issued_at": iso(issued_at),
    }


# --- API shapes -------------------------------------------------------------------------------


def entry_json(entry: Entry) -> dict[str, Any]:
    early = entry.early
    return {
        "review": entry.review.code,
        "state": entry.review.state.value,
        "closes_on": entry.review.closes_on.isoformat(),
        "retention_days": entry.review.retention_days,
        "destroy_on": entry.destroy_on.isoformat(),
        "status": entry.status,
        "documents": entry.documents,
        "held_documents": entry.held_documents,
        "review_holds": entry.review_holds,
        "requested_holds": entry.requested_holds,
        "early_destruction": early.state.value if early else None,
    }


def order_place(review: Review, hold: Hold) -> TextPlace:
    """Where a hold's order reference is sealed (the associated data binds it to this row)."""
    return text_place(review.code, Hold.__tablename__, "order_reference_sealed", hold.id)


def order_reference_of(vault: Vault, review: Review, hold: Hold) -> str | None:
    """The hold's order reference; None if it has none or the review's key was destroyed."""
    return open_text(vault, order_place(review, hold), hold.order_reference_sealed)


def hold_json(db: Session, vault: Vault, hold: Hold) -> dict[str, Any]:
    review = db.get(Review, hold.review_id)
    document = db.get(Document, hold.document_id) if hold.document_id else None

    def when(moment: datetime | None) -> str | None:
        return as_utc(moment).isoformat() if moment else None

    return {
        "id": hold.id,
        "review": review.code if review else None,
        "document": document.reference if document else None,
        "reason": hold.reason.value,
        "order_reference": order_reference_of(vault, review, hold) if review else None,
        "state": hold.state.value,
        "requested_by": hold.requested_by,
        "requested_at": when(hold.requested_at),
        "placed_by": hold.placed_by,
        "placed_at": when(hold.placed_at),
        "lifted_by": hold.lifted_by,
        "lifted_at": when(hold.lifted_at),
    }


def certificate_summary(db: Session, certificate: Certificate) -> dict[str, Any]:
    review = db.get(Review, certificate.review_id)
    return {
        "reference": certificate.reference,
        "review": review.code if review else None,
        "issued_at": as_utc(certificate.issued_at).isoformat(),
        "documents": certificate.documents,
        "key_fingerprint": certificate.key_fingerprint,
    }

"""What a certificate says (its content, before signing) and the JSON shapes of the API.

A certificate states what its run did, and only that: each document destroyed with the time its
batch was destroyed, each document kept and why, whether the review key was erased or retained,
what remains, the organisations concerned, and who authorised and carried it out. People are named
in full (user id, name, e-mail, role, organisation) inside the signed body, so that an auditor
holding only the file and the public key can tell who they were, long after their accounts are
gone. Those names are intended in a certificate; they stay out of logs and audit details.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from audit import Actor
from portal.accounts.models import User
from portal.destruction import schemas
from portal.destruction.certificates import FORMAT
from portal.destruction.models import (
    Certificate,
    DestroyedUpload,
    DestructionItem,
    DestructionRun,
    EarlyDestruction,
    Hold,
    HoldState,
)
from portal.destruction.schedule import Entry
from portal.exchange.models import Case, Document, Review
from portal.models import Organisation, as_utc
from portal.schemas import dump
from portal.sealing import open_text, text_place
from storage import TextPlace, Vault

STANDARD = "NIST SP 800-88 Rev. 1"


def iso(moment: datetime) -> str:
    """UTC, to the microsecond, with a Z: one text form for one instant."""
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class KeyOutcome:
    """What the run did with the review key: erased (and when), or retained for kept documents."""

    erased: bool
    key_object: str  # where the key service kept it: a file or token object name, no secret
    erased_at: datetime | None


def identity(db: Session, user_id: int | None) -> dict[str, Any] | None:
    """A person as a certificate names them, resolvable offline: the signature covers it."""
    if user_id is None:
        return None
    user = db.get(User, user_id)
    if user is None:
        return {"user_id": user_id, "name": None, "email": None, "role": None, "organisation": None}
    organisation = db.get(Organisation, user.organisation_id)
    return {
        "user_id": user_id,
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "organisation": _organisation(organisation),
    }


def _organisation(organisation: Organisation | None) -> dict[str, Any] | None:
    if organisation is None:
        return None
    return {"code": organisation.slug, "name": organisation.name}


def carried_out_by(db: Session, actor: Actor) -> dict[str, Any]:
    """The person who ran the command that finished the run, or the process (the worker)."""
    if actor.user_id is not None:
        return {"person": identity(db, actor.user_id)}
    return {"process": actor.role}


def method_statement(*, key: KeyOutcome, destroyed: int, uploads: int, kept: int) -> dict[str, Any]:
    """The method, derived from what was done: never a fixed sentence that claims more."""
    steps = [
        f"The data key of each of the {destroyed} document(s) listed, wrapped by the review key, "
        "and its sealed file name were erased from the database, and its ciphertext was deleted "
        "from storage, every version."
    ]
    if uploads:
        steps.append(
            f"{uploads} upload(s) still in progress were discarded the same way: the wrapped keys "
            "of their parts and their sealed file names were erased from the database, and their "
            "parts deleted from storage."
        )
    if key.erased:
        assert key.erased_at is not None
        steps.append(
            f"The review key ({key.key_object}) was then erased inside the key service at "
            f"{iso(key.erased_at)}."
        )
        backups = (
            "Database and blob backups hold these documents' data keys only wrapped by the review "
            "key, so they are beyond use once no copy of that key remains: once every backup of "
            f"the key service taken before {iso(key.erased_at)} has been deleted or has passed its "
            "stated period (SPEC §4; NIST SP 800-88 cryptographic erase requires every copy of "
            "the key to be gone). This certificate attests the erasure in the key service, not "
            "the deletion of the key service's own backups."
        )
        technique = "cryptographic_erase"
    else:
        steps.append(
            f"The review key ({key.key_object}) was retained, not erased: {kept} document(s) of "
            "the review are kept (see kept_documents) and erasing it would destroy them too."
        )
        backups = (
            "Not beyond use: the review key is retained, so database and blob backups taken "
            "before these documents were destroyed still hold them, readable with that key, "
            "until a later run erases the key and the key service's backups of it are gone."
        )
        technique = "data_key_erasure_and_deletion"
    return {
        "standard": STANDARD,
        "technique": technique,
        "review_key": "erased" if key.erased else "retained",
        "description": " ".join(steps),
        "backups": backups,
    }


def _covers(hold: Hold, document: Document) -> bool:
    """Whether ``hold`` (on the review, one document or one case) covers ``document``."""
    if hold.case_id is not None:
        return hold.case_id == document.case_id
    return hold.document_id in (None, document.id)


def _kept(db: Session, review: Review, references: Sequence[str]) -> list[dict[str, Any]]:
    """Each document the run kept, and why: the holds (or hold requests) on it or its review."""
    if not references:
        return []
    documents = db.exec(
        select(Document).where(
            Document.review_id == review.id, col(Document.reference).in_(list(references))
        )
    ).all()
    holds = db.exec(
        select(Hold)
        .where(
            Hold.review_id == review.id,
            col(Hold.state).in_([HoldState.active, HoldState.requested]),
        )
        .order_by(col(Hold.id))
    ).all()
    kept = []
    for document in sorted(documents, key=lambda d: d.reference):
        reasons = [
            {
                "hold": hold.id,
                "kind": "hold" if hold.state is HoldState.active else "hold_requested",
                "on": "case" if hold.case_id else "document" if hold.document_id else "review",
                "reason": hold.reason.value,
            }
            for hold in holds
            if _covers(hold, document)
        ]
        if not reasons:
            reasons.append({"hold": None, "kind": "hold", "on": "other", "reason": None})
        kept.append(
            {
                "reference": document.reference,
                "size": document.size,
                "sha256": document.sha256,
                "why": reasons,
            }
        )
    return kept


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
    key: KeyOutcome,
    actor: Actor,
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
    organisations = {
        o.id: o
        for o in db.exec(
            select(Organisation).where(
                col(Organisation.id).in_(sorted({d.organisation_id for d in by_id.values()}))
            )
        ).all()
    }
    case_ids = {d.case_id for d in by_id.values() if d.case_id is not None}
    cases = (
        {
            c.id: c.reference
            for c in db.exec(select(Case).where(col(Case.id).in_(sorted(case_ids)))).all()
        }
        if case_ids
        else {}
    )
    documents: list[dict[str, Any]] = []
    for item in items:
        document = by_id[item.document_id]
        organisation = organisations.get(document.organisation_id)
        documents.append(
            {
                "reference": document.reference,
                "size": document.size,
                "sha256": document.sha256,
                "uploaded_at": iso(document.uploaded_at),
                "destroyed_at": iso(item.destroyed_at),
                "state_before": item.previous_state,
                "organisation": organisation.slug if organisation else None,
                "case": cases.get(document.case_id) if document.case_id else None,
            }
        )
    documents.sort(key=lambda d: str(d["reference"]))
    kept = _kept(db, review, held)
    if early is not None:
        authority: dict[str, Any] = {
            "basis": "early_destruction_approved",
            "requested_by": identity(db, early.requested_by),
            "requested_at": iso(early.requested_at),
            "approved_by": identity(db, early.approved_by),
            "approved_at": iso(early.approved_at) if early.approved_at else None,
        }
    else:
        authority = {
            "basis": "retention_schedule",
            "closes_on": review.closes_on.isoformat(),
            "retention_days": review.retention_days,
            "destroy_on": review.destroy_on.isoformat(),
            "review_lead": identity(db, review.lead_user_id),
        }
    return {
        "format": FORMAT,
        "reference": reference,
        "issuer": public_url,
        "review": {
            "code": review.code,
            "scope": "whole_review" if key.erased else "documents_only",
        },
        "organisations": sorted(
            (
                _organisation(organisations.get(i))
                for i in {d.organisation_id for d in by_id.values()}
            ),
            key=lambda o: str(o["code"]) if o else "",
        ),
        "documents": documents,
        "kept_documents": kept,
        "held_documents": sorted(held),
        # Resumable uploads that never became documents: counted, since they name nothing.
        "unfinished_uploads": {
            "count": len(uploads),
            "part_blobs_deleted": sum(upload.parts for upload in uploads),
        },
        "review_key": {
            "state": "erased" if key.erased else "retained",
            "key_object": key.key_object,
            "erased_at": iso(key.erased_at) if key.erased_at else None,
            "retained_for": [k["reference"] for k in kept] if not key.erased else [],
        },
        "method": method_statement(
            key=key, destroyed=len(items), uploads=len(uploads), kept=len(kept)
        ),
        "remains": {
            "audit_events": (
                "every audit event of the review and of each document (upload, views, "
                "downloads, holds, destruction), in the portal's hash-chained signed log"
            ),
            "certificate": "this certificate, stored by the portal and signed with its key",
            "document_metadata": (
                "for each document listed: reference, size, SHA-256 of the plaintext, upload "
                "and destruction times, organisation and case reference"
            ),
            "case_references": sorted(set(cases.values())),
        },
        "authorised_by": authority,
        "carried_out_by": carried_out_by(db, actor),
        "verification": verification,
        "started_at": iso(run.started_at),
        "issued_at": iso(issued_at),
    }


# --- API shapes -------------------------------------------------------------------------------


def schedule_entry(entry: Entry) -> schemas.ScheduleEntry:
    early = entry.early
    return schemas.ScheduleEntry(
        review=entry.review.code,
        state=entry.review.state,
        closes_on=entry.review.closes_on,
        retention_days=entry.review.retention_days,
        destroy_on=entry.destroy_on,
        status=entry.status,
        documents=entry.documents,
        held_documents=entry.held_documents,
        review_holds=entry.review_holds,
        requested_holds=entry.requested_holds,
        early_destruction=early.state if early else None,
    )


def entry_json(entry: Entry) -> dict[str, Any]:
    return dump(schedule_entry(entry))


def order_place(review: Review, hold: Hold) -> TextPlace:
    """Where a hold's order reference is sealed (the associated data binds it to this row)."""
    return text_place(review.code, Hold.__tablename__, "order_reference_sealed", hold.id)


def order_reference_of(vault: Vault, review: Review, hold: Hold) -> str | None:
    """The hold's order reference; None if it has none or the review's key was destroyed."""
    return open_text(vault, order_place(review, hold), hold.order_reference_sealed)


def hold_record(db: Session, vault: Vault, hold: Hold) -> schemas.Hold:
    """The hold as the API and the console show it: what it covers and why it was lifted."""
    review = db.get(Review, hold.review_id)
    document = db.get(Document, hold.document_id) if hold.document_id else None
    case = db.get(Case, hold.case_id) if hold.case_id else None
    assert hold.id is not None  # a hold shown is a hold stored
    return schemas.Hold(
        id=hold.id,
        review=review.code if review else None,
        document=document.reference if document else None,
        reason=hold.reason,
        order_reference=order_reference_of(vault, review, hold) if review else None,
        state=hold.state,
        requested_by=hold.requested_by,
        requested_at=hold.requested_at,
        placed_by=hold.placed_by,
        placed_at=hold.placed_at,
        lifted_by=hold.lifted_by,
        lifted_at=hold.lifted_at,
        scope=hold.scope,
        case=case.reference if case else None,
        lift_reason=hold.lift_reason,
    )


def certificate_record(db: Session, certificate: Certificate) -> schemas.CertificateSummary:
    review = db.get(Review, certificate.review_id)
    return schemas.CertificateSummary(
        reference=certificate.reference,
        review=review.code if review else None,
        issued_at=certificate.issued_at,
        documents=certificate.documents,
        key_fingerprint=certificate.key_fingerprint,
    )


def certificate_summary(db: Session, certificate: Certificate) -> dict[str, Any]:
    return dump(certificate_record(db, certificate))

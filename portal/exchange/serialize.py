"""The JSON shapes of the exchange that scripts and other systems rely on (see the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from portal import policy
from portal.exchange import documents
from portal.exchange.acting import Acting
from portal.exchange.asking import view_request
from portal.exchange.models import Case, Document, Request, Review
from portal.exchange.review_texts import open_review_texts
from portal.exchange.reviews import request_progress
from portal.models import Organisation, as_utc
from storage import Vault


def review_json(vault: Vault, review: Review) -> dict[str, Any]:
    """A review; once it is destroyed, ``closed_by_destruction`` and no texts (they are erased)."""
    texts = open_review_texts(vault, review)
    return {
        "code": review.code,
        "title": texts.title,
        "legal_basis": texts.legal_basis,
        "closed_by_destruction": texts.closed_by_destruction,
        "state": review.state.value,
        "opens_on": review.opens_on.isoformat(),
        "closes_on": review.closes_on.isoformat(),
        "retention_days": review.retention_days,
        "destroy_on": review.destroy_on.isoformat(),
    }


def request_json(db: Session, vault: Vault, review: Review, request: Request) -> dict[str, Any]:
    """A request; once its review is destroyed, ``closed_by_destruction`` and no texts."""
    organisation = db.get(Organisation, request.organisation_id)
    view = view_request(vault, review, request)
    return {
        "id": request.id,
        "organisation": organisation.slug if organisation else None,
        "title": view.title,
        "instructions": view.instructions,
        "due_on": request.due_on.isoformat(),
        "expected": request.expected_items,
        "received": request_progress(db, request),
        "closed_by_destruction": view.closed_by_destruction,
    }


def case_json(case: Case) -> dict[str, Any]:
    return {"reference": case.reference, "created_at": as_utc(case.created_at).isoformat()}


def document_json(
    db: Session, acting: Acting, vault: Vault, document: Document, review: Review
) -> dict[str, Any]:
    organisation = db.get(Organisation, document.organisation_id)
    case = db.get(Case, document.case_id) if document.case_id else None
    body: dict[str, Any] = {
        "reference": document.reference,
        "review": review.code,
        "organisation": organisation.slug if organisation else None,
        "kind": document.kind.value,
        "request": document.request_id,
        "case": case.reference if case else None,
        "state": document.state.value,
        "size": document.size,
        "sha256": document.sha256,
        "content_type": document.content_type,
        "uploaded_at": as_utc(document.uploaded_at).isoformat(),
        "scan": {
            "verdict": document.scan_verdict,
            "signature": document.scan_signature,
            "scanned_at": as_utc(document.scanned_at).isoformat() if document.scanned_at else None,
        },
        "withdrawn_at": as_utc(document.withdrawn_at).isoformat()
        if document.withdrawn_at
        else None,
        "destroyed_at": as_utc(document.destroyed_at).isoformat()
        if document.destroyed_at
        else None,
    }
    if acting.caller is None or policy.can_see_file_name(db, acting.caller, document, review):
        body["filename"] = documents.file_name(vault, document, review)
    return body


def receipt_json(document: Document, review: Review) -> dict[str, Any]:
    """What the uploader keeps as proof of what was sent: no file name, nothing personal."""
    return {
        "reference": document.reference,
        "review": review.code,
        "sha256": document.sha256,
        "size": document.size,
        "received_at": as_utc(document.uploaded_at).isoformat(),
        "state": document.state.value,
    }

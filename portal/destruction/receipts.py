"""Receipts outlive the documents: after destruction, an uploader's receipt answers with what the
certificate records for the document (reference, size, SHA-256, upload and destruction times,
the certificate's reference), so that the organisation that sent it keeps proof of what it sent.

No file name and nothing personal, as before destruction; the access check is the receipt's own
(those who could see the document), and others still get 404.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from portal.destruction.models import Certificate, DestructionItem
from portal.destruction.record import iso
from portal.exchange import documents
from portal.exchange.acting import Acting
from portal.exchange.models import Document, DocumentState, Review
from portal.exchange.serialize import receipt_json


def receipt_of(
    db: Session, acting: Acting, typed_reference: str
) -> tuple[dict[str, Any], Document, Review]:
    """The receipt of a document the caller may see, destroyed or not."""
    document, review = documents.find_document(db, acting, typed_reference, keep_destroyed=True)
    body = receipt_json(document, review)
    if document.state is DocumentState.destroyed:
        body.update(_certified(db, document))
    return body, document, review


def _certified(db: Session, document: Document) -> dict[str, Any]:
    """What the document's destruction certificate records for it; until the run that destroyed
    it has issued its certificate (a few moments), the document row's own trimmed record."""
    found = db.exec(
        select(Certificate)
        .join(DestructionItem, col(DestructionItem.run_id) == col(Certificate.run_id))
        .where(DestructionItem.document_id == document.id)
    ).first()
    entry: dict[str, Any] | None = None
    if found is not None:
        certified = json.loads(found.body).get("documents", [])
        entry = next((d for d in certified if d.get("reference") == document.reference), None)
    if found is None or entry is None:
        return {
            "destroyed_at": iso(document.destroyed_at) if document.destroyed_at else None,
            "certificate": None,
        }
    return {
        "sha256": entry["sha256"],
        "size": entry["size"],
        "destroyed_at": entry["destroyed_at"],
        "certificate": found.reference,
    }

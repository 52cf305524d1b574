"""The DPO's subject-access view: for one case reference, what the portal held, who opened it,
and what ended it.

A case reference is pseudonymous (never a name), so it survives destruction, and so does the
link from each document to the certificate that destroyed it. The view shows references and
metadata only: never a file name, never content. Looking is itself recorded (SPEC §5).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from audit import MAX_PAGE, AuditRecord, EventFilter, Target, search
from portal.audit_vocabulary import TargetKind
from portal.auditing import Auditor
from portal.console.display import event_rows, people
from portal.console.history import iso_time
from portal.console.search import case_documents, record_search
from portal.destruction.models import Certificate, DestructionItem, Hold
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound
from portal.exchange.models import Case, Document, Review
from portal.models import Organisation
from portal.references import parse_reference

# Per document on the console page; the page says so and links to the exports, which (like the
# API) carry every event, read from the audit log page by page (MAX_PAGE events at a time).
PAGE_EVENTS = 1000
CSV_FIELDS = (
    "document",
    "state",
    "size",
    "uploaded_at",
    "scanned_at",
    "withdrawn_at",
    "destroyed_at",
    "certificate",
    "event_seq",
    "event_time",
    "action",
    "user_id",
    "email",
    "role",
    "outcome",
)


def find_case(db: Session, typed: str) -> Case:
    """The case with this reference; a mistyped one is invalid (400), an unknown one 404."""
    reference = parse_reference(typed.strip()[:100], "case reference")
    case = db.exec(select(Case).where(Case.reference == reference)).first()
    if case is None:
        raise NotFound("There is no case with that reference.")
    return case


def _holds(db: Session, document: Document) -> list[dict[str, Any]]:
    """Holds on the document itself, on its case, and on its whole review (which keep it too).

    A case hold has no document id: without the case test it read as a hold on the review."""
    on_case: ColumnElement[bool] = col(Hold.case_id).is_(None)
    if document.case_id is not None:
        on_case = on_case | (col(Hold.case_id) == document.case_id)
    found = db.exec(
        select(Hold)
        .where(
            Hold.review_id == document.review_id,
            (col(Hold.document_id) == document.id) | (col(Hold.document_id).is_(None) & on_case),
        )
        .order_by(col(Hold.id))
    ).all()
    return [
        {
            "id": h.id,
            "scope": h.scope.value,
            "reason": h.reason.value,
            "state": h.state.value,
            "requested_at": iso_time(h.requested_at),
            "placed_at": iso_time(h.placed_at),
            "lifted_at": iso_time(h.lifted_at),
        }
        for h in found
    ]


def _destruction(db: Session, document: Document) -> dict[str, Any] | None:
    item = db.exec(
        select(DestructionItem).where(DestructionItem.document_id == document.id)
    ).first()
    if item is None:
        return None
    certificate = db.exec(select(Certificate).where(Certificate.run_id == item.run_id)).first()
    return {
        "run": item.run_id,
        "destroyed_at": iso_time(item.destroyed_at),
        "certificate": certificate.reference if certificate else None,
    }


def _events(db: Session, reference: str) -> list[AuditRecord]:
    """Every event naming the document, newest first: all the pages, never only the first."""
    records: list[AuditRecord] = []
    before: int | None = None
    while True:
        page = search(
            db.connection(), EventFilter(document=reference), before=before, limit=MAX_PAGE
        )
        records.extend(page.records)
        if page.next_before is None:
            return records
        before = page.next_before


def _accesses(db: Session, reference: str) -> list[dict[str, Any]]:
    rows = []
    for row in event_rows(db, _events(db, reference)):
        actor = row["actor"]
        rows.append(
            {
                "seq": row["seq"],
                "time": row["time"],
                "action": row["action"],
                "action_words": row["action_words"],
                "outcome": row["outcome"],
                "user_id": actor["user_id"],
                "email": actor["email"],
                "role": actor["role"],
                "organisation": actor["organisation"],
            }
        )
    rows.reverse()  # oldest first: the document's story in order
    return rows


def subject_access(db: Session, case: Case) -> dict[str, Any]:
    """Everything about the case, as JSON-ready data: every event of every document, however
    many (``events`` counts them; nothing is cut short)."""
    review = db.get(Review, case.review_id)
    organisation = db.get(Organisation, case.organisation_id)
    documents = db.exec(
        select(Document).where(Document.case_id == case.id).order_by(col(Document.id))
    ).all()
    who = people(db, [d.uploaded_by for d in documents] + [case.created_by])
    items = []
    for document in documents:
        accesses = _accesses(db, document.reference)
        uploader = who.get(document.uploaded_by)
        items.append(
            {
                "reference": document.reference,
                "kind": document.kind.value,
                "state": document.state.value,
                "size": document.size,
                "sha256": document.sha256,
                "uploaded_at": iso_time(document.uploaded_at),
                "uploaded_by": {
                    "user_id": document.uploaded_by,
                    "email": uploader.email if uploader else None,
                },
                "scanned_at": iso_time(document.scanned_at),
                "withdrawn_at": iso_time(document.withdrawn_at),
                "destroyed_at": iso_time(document.destroyed_at),
                "holds": _holds(db, document),
                "destruction": _destruction(db, document),
                "accesses": accesses,
                "events": len(accesses),
            }
        )
    creator = who.get(case.created_by)
    return {
        "case": {
            "reference": case.reference,
            "review": review.code if review else None,
            "organisation": organisation.name if organisation else None,
            "created_at": iso_time(case.created_at),
            "created_by": {
                "user_id": case.created_by,
                "email": creator.email if creator else None,
            },
        },
        "documents": items,
    }


def view_subject_access(
    db: Session, auditor: Auditor, acting: Acting, typed: str
) -> dict[str, Any]:
    """Find, build, and record the look (an ``audit.searched`` on the case, with the case as
    its filter: a DPO reading about a person is an access like any other). The caller commits."""
    case = find_case(db, typed)
    found = subject_access(db, case)
    where = EventFilter(
        case=case.reference, case_documents=case_documents(db, case.reference) or ()
    )
    shown = sum(len(d["accesses"]) for d in found["documents"])
    record_search(
        db, auditor, acting, where, shown=shown, target=Target(TargetKind.CASE, case.reference)
    )
    return found


def for_page(found: dict[str, Any]) -> dict[str, Any]:
    """The same for the console page: at most ``PAGE_EVENTS`` events per document on screen
    (the oldest), each document saying how many it has; the exports carry them all."""
    documents = []
    for document in found["documents"]:
        shown = dict(document)
        shown["accesses"] = document["accesses"][:PAGE_EVENTS]
        shown["more_events"] = document["events"] - len(shown["accesses"])
        documents.append(shown)
    return {**found, "documents": documents}


def as_csv(found: dict[str, Any]) -> str:
    """One row per access to each document (a document never opened: one row, no event)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for document in found["documents"]:
        base = {
            "document": document["reference"],
            "state": document["state"],
            "size": document["size"],
            "uploaded_at": document["uploaded_at"],
            "scanned_at": document["scanned_at"] or "",
            "withdrawn_at": document["withdrawn_at"] or "",
            "destroyed_at": document["destroyed_at"] or "",
            "certificate": (document["destruction"] or {}).get("certificate") or "",
        }
        for event in document["accesses"] or [None]:
            row = dict(base)
            if event is not None:
                row.update(
                    event_seq=event["seq"],
                    event_time=event["time"],
                    action=event["action"],
                    user_id=event["user_id"] if event["user_id"] is not None else "",
                    email=event["email"] or "",
                    role=event["role"] or "",
                    outcome=event["outcome"],
                )
            writer.writerow(row)
    return out.getvalue()

"""Who may see and do what: role x organisation x review membership, in one place.

The web pages, the API and the command line all ask these functions; nothing else decides access.
Everything the caller may not see is reported as absent (the callers turn that into a 404), so a
reference of another organisation or review cannot be told from one that does not exist.

Content (the bytes of a document) is the narrowest right of all: only inspectors and leads on the
document's review team. DPOs and administrators never read content (separation of duties).
"""

from __future__ import annotations

from sqlalchemy import exists
from sqlmodel import Session, col, select

from portal.accounts.caller import Caller
from portal.accounts.models import Role
from portal.exchange.models import (
    Document,
    DocumentKind,
    DocumentState,
    Review,
    ReviewMember,
    ReviewOrganisation,
    ReviewState,
)

TEAM_ROLES = frozenset({Role.inspector, Role.lead})


def is_team_member(db: Session, caller: Caller, review: Review) -> bool:
    if caller.role not in TEAM_ROLES:
        return False
    if review.lead_user_id == caller.user_id:
        return True
    return bool(
        db.exec(
            select(
                exists().where(
                    col(ReviewMember.review_id) == review.id,
                    col(ReviewMember.user_id) == caller.user_id,
                )
            )
        ).one()
    )


def takes_part(db: Session, caller: Caller, review: Review) -> bool:
    """The caller's organisation is one the review asks for records."""
    return bool(
        db.exec(
            select(
                exists().where(
                    col(ReviewOrganisation.review_id) == review.id,
                    col(ReviewOrganisation.organisation_id) == caller.organisation_id,
                )
            )
        ).one()
    )


def can_see_review(db: Session, caller: Caller, review: Review) -> bool:
    if caller.role in (Role.dpo, Role.admin):
        return True
    if caller.role in TEAM_ROLES:
        return is_team_member(db, caller, review)
    # Uploaders see the reviews addressed to their organisation once they are under way.
    return review.state is not ReviewState.draft and takes_part(db, caller, review)


def can_manage_review(db: Session, caller: Caller, review: Review) -> bool:
    """Team, organisations, requests, dates: the review's lead, or an administrator."""
    if caller.role is Role.admin:
        return True
    return caller.role is Role.lead and review.lead_user_id == caller.user_id


def can_create_review(caller: Caller) -> bool:
    return caller.role in (Role.lead, Role.admin)


def upload_kind(db: Session, caller: Caller, review: Review) -> DocumentKind | None:
    """What the caller may upload into the review now (records or team notes), or None."""
    if review.state is not ReviewState.open:
        return None
    if caller.role is Role.uploader and takes_part(db, caller, review):
        return DocumentKind.record
    if is_team_member(db, caller, review):
        return DocumentKind.note
    return None


def can_see_document(db: Session, caller: Caller, document: Document, review: Review) -> bool:
    """Metadata (reference, state, size, hash, receipt); not content."""
    if caller.role is Role.dpo:
        return True
    if caller.role is Role.uploader:
        # Their own organisation's records only; never the team's notes.
        return (
            document.kind is DocumentKind.record
            and document.organisation_id == caller.organisation_id
            and can_see_review(db, caller, review)
        )
    return is_team_member(db, caller, review)


def can_see_file_name(db: Session, caller: Caller, document: Document, review: Review) -> bool:
    """The original file name is personal data: the uploading organisation and the team."""
    if caller.role is Role.uploader:
        return document.organisation_id == caller.organisation_id
    return is_team_member(db, caller, review)


def can_read_content(db: Session, caller: Caller, document: Document, review: Review) -> bool:
    return document.state is DocumentState.available and is_team_member(db, caller, review)


def can_withdraw(db: Session, caller: Caller, document: Document, review: Review) -> bool:
    if document.state not in (DocumentState.pending_scan, DocumentState.available):
        return False
    if document.kind is DocumentKind.note:
        return is_team_member(db, caller, review)
    return caller.role is Role.uploader and document.organisation_id == caller.organisation_id


def can_issue_case(db: Session, caller: Caller, review: Review) -> bool:
    return upload_kind(db, caller, review) is DocumentKind.record


def can_see_requests_of(db: Session, caller: Caller, review: Review, organisation_id: int) -> bool:
    if caller.role is Role.uploader:
        return organisation_id == caller.organisation_id and can_see_review(db, caller, review)
    return can_see_review(db, caller, review) and caller.role is not Role.admin


# --- Why not: the reason code a refusal is audited with (docs/audit-format.md, "Refusals") ----
# Codes are words, never text about the object: they say which rule refused, nothing more.


def why_not_review(db: Session, caller: Caller, review: Review) -> str:
    """Why ``can_see_review`` refused."""
    if caller.role in TEAM_ROLES:
        return "not_member"
    if caller.role is Role.uploader and takes_part(db, caller, review):
        return "not_open"  # a draft is the team's until it opens
    if caller.role is Role.uploader:
        return "other_organisation"
    return "role"


def why_not_document(db: Session, caller: Caller, document: Document, review: Review) -> str:
    """Why ``can_see_document`` refused."""
    if caller.role is Role.uploader:
        if document.organisation_id != caller.organisation_id:
            return "other_organisation"
        if document.kind is not DocumentKind.record:
            return "team_note"
        return why_not_review(db, caller, review)
    if caller.role in TEAM_ROLES:
        return "not_member"
    return "role"


def why_not_content(db: Session, caller: Caller, document: Document, review: Review) -> str:
    """Why ``can_read_content`` refused (the caller may see the metadata)."""
    if caller.role not in TEAM_ROLES:
        return "role"  # separation of duties: uploaders, DPOs and administrators never read it
    if not is_team_member(db, caller, review):
        return "not_member"
    return "not_available"

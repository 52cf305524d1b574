"""Bringing destruction forward: a DPO asks, a second person (another DPO or an admin) approves.

Threat: one person, by mistake or under pressure, destroying a review's records before their time.
The approver must be a different user from the requester; the run that follows records both in the
certificate.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from audit import Target
from portal.accounts.models import Role
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.destruction.errors import Conflict, SecondPersonRequired
from portal.destruction.models import EarlyDestruction, EarlyState
from portal.exchange import reviews
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound
from portal.exchange.models import Review, ReviewState


def open_request(db: Session, review: Review) -> EarlyDestruction | None:
    return db.exec(
        select(EarlyDestruction)
        .where(
            EarlyDestruction.review_id == review.id,
            col(EarlyDestruction.state).in_([EarlyState.pending, EarlyState.approved]),
        )
        .order_by(col(EarlyDestruction.id).desc())
    ).first()


def _review(db: Session, acting: Acting, code: str, *roles: Role) -> Review:
    caller = acting.caller
    if caller is None or caller.role not in roles:
        # Two named people are the point: the operator at the command line is nobody.
        raise NotFound("There is no review with that code that you can see.")
    return reviews.find_review(db, acting, code)


def request_early(
    db: Session, auditor: Auditor, acting: Acting, review_code: str
) -> EarlyDestruction:
    """A DPO asks to destroy a closed review before its date. The caller commits."""
    review = _review(db, acting, review_code, Role.dpo)
    if review.state is not ReviewState.closed:
        raise Conflict(
            f"Review {review.code} is {review.state.value}: only a closed review can be "
            "destroyed. Ask its lead to close it first.",
            code="review_not_closed",
        )
    if review.destroy_on <= acting.now.date():
        raise Conflict(
            f"Review {review.code} is due for destruction already ({review.destroy_on}); "
            "it will be destroyed by the next run unless it is held.",
            code="already_due",
        )
    existing = open_request(db, review)
    if existing is not None:
        raise Conflict(
            f"Destroying review {review.code} early was requested already "
            f"({existing.state.value}).",
            code="already_requested",
        )
    assert review.id is not None and acting.user_id is not None
    early = EarlyDestruction(
        review_id=review.id,
        state=EarlyState.pending,
        requested_by=acting.user_id,
        requested_at=acting.now,
    )
    db.add(early)
    db.flush()
    _audit(db, auditor, acting, Action.DESTRUCTION_REQUESTED, review, early)
    return early


def approve_early(
    db: Session, auditor: Auditor, acting: Acting, review_code: str
) -> EarlyDestruction:
    """Another DPO or an admin approves; the next run destroys the review. The caller commits."""
    review = _review(db, acting, review_code, Role.dpo, Role.admin)
    early = open_request(db, review)
    if early is None or early.state is not EarlyState.pending:
        raise Conflict(
            f"There is no request waiting for approval to destroy review {review.code} early.",
            code="nothing_to_approve",
        )
    if early.requested_by == acting.user_id:
        reviews.refuse_review(db, acting, review, "own_request", Action.DESTRUCTION_APPROVED)
        raise SecondPersonRequired(
            "You asked for this early destruction yourself: another DPO or an administrator "
            "must approve it."
        )
    if review.state is not ReviewState.closed:
        raise Conflict(f"Review {review.code} is {review.state.value}.", code="review_not_closed")
    early.state = EarlyState.approved
    early.approved_by = acting.user_id
    early.approved_at = acting.now
    db.add(early)
    _audit(db, auditor, acting, Action.DESTRUCTION_APPROVED, review, early)
    return early


def audit_role_refusal(db: Session, acting: Acting, review_code: str, attempt: Action) -> None:
    """A route refused the caller's role (a lead requesting; a lead, an inspector or an uploader
    approving): audit ``attempt`` (the request or the approval) as denied if the review exists
    (portal.web.access)."""
    reviews.audit_role_refusal(db, acting, review_code, attempt)


def _audit(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    action: Action,
    review: Review,
    early: EarlyDestruction,
) -> None:
    auditor.record_as(
        db,
        acting,
        action,
        target=Target(TargetKind.REVIEW, review.code),
        review=review.code,
        details={"early": True, "state": early.state.value},
    )

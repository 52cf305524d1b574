"""What is due for destruction, and when: ``destroy_on`` = ``closes_on`` + ``retention_days``.

Dates are UTC dates of the time passed in. A review is *due* when it is closed, its date has come
(or an early destruction was approved), and no DPO's hold covers the whole review. Documents held
one by one or through their case are skipped within a due review and reported.

Which holds bind: a DPO's (``active``) always; a lead's request (``requested``) too while the
review is destroyed *early* (approved, its date not yet come), until a DPO places or declines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_
from sqlmodel import Session, col, select

from portal import policy
from portal.accounts.models import Role
from portal.destruction.early import open_request
from portal.destruction.models import EarlyDestruction, EarlyState, Hold, HoldState
from portal.exchange.acting import Acting
from portal.exchange.models import Document, DocumentState, Review, ReviewState

Status = Literal["due", "scheduled", "held", "not_closed", "destroyed"]


@dataclass(frozen=True)
class Entry:
    """One review on the schedule."""

    review: Review
    status: Status
    documents: int  # not yet destroyed
    held_documents: list[str] = field(default_factory=list)  # references
    review_holds: list[int] = field(default_factory=list)  # binding holds on the whole review
    requested_holds: list[int] = field(default_factory=list)  # leads' requests
    early: EarlyDestruction | None = None
    time_has_come: bool = False  # closed, and its date passed or early destruction approved

    @property
    def destroy_on(self) -> date:
        return self.review.destroy_on

    @property
    def due(self) -> bool:
        return self.status == "due"


def binding_states(review: Review, early: EarlyDestruction | None, today: date) -> list[HoldState]:
    """The hold states that stop destruction of ``review`` now: a lead's request stops only an
    early destruction (docs/destruction.md)."""
    early_only = (
        early is not None and early.state is EarlyState.approved and review.destroy_on > today
    )
    return [HoldState.active, HoldState.requested] if early_only else [HoldState.active]


def held_documents(review_id: int, states: list[HoldState]) -> Any:
    """A query of the ids of the review's documents that a hold in ``states`` covers: held one
    by one, or through their case (so a document uploaded to a held case later is covered)."""
    holds = select(Hold).where(Hold.review_id == review_id, col(Hold.state).in_(states))
    by_document = holds.with_only_columns(col(Hold.document_id)).where(
        col(Hold.document_id).is_not(None)
    )
    by_case = holds.with_only_columns(col(Hold.case_id)).where(col(Hold.case_id).is_not(None))
    covered: ColumnElement[bool] = or_(
        col(Document.id).in_(by_document), col(Document.case_id).in_(by_case)
    )
    return select(Document.id).where(Document.review_id == review_id, covered)


def entry_for(db: Session, review: Review, today: date) -> Entry:
    assert review.id is not None
    early = open_request(db, review)
    binding = binding_states(review, early, today)
    holds = db.exec(
        select(Hold).where(
            Hold.review_id == review.id,
            col(Hold.state).in_([HoldState.active, HoldState.requested]),
        )
    ).all()
    held_refs = list(
        db.exec(
            select(Document.reference).where(
                col(Document.id).in_(held_documents(review.id, binding)),
                Document.state != DocumentState.destroyed,
            )
        ).all()
    )
    remaining = db.exec(
        select(func.count())
        .select_from(Document)
        .where(Document.review_id == review.id, Document.state != DocumentState.destroyed)
    ).one()
    review_holds = [
        h.id
        for h in holds
        if h.state in binding and h.document_id is None and h.case_id is None and h.id
    ]
    requested = [h.id for h in holds if h.state is HoldState.requested and h.id]
    time_has_come = review.state is ReviewState.closed and (
        review.destroy_on <= today or (early is not None and early.state is EarlyState.approved)
    )
    status: Status
    if review.state is ReviewState.destroyed:
        status = "destroyed"
    elif review_holds:
        status = "held"
    elif review.state is not ReviewState.closed:
        status = "not_closed"
    elif time_has_come:
        status = "due"
    else:
        status = "scheduled"
    return Entry(
        review=review,
        status=status,
        documents=int(remaining),
        held_documents=sorted(held_refs),
        review_holds=review_holds,
        requested_holds=requested,
        early=early,
        time_has_come=time_has_come,
    )


def schedule(
    db: Session, acting: Acting, *, today: date, include_destroyed: bool = False
) -> list[Entry]:
    """Every review the caller may see (DPOs: all; leads: their teams'), soonest first."""
    query = select(Review).where(Review.state != ReviewState.draft)
    if not include_destroyed:
        query = query.where(Review.state != ReviewState.destroyed)
    found = []
    caller = acting.caller
    for review in db.exec(query.order_by(col(Review.code))).all():
        if caller is not None and not (
            caller.role is Role.dpo
            or (caller.role is Role.lead and policy.is_team_member(db, caller, review))
        ):
            continue
        found.append(entry_for(db, review, today))
    return sorted(found, key=lambda e: (e.destroy_on, e.review.code))


def due_reviews(db: Session, *, today: date, review_code: str | None = None) -> list[Entry]:
    """Closed reviews whose destruction should run now (held ones come back as ``held``)."""
    query = select(Review).where(Review.state == ReviewState.closed)
    if review_code is not None:
        query = query.where(Review.code == review_code.strip().upper())
    entries = [entry_for(db, review, today) for review in db.exec(query).all()]
    return [e for e in entries if e.time_has_come]

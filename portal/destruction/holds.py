"""Holds: a DPO stops destruction of a review, of one document or of one case (every document of
it, those uploaded after the hold included); a lead may ask for one.

A hold carries a reason category and, optionally, the reference of the order behind it, held to a
few safe characters (no spaces): it is not a place for names or notes. The order reference is kept
out of the audit log and out of every e-mail all the same; the log gets the category only. It is
stored sealed under the review's key (``portal.sealing``): a court's reference can still point to
a person, and destroying the review's key erases it with the rest of the review.
A lead's request is recorded and shown to DPOs; it does not stop scheduled destruction (only a
DPO's hold does) but it does stop *early* destruction of what it names until a DPO places or
declines it (docs/destruction.md). Lifting takes a reason category (``LiftReason``), recorded on
the hold and in the audit event.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from audit import Target
from portal import policy
from portal.accounts.models import Role
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.destruction.models import Hold, HoldReason, HoldState, LiftReason
from portal.destruction.record import hold_record, order_place
from portal.exchange import documents, reviews
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound, Refused
from portal.exchange.models import Case, Document, DocumentState, Review, ReviewState
from portal.models import parse_id
from portal.schemas import dump
from portal.sealing import seal_text
from storage import Vault

ORDER_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/._-]{0,39}")


def _reason(value: str) -> HoldReason:
    try:
        return HoldReason(value)
    except ValueError:
        choices = ", ".join(r.value for r in HoldReason)
        raise Refused(
            f"Choose the reason for the hold: one of {choices}.", code="invalid_reason"
        ) from None


def _lift_reason(value: str) -> LiftReason:
    try:
        return LiftReason(value)
    except ValueError:
        choices = ", ".join(r.value for r in LiftReason)
        raise Refused(
            f"Choose why the hold is lifted: one of {choices}.", code="invalid_lift_reason"
        ) from None


def _order_reference(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not ORDER_REFERENCE.fullmatch(value):
        raise Refused(
            "The order reference may hold only letters, digits and / . _ - (at most 40, no "
            "spaces), for example CO/2027/0142. Do not put names or notes in it.",
            code="invalid_order_reference",
        )
    return value


def place_hold(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    *,
    review_code: str,
    document_reference: str | None,
    reason: str,
    order_reference: str | None = None,
    case_reference: str | None = None,
    vault: Vault,
) -> Hold:
    """A DPO's hold (active at once), or a lead's request for one, on the review, one document
    of it or one case of it. The caller commits."""
    why = _reason(reason)
    order = _order_reference(order_reference)
    caller = acting.caller
    review = reviews.find_review(db, acting, review_code, attempt=Action.HOLD_PLACED)
    if caller is not None and not (
        caller.role is Role.dpo
        or (caller.role is Role.lead and policy.is_team_member(db, caller, review))
    ):
        reason = "not_member" if caller.role is Role.lead else "role"
        reviews.refuse_review(db, acting, review, reason, Action.HOLD_PLACED)
        raise NotFound("There is no review with that code that you can see.")
    if document_reference and case_reference:
        raise Refused(
            "Hold either one document or one case, not both: leave one of them empty.",
            code="invalid_scope",
        )
    case: Case | None = None
    if case_reference:
        # A mistyped reference is 400; a case of another review is 404, as one not there.
        case = reviews.find_case(db, acting, review, case_reference)
    document: Document | None = None
    if document_reference:
        document, in_review = documents.find_document(
            db, acting, document_reference, attempt=Action.HOLD_PLACED
        )
        if in_review.id != review.id:
            raise NotFound()
        if document.state is DocumentState.destroyed:
            raise Refused(
                f"Document {document.reference} has been destroyed already.", code="destroyed"
            )
    if review.state is ReviewState.destroyed:
        raise Refused(f"Review {review.code} has been destroyed already.", code="destroyed")
    requesting = caller is not None and caller.role is Role.lead
    hold = _open_request(db, review, document, case) if not requesting else None
    if hold is None:
        assert review.id is not None
        hold = Hold(
            review_id=review.id,
            document_id=document.id if document else None,
            case_id=case.id if case else None,
            reason=why,
            state=HoldState.requested,
        )
        if requesting:
            hold.requested_by = acting.user_id
            hold.requested_at = acting.now
    if not requesting:
        # A DPO's hold; if a lead asked for this one, the request becomes the hold.
        hold.state = HoldState.active
        hold.reason = why
        hold.placed_by = acting.user_id
        hold.placed_at = acting.now
    db.add(hold)
    db.flush()
    assert hold.id is not None
    if order is not None:  # a DPO's own order replaces the one a lead gave; none keeps it
        hold.order_reference_sealed = seal_text(vault, order_place(review, hold), order)
        db.add(hold)
        db.flush()
    auditor.record_as(
        db,
        acting,
        Action.HOLD_PLACED,
        target=Target(TargetKind.HOLD, str(hold.id)),
        review=review.code,
        document=document.reference if document else None,
        details=_scope_details(hold, case) | {"reason": why.value, "state": hold.state.value},
    )
    return hold


def _scope_details(hold: Hold, case: Case | None) -> dict[str, str]:
    """What the hold covers, for its audit events: the scope and, for a case, its reference
    (pseudonymous, like a document's)."""
    details = {"scope": hold.scope.value}
    if case is not None:
        details["case"] = case.reference
    return details


def _open_request(
    db: Session, review: Review, document: Document | None, case: Case | None
) -> Hold | None:
    query = select(Hold).where(Hold.review_id == review.id, Hold.state == HoldState.requested)
    query = query.where(
        col(Hold.document_id).is_(None) if document is None else Hold.document_id == document.id
    )
    query = query.where(col(Hold.case_id).is_(None) if case is None else Hold.case_id == case.id)
    return db.exec(query.order_by(col(Hold.id))).first()


def find_hold(db: Session, acting: Acting, hold_id: str) -> Hold:
    number = parse_id(hold_id)
    hold = db.get(Hold, number) if number is not None else None
    if hold is None or not _can_see(db, acting, hold):
        raise NotFound("There is no hold with that number that you can see.")
    return hold


def _can_see(db: Session, acting: Acting, hold: Hold) -> bool:
    caller = acting.caller
    if caller is None or caller.role is Role.dpo:
        return True
    review = db.get(Review, hold.review_id)
    return (
        caller.role is Role.lead
        and review is not None
        and policy.is_team_member(db, caller, review)
    )


def lift_hold(db: Session, auditor: Auditor, acting: Acting, hold_id: str, *, reason: str) -> Hold:
    """A DPO lifts a hold, or declines a lead's request, saying why. The caller commits."""
    hold = find_hold(db, acting, hold_id)
    if acting.caller is not None and acting.caller.role is not Role.dpo:
        raise NotFound("There is no hold with that number that you can see.")
    why = _lift_reason(reason)
    if hold.state is HoldState.lifted:
        raise Refused(f"Hold {hold.id} was lifted already.", code="invalid_state")
    previous = hold.state
    hold.state = HoldState.lifted
    hold.lifted_by = acting.user_id
    hold.lifted_at = acting.now
    hold.lift_reason = why
    db.add(hold)
    review = db.get(Review, hold.review_id)
    document = db.get(Document, hold.document_id) if hold.document_id else None
    case = db.get(Case, hold.case_id) if hold.case_id else None
    assert review is not None
    auditor.record_as(
        db,
        acting,
        Action.HOLD_LIFTED,
        target=Target(TargetKind.HOLD, str(hold.id)),
        review=review.code,
        document=document.reference if document else None,
        details=_scope_details(hold, case)
        | {
            "reason": hold.reason.value,
            "lift_reason": why.value,
            "previous_state": previous.value,
        },
    )
    return hold


def list_holds(db: Session, acting: Acting, *, include_lifted: bool = False) -> list[Hold]:
    query = select(Hold).order_by(col(Hold.id).desc())
    if not include_lifted:
        query = query.where(Hold.state != HoldState.lifted)
    return [hold for hold in db.exec(query.limit(1000)).all() if _can_see(db, acting, hold)]


def hold_view(db: Session, vault: Vault, hold: Hold) -> dict[str, Any]:
    """The hold as the API and the console show it: what it covers and why it was lifted."""
    return dump(hold_record(db, vault, hold))

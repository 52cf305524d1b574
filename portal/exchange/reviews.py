"""Reviews, their teams and organisations, requests and cases: plain functions, no HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, func, select

from audit import Target
from portal import policy, refusals
from portal.accounts.models import Role, User
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.exchange.acting import Acting
from portal.exchange.asking import RequestView, seal_request_texts
from portal.exchange.errors import NotFound, Refused
from portal.exchange.models import (
    Case,
    Document,
    DocumentState,
    Request,
    Review,
    ReviewMember,
    ReviewOrganisation,
    ReviewState,
)
from portal.exchange.review_texts import seal_review_texts
from portal.models import Organisation, OrganisationKind, parse_id
from portal.references import new_reference, parse_reference
from portal.text import TextRefused, clean_text, has_control_characters
from storage import Vault

REVIEW_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True)
class ReviewPlan:
    code: str
    title: str
    legal_basis: str
    opens_on: date
    closes_on: date
    retention_days: int


def check_plan(plan: ReviewPlan) -> ReviewPlan:
    code = plan.code.strip().upper()
    if not REVIEW_CODE.match(code):
        raise Refused(
            f"Review code {plan.code!r} is not valid: use 2 to 16 capital letters and digits, "
            "starting with a letter (for example SWG24).",
            code="invalid_review_code",
        )
    title = _text(plan.title, what="review's title", longest=200)
    basis = _text(
        plan.legal_basis, what="legal basis (for example the section of the Act)", longest=500
    )
    if plan.closes_on < plan.opens_on:
        raise Refused(
            "The closing date must be on or after the opening date.", code="invalid_dates"
        )
    if not 0 <= plan.retention_days <= MAX_RETENTION_DAYS:
        raise Refused(
            f"Keep the records for 0 to {MAX_RETENTION_DAYS} days after closing.",
            code="invalid_retention",
        )
    return ReviewPlan(code, title, basis, plan.opens_on, plan.closes_on, plan.retention_days)


def _text(value: str, **rules: Any) -> str:
    try:
        return clean_text(value, **rules)
    except TextRefused as refused:
        raise Refused(str(refused), code="invalid_text") from None


def _audit(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    action: Action,
    review: Review,
    *,
    target: Target | None = None,
    details: dict[str, int | bool | str] | None = None,
) -> None:
    auditor.record_as(
        db,
        acting,
        action,
        target=target or Target(TargetKind.REVIEW, review.code),
        review=review.code,
        details=details,
    )


def create_review(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    plan: ReviewPlan,
    *,
    lead: User,
    vault: Vault | None,
) -> Review:
    """A new review in ``draft``, with its key in the key store and its texts sealed under it.

    Without ``vault`` neither is done yet: the caller (the CLI, which makes the key only once
    every step has passed) calls ``seal_new_review`` before it commits.
    """
    if acting.caller is not None and not policy.can_create_review(acting.caller):
        raise NotFound()
    plan = check_plan(plan)
    if lead.role is not Role.lead or lead.disabled_at is not None:
        raise Refused(
            "The lead of a review must be an active user with the role lead.", code="invalid_lead"
        )
    if (
        acting.caller is not None
        and acting.caller.role is Role.lead
        and lead.id != acting.caller.user_id
    ):
        raise Refused(LEADS_OWN_REVIEWS, code="invalid_lead")
    if db.exec(select(Review).where(Review.code == plan.code)).first() is not None:
        raise Refused(f"There is already a review with the code {plan.code}.", code="review_exists")
    assert lead.id is not None
    review = Review(
        code=plan.code,
        state=ReviewState.draft,
        opens_on=plan.opens_on,
        closes_on=plan.closes_on,
        retention_days=plan.retention_days,
        lead_user_id=lead.id,
        created_at=acting.now,
    )
    db.add(review)
    db.flush()
    assert review.id is not None
    db.add(ReviewMember(review_id=review.id, user_id=lead.id))
    if vault is not None:
        seal_new_review(vault, review, plan)
    _audit(
        db,
        auditor,
        acting,
        Action.REVIEW_CREATED,
        review,
        details={"retention_days": plan.retention_days},
    )
    return review


def seal_new_review(vault: Vault, review: Review, plan: ReviewPlan) -> None:
    """Give a new (flushed) review its key and seal its title and legal basis under it."""
    plan = check_plan(plan)
    vault.create_review_key(review.code)
    seal_review_texts(vault, review, title=plan.title, legal_basis=plan.legal_basis)


def _lookup_review(db: Session, code: str) -> Review | None:
    code = code.strip().upper()
    if not REVIEW_CODE.match(code):
        return None
    return db.exec(select(Review).where(Review.code == code)).first()


def refuse_review(
    db: Session, acting: Acting, review: Review, reason: str, attempt: Action | None = None
) -> None:
    """Audit a refusal of a review that exists (portal.refusals); the caller then raises."""
    refusals.record(
        db,
        acting,
        attempt or Action.ACCESS_DENIED,
        target=Target(TargetKind.REVIEW, review.code),
        review=review.code,
        reason=reason,
    )


def audit_role_refusal(db: Session, acting: Acting, code: str, attempt: Action) -> None:
    """A route refused the caller's role (portal.web.access): audit it if the review exists."""
    review = _lookup_review(db, code)
    if review is not None:
        refuse_review(db, acting, review, "role", attempt)


def find_review(db: Session, acting: Acting, code: str, *, attempt: Action | None = None) -> Review:
    """A review the caller may see, or NotFound; a refusal of one that exists is audited (as a
    denied ``attempt``, or ``access.denied``)."""
    review = _lookup_review(db, code)
    if review is None:
        raise NotFound("There is no review with that code that you can see.")
    if acting.caller is not None and not policy.can_see_review(db, acting.caller, review):
        refuse_review(db, acting, review, policy.why_not_review(db, acting.caller, review), attempt)
        raise NotFound("There is no review with that code that you can see.")
    return review


def managed_review(db: Session, acting: Acting, code: str) -> Review:
    review = find_review(db, acting, code, attempt=Action.REVIEW_UPDATED)
    if acting.caller is not None and not policy.can_manage_review(db, acting.caller, review):
        refuse_review(db, acting, review, "not_lead", Action.REVIEW_UPDATED)
        raise NotFound("There is no review with that code that you can see.")
    return review


def list_reviews(db: Session, acting: Acting) -> list[Review]:
    reviews = db.exec(select(Review).order_by(col(Review.opens_on).desc(), col(Review.code))).all()
    if acting.caller is None:
        return list(reviews)
    return [r for r in reviews if policy.can_see_review(db, acting.caller, r)]


def add_organisation(
    db: Session, auditor: Auditor, acting: Acting, review: Review, organisation: Organisation
) -> None:
    if organisation.kind is not OrganisationKind.authority:
        raise Refused(
            "Only authorities take part in a review as organisations.", code="invalid_organisation"
        )
    if review.state in (ReviewState.closed, ReviewState.destroyed):
        raise Refused(
            "This review has closed: its organisations can no longer change.", code="review_closed"
        )
    assert review.id is not None and organisation.id is not None
    exists = db.exec(
        select(ReviewOrganisation).where(
            ReviewOrganisation.review_id == review.id,
            ReviewOrganisation.organisation_id == organisation.id,
        )
    ).first()
    if exists is None:
        db.add(ReviewOrganisation(review_id=review.id, organisation_id=organisation.id))
        _audit(
            db,
            auditor,
            acting,
            Action.REVIEW_ORGANISATION_ADDED,
            review,
            target=Target(TargetKind.ORGANISATION, organisation.slug),
        )


def add_member(db: Session, auditor: Auditor, acting: Acting, review: Review, user: User) -> None:
    if user.role not in policy.TEAM_ROLES or user.disabled_at is not None:
        raise Refused(
            "Only active inspectors and leads can be on a review's team.", code="invalid_member"
        )
    assert review.id is not None and user.id is not None
    exists = db.exec(
        select(ReviewMember).where(
            ReviewMember.review_id == review.id, ReviewMember.user_id == user.id
        )
    ).first()
    if exists is None:
        db.add(ReviewMember(review_id=review.id, user_id=user.id))
        _audit(
            db,
            auditor,
            acting,
            Action.REVIEW_MEMBER_ADDED,
            review,
            target=Target(TargetKind.USER, str(user.id)),
        )


def open_review(db: Session, auditor: Auditor, acting: Acting, review: Review) -> None:
    if review.state is not ReviewState.draft:
        raise Refused(
            f"The review is {review.state.value}; only a draft can be opened.", code="invalid_state"
        )
    review.state = ReviewState.open
    db.add(review)
    _audit(db, auditor, acting, Action.REVIEW_OPENED, review)


def close_review(db: Session, auditor: Auditor, acting: Acting, review: Review) -> None:
    """Close now. Closing early moves ``closes_on`` to today, so ``destroy_on`` moves with it."""
    if review.state not in (ReviewState.open, ReviewState.draft):
        raise Refused(f"The review is already {review.state.value}.", code="invalid_state")
    today = acting.now.date()
    if today < review.closes_on:
        review.closes_on = max(today, review.opens_on)
    review.state = ReviewState.closed
    review.closed_at = acting.now
    db.add(review)
    _audit(
        db,
        auditor,
        acting,
        Action.REVIEW_CLOSED,
        review,
        details={"retention_days": review.retention_days},
    )


# --- Requests ---------------------------------------------------------------------------------


def create_request(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    vault: Vault,
    review: Review,
    *,
    organisation: Organisation,
    title: str,
    instructions: str,
    due_on: date,
    expected_items: int,
) -> Request:
    assert review.id is not None and organisation.id is not None
    if not db.exec(
        select(ReviewOrganisation).where(
            ReviewOrganisation.review_id == review.id,
            ReviewOrganisation.organisation_id == organisation.id,
        )
    ).first():
        raise Refused(
            "Add the organisation to the review before asking it for records.",
            code="invalid_organisation",
        )
    title = _text(title, what="request's title", longest=200)
    instructions = _text(
        instructions, what="instructions", shortest=0, longest=4000, multiline=True
    )
    if not 0 <= expected_items <= 100_000:
        raise Refused(
            "The number of items expected must be between 0 and 100,000.", code="invalid_expected"
        )
    request = Request(
        review_id=review.id,
        organisation_id=organisation.id,
        due_on=due_on,
        expected_items=expected_items,
        created_by=acting.user_id or review.lead_user_id,
        created_at=acting.now,
    )
    db.add(request)
    db.flush()  # the texts are sealed to the row's id
    seal_request_texts(vault, review, request, title=title, instructions=instructions)
    db.add(request)
    db.flush()
    _audit(
        db,
        auditor,
        acting,
        Action.REQUEST_CREATED,
        review,
        target=Target(TargetKind.REQUEST, str(request.id)),
        details={"count": expected_items},
    )
    return request


def list_requests(db: Session, acting: Acting, review: Review) -> list[Request]:
    query = (
        select(Request)
        .where(Request.review_id == review.id)
        .order_by(col(Request.due_on), col(Request.id))
    )
    requests = db.exec(query).all()
    if acting.caller is None:
        return list(requests)
    return [
        r
        for r in requests
        if policy.can_see_requests_of(db, acting.caller, review, r.organisation_id)
    ]


def find_request(db: Session, acting: Acting, review: Review, request_id: int | str) -> Request:
    number = parse_id(str(request_id).strip())
    request = db.get(Request, number) if number is not None else None
    if (
        request is None
        or request.review_id != review.id
        or (
            acting.caller is not None
            and not policy.can_see_requests_of(db, acting.caller, review, request.organisation_id)
        )
    ):
        raise NotFound("There is no request with that number in this review.")
    return request


def request_progress(db: Session, request: Request | RequestView) -> int:
    """Documents received for the request (withdrawn and rejected ones do not count)."""
    counted = (DocumentState.pending_scan, DocumentState.available, DocumentState.destroyed)
    return int(
        db.exec(
            select(func.count())
            .select_from(Document)
            .where(Document.request_id == request.id, col(Document.state).in_(counted))
        ).one()
    )


# --- Cases ------------------------------------------------------------------------------------


def issue_case(db: Session, auditor: Auditor, acting: Acting, review: Review) -> Case:
    """A new pseudonymous case reference for the caller's organisation in this review."""
    caller = acting.caller
    if caller is None or not policy.can_issue_case(db, caller, review):
        if (
            caller is not None
            and policy.can_see_review(db, caller, review)
            and review.state is not ReviewState.open
        ):
            raise Refused(
                "Cases can be created only while the review is open.", code="review_not_open"
            )
        raise NotFound("There is no review with that code that you can see.")
    assert review.id is not None
    case = Case(
        reference=new_reference(),
        review_id=review.id,
        organisation_id=caller.organisation_id,
        created_by=caller.user_id,
        created_at=acting.now,
    )
    db.add(case)
    db.flush()
    _audit(
        db,
        auditor,
        acting,
        Action.CASE_CREATED,
        review,
        target=Target(TargetKind.CASE, case.reference),
    )
    return case


def list_cases(db: Session, acting: Acting, review: Review) -> list[Case]:
    query = select(Case).where(Case.review_id == review.id).order_by(col(Case.created_at))
    caller = acting.caller
    if caller is not None and caller.role is Role.uploader:
        query = query.where(Case.organisation_id == caller.organisation_id)
    elif caller is not None and caller.role is Role.admin:
        return []
    return list(db.exec(query).all())


def find_case(db: Session, acting: Acting, review: Review, typed: str) -> Case:
    reference = parse_reference(typed, "case reference")
    case = db.exec(select(Case).where(Case.reference == reference)).first()
    caller = acting.caller
    if case is None or case.review_id != review.id:
        raise NotFound("There is no case with that reference in this review.")
    if (
        caller is not None
        and caller.role is Role.uploader
        and case.organisation_id != caller.organisation_id
    ):
        raise NotFound("There is no case with that reference in this review.")
    return case


def organisation_by_code(db: Session, code: str) -> Organisation:
    slug = code.strip().lower()
    organisation = None
    if len(slug) <= 64 and not has_control_characters(slug):
        organisation = db.exec(select(Organisation).where(Organisation.slug == slug)).first()
    if organisation is None:
        raise NotFound(f"There is no organisation with the code {code!r}.")
    return organisation


LEADS_OWN_REVIEWS = "A lead creates reviews that they lead themselves."
# One answer whether no account has the address or the account cannot join a team (another role,
# disabled): the member-add form must not tell a lead which addresses have accounts (issue 18).
NO_TEAM_CANDIDATE = "There is no active inspector or lead with that email address."


def team_candidate(db: Session, email: str) -> User:
    """The person with this e-mail address, if they can join a review's team; else Refused, the
    same refusal for an address with no account as for one whose account cannot join."""
    try:
        user = user_by_email(db, email)
    except NotFound:
        user = None
    if user is None or user.role not in policy.TEAM_ROLES or user.disabled_at is not None:
        raise Refused(NO_TEAM_CANDIDATE, code="invalid_member")
    return user


# The same for a filter by organisation: one answer for a code that names no organisation and for
# one the caller may not filter by, so that no one can probe which codes exist (issue 18).
NO_SUCH_FILTER_ORGANISATION = (
    "That is not the code of an organisation whose documents you can list in this review."
)


def filter_organisation(db: Session, acting: Acting, review: Review, code: str) -> int:
    """The id of the organisation ``code`` names, if the caller may list its documents in
    ``review``: an uploader, their own organisation; anyone else, one taking part in it."""
    slug = code.strip().lower()
    caller = acting.caller
    found: int | None = None
    if len(slug) <= 64 and not has_control_characters(slug):
        query = select(Organisation.id).where(
            Organisation.slug == slug,
            col(Organisation.id).in_(
                select(ReviewOrganisation.organisation_id).where(
                    ReviewOrganisation.review_id == review.id
                )
            ),
        )
        if caller is not None and caller.role is Role.uploader:
            query = query.where(Organisation.id == caller.organisation_id)
        found = db.exec(query).first()
    if found is None:
        raise Refused(NO_SUCH_FILTER_ORGANISATION, code="invalid_query")
    return found


def user_by_email(db: Session, email: str) -> User:
    address = email.strip().lower()
    user = None
    if not has_control_characters(address) and len(address) <= 320:
        user = db.exec(select(User).where(User.email == address)).first()
    if user is None:
        raise NotFound("There is no user with that email address.")
    return user

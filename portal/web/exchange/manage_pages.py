"""The pages a review's lead (or an administrator) uses to create and manage reviews.

Thin handlers over ``portal.exchange.reviews``, as the JSON API is: parse the form, call the same
services, render. A mistake in a form (a Refusal the service raises about what was typed) is
shown next to its field with the error summary; a review the caller may not manage is "not found".
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.accounts.models import Role, User
from portal.errors import Refusal
from portal.exchange import reviews
from portal.exchange.asking import view_request
from portal.exchange.errors import FormMistake, NotFound, Refused
from portal.exchange.models import Review, ReviewMember, ReviewOrganisation, ReviewState
from portal.models import Organisation, OrganisationKind
from portal.text import has_control_characters, is_whole_number
from portal.web.access import form_value, principal_of, roles, route
from portal.web.rendering import render
from portal.web.requests import acting_of, runtime_of, submitted_form
from storage import Vault

LEADS = roles(Role.lead, Role.admin)

REVIEW_FIELDS = ("code", "title", "legal_basis", "opens_on", "closes_on", "retention_days")


def _session(request: Request) -> Session:
    return Session(runtime_of(request).engine)


def _date(form: Any, name: str, label: str) -> date:
    typed = form_value(form, name, 20).strip()
    try:
        return date.fromisoformat(typed)
    except ValueError:
        raise FormMistake(name, f"Enter the {label} as a date, for example 2027-01-31.") from None


def _whole_number(form: Any, name: str, message: str, default: int | None = None) -> int:
    typed = form_value(form, name, 12).strip()
    if not typed and default is not None:
        return default
    if not is_whole_number(typed):
        raise FormMistake(name, message)
    return int(typed)


def _field_of(error: Refusal, by_code: dict[str, str], by_words: dict[str, str]) -> str:
    """Which field a service's refusal is about: by its code, else by what its message names."""
    if error.code in by_code:
        return by_code[error.code]
    return next((f for words, f in by_words.items() if words in error.message), "form")


# --- A new review -----------------------------------------------------------------------------


def _shown(values: dict[str, str]) -> dict[str, str]:
    """What was typed, to fill the form again; a value with control characters is not echoed."""
    return {
        k: "" if has_control_characters(v, allow_newlines=True) else v for k, v in values.items()
    }


def _new_review_form(
    request: Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    context = {"values": _shown(values), "errors": errors, "asks_lead": _is_admin(request)}
    return render(request, "exchange/manage/new_review.html", context, status=status)


def _is_admin(request: Request) -> bool:
    return principal_of(request).role is Role.admin


def new_review_page(request: Request) -> Response:
    return _new_review_form(request, dict.fromkeys((*REVIEW_FIELDS, "lead"), ""), {})


def new_review_submit(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    form = submitted_form(request)
    values = {name: form_value(form, name, 4000) for name in (*REVIEW_FIELDS, "lead")}
    errors: dict[str, str] = {}
    plan = None
    try:
        plan = reviews.ReviewPlan(
            code=values["code"],
            title=values["title"],
            legal_basis=values["legal_basis"],
            opens_on=_date(form, "opens_on", "opening date"),
            closes_on=_date(form, "closes_on", "closing date"),
            retention_days=_whole_number(
                form, "retention_days", "Enter the number of days as a whole number, like 90."
            ),
        )
    except FormMistake as mistake:
        errors[mistake.field] = mistake.message
    if plan is None:
        return _new_review_form(request, values, errors, status=400)
    with _session(request) as db:
        try:
            lead = _lead_for(db, request, values["lead"])
            review = reviews.create_review(
                db,
                runtime.auditor,
                acting,
                plan,
                lead=lead,
                vault=runtime.vault,
            )
            db.commit()
        except FormMistake as mistake:
            errors[mistake.field] = mistake.message
        except Refusal as refused:
            field = _field_of(
                refused,
                {
                    "invalid_review_code": "code",
                    "review_exists": "code",
                    "invalid_dates": "closes_on",
                    "invalid_retention": "retention_days",
                    "invalid_lead": "lead" if _is_admin(request) else "code",
                },
                {"title": "title", "legal basis": "legal_basis"},
            )
            errors[field if field != "form" else "code"] = refused.message
        if errors:
            return _new_review_form(request, values, errors, status=400)
        code = review.code
    return RedirectResponse(f"/reviews/{code}", status_code=303)


def _lead_for(db: Session, request: Request, typed: str) -> User:
    """An administrator names the lead; a lead leads their own review."""
    acting = acting_of(request)
    if not _is_admin(request):
        user = db.get(User, acting.user_id)
        assert user is not None
        return user
    if not typed.strip():
        raise FormMistake("lead", "Enter the email address of the review's lead.")
    try:
        return reviews.user_by_email(db, typed)
    except NotFound:
        raise FormMistake("lead", "There is no user with that email address.") from None


# --- Managing a review ------------------------------------------------------------------------


def _manage_context(db: Session, request: Request, review: Review) -> dict[str, Any]:
    acting = acting_of(request)
    organisations = db.exec(select(Organisation).order_by(col(Organisation.name))).all()
    taking_part = set(_participant_ids(db, review))
    participants = [o for o in organisations if o.id in taking_part]
    team = db.exec(
        select(User)
        .join(ReviewMember, col(ReviewMember.user_id) == col(User.id))
        .where(ReviewMember.review_id == review.id)
        .order_by(col(User.email))
    ).all()
    vault = runtime_of(request).vault
    requests = [view_request(vault, review, q) for q in reviews.list_requests(db, acting, review)]
    return {
        "review": review,
        "team": team,
        "participants": participants,
        "organisation_names": {o.id: o.name for o in participants},
        "addable": [
            (o.slug, o.name)
            for o in organisations
            if o.kind is OrganisationKind.authority and o.id not in taking_part
        ],
        "participant_options": [(o.slug, o.name) for o in participants],
        "requests": [(q, reviews.request_progress(db, q)) for q in requests],
        "can_change": review.state in (ReviewState.draft, ReviewState.open),
        "values": {},
        "done": request.query_params.get("done", "")[:40],
        "done_messages": DONE,
    }


def _participant_ids(db: Session, review: Review) -> list[int]:
    rows = db.exec(
        select(ReviewOrganisation.organisation_id).where(ReviewOrganisation.review_id == review.id)
    ).all()
    return list(rows)


def manage_page(request: Request) -> Response:
    with _session(request) as db:
        review = reviews.managed_review(db, acting_of(request), request.path_params["code"])
        return render(request, "exchange/manage/manage.html", _manage_context(db, request, review))


DONE = {
    "organisation": "The organisation now takes part in the review.",
    "member": "The team member was added.",
    "request": "The request was sent.",
    "opened": "The review is open.",
    "closed": "The review is closed.",
}


def _change(request: Request, action: str) -> Response:
    """Run one of the manage page's forms; its mistakes are shown on the manage page."""
    runtime, acting = runtime_of(request), acting_of(request)
    form = submitted_form(request)
    with _session(request) as db:
        review = reviews.managed_review(db, acting, request.path_params["code"])
        try:
            _act(db, runtime.auditor, acting, runtime.vault, review, action, form)
            db.commit()
        except (FormMistake, Refusal) as mistake:
            db.rollback()
            field = (
                mistake.field
                if isinstance(mistake, FormMistake)
                else _refused_field(mistake, action)
            )
            context = _manage_context(db, request, review)
            context["errors"] = {field: mistake.message}
            context["values"] = _shown(
                {k: form_value(form, k, 4000) for k in _FIELDS_OF.get(action, ())}
            )
            context["done"] = ""
            return render(request, "exchange/manage/manage.html", context, status=400)
        code = review.code
    return RedirectResponse(f"/reviews/{code}/manage?done={_DONE_KEY[action]}", status_code=303)


_DONE_KEY = {
    "organisations": "organisation",
    "members": "member",
    "requests": "request",
    "open": "opened",
    "close": "closed",
}
_FIELDS_OF = {
    "requests": ("request_organisation", "title", "instructions", "due_on", "expected"),
    "members": ("email",),
}


def _refused_field(error: Refusal, action: str) -> str:
    if action == "organisations":
        return "organisation"
    if action == "members":
        return "email"
    if action == "requests":
        field = _field_of(
            error,
            {"invalid_organisation": "request_organisation", "invalid_expected": "expected"},
            {"title": "title", "instructions": "instructions"},
        )
        return "title" if field == "form" else field
    return "review-state"


def _act(
    db: Session, auditor: Any, acting: Any, vault: Vault, review: Review, action: str, form: Any
) -> None:
    if action == "organisations":
        slug = form_value(form, "organisation", 64)
        if not slug:
            raise FormMistake("organisation", "Choose an organisation to add.")
        try:
            organisation = reviews.organisation_by_code(db, slug)
        except NotFound:
            raise FormMistake("organisation", "Choose an organisation from the list.") from None
        reviews.add_organisation(db, auditor, acting, review, organisation)
    elif action == "members":
        email = form_value(form, "email", 320)
        if not email.strip():
            raise FormMistake("email", "Enter the email address of the person to add.")
        # Refused (shown next to the e-mail field) alike for no account and one that cannot join.
        user = reviews.team_candidate(db, email)
        reviews.add_member(db, auditor, acting, review, user)
    elif action == "requests":
        slug = form_value(form, "request_organisation", 64)
        if not slug:
            raise FormMistake("request_organisation", "Choose the organisation to ask.")
        try:
            organisation = reviews.organisation_by_code(db, slug)
        except NotFound:
            raise FormMistake(
                "request_organisation", "Choose an organisation from the list."
            ) from None
        reviews.create_request(
            db,
            auditor,
            acting,
            vault,
            review,
            organisation=organisation,
            title=form_value(form, "title", 4000),
            instructions=form_value(form, "instructions", 8000),
            due_on=_date(form, "due_on", "due date"),
            expected_items=_whole_number(
                form,
                "expected",
                "Enter the number of items expected as a whole number, like 5.",
                default=0,
            ),
        )
    elif action == "open":
        reviews.open_review(db, auditor, acting, review)
    elif action == "close":
        reviews.close_review(db, auditor, acting, review)
    else:  # pragma: no cover - the routes name the actions
        raise Refused("Unknown action.")


def add_organisation(request: Request) -> Response:
    return _change(request, "organisations")


def add_member(request: Request) -> Response:
    return _change(request, "members")


def create_request(request: Request) -> Response:
    return _change(request, "requests")


def open_review(request: Request) -> Response:
    return _change(request, "open")


def close_page(request: Request) -> Response:
    with _session(request) as db:
        review = reviews.managed_review(db, acting_of(request), request.path_params["code"])
        return render(request, "exchange/manage/close.html", {"review": review})


def close_review(request: Request) -> Response:
    form = submitted_form(request)
    if form_value(form, "confirm", 10) != "yes":
        with _session(request) as db:
            review = reviews.managed_review(db, acting_of(request), request.path_params["code"])
            errors = {"confirm": "Tick the box to confirm that you want to close the review now."}
            context = {"review": review, "errors": errors}
            return render(request, "exchange/manage/close.html", context, status=400)
    return _change(request, "close")


ROUTES = [
    route("/reviews/new", new_review_page, rule=LEADS, methods=["GET"]),
    route("/reviews/new", new_review_submit, rule=LEADS, methods=["POST"]),
    route("/reviews/{code}/manage", manage_page, rule=LEADS, methods=["GET"]),
    route("/reviews/{code}/manage/organisations", add_organisation, rule=LEADS, methods=["POST"]),
    route("/reviews/{code}/manage/members", add_member, rule=LEADS, methods=["POST"]),
    route("/reviews/{code}/manage/requests", create_request, rule=LEADS, methods=["POST"]),
    route("/reviews/{code}/manage/open", open_review, rule=LEADS, methods=["POST"]),
    route("/reviews/{code}/manage/close", close_page, rule=LEADS, methods=["GET"]),
    route("/reviews/{code}/manage/close", close_review, rule=LEADS, methods=["POST"]),
]

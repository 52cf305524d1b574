"""Audit search for DPOs: filters read from a query string, keyset pages both ways, and the search
itself recorded in the log (SPEC §5: reading the log is an access like any other).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection
from sqlmodel import Session

from audit import EventFilter, Outcome, Page, Target, search, seqs_after, to_us
from portal.accounts.models import User
from portal.audit_vocabulary import REVIEW_CODE, Action, TargetKind
from portal.auditing import Auditor
from portal.exchange.acting import Acting
from portal.exchange.models import Case, Document
from portal.references import InvalidReference, parse_reference
from portal.text import has_control_characters, is_whole_number

FIELDS = ("actor", "action", "review", "document", "case", "outcome", "from", "to")
MAX_CURSOR = 2**63 - 1
AUDIT_LOG = Target(TargetKind.AUDIT_LOG, "audit")


@dataclass(frozen=True)
class SearchForm:
    """The filters as typed (to show them again) and as understood, with an error per field."""

    where: EventFilter
    typed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def read_filters(db: Session, params: Mapping[str, str]) -> SearchForm:
    """Parse ``actor`` (user id or email), ``action``, ``review``, ``document``, ``case`` (a
    case reference: events about the case or any of its documents), ``outcome``, ``from`` and
    ``to`` (dates, UTC, both included)."""
    typed = {name: str(params.get(name, "")).strip()[:320] for name in FIELDS}
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    if typed["actor"]:
        actor = _user_id(db, typed["actor"])
        if actor is None:
            errors["actor"] = "Enter a user's number or email address as the portal knows it."
        values["actor"] = actor
    if typed["action"]:
        if typed["action"] not in Action._value2member_map_:
            errors["action"] = "Choose an action from the list."
        values["action"] = typed["action"]
    if typed["review"]:
        code = typed["review"].upper()
        if not REVIEW_CODE.fullmatch(code):
            errors["review"] = "Enter a review code such as SWG24: letters and digits."
        values["review"] = code
    if typed["document"]:
        try:
            values["document"] = parse_reference(typed["document"][:100])
        except InvalidReference:
            errors["document"] = (
                "That is not a valid document reference: a character is wrong or two are "
                "swapped. Check it and type it again."
            )
    if typed["case"]:
        try:
            case = parse_reference(typed["case"][:100])
        except InvalidReference:
            errors["case"] = (
                "That is not a valid case reference: a character is wrong or two are swapped. "
                "Check it and type it again."
            )
        else:
            documents = case_documents(db, case)
            if documents is None:
                errors["case"] = "There is no case with that reference."
            else:
                values["case"], values["case_documents"] = case, documents
    if typed["outcome"]:
        if typed["outcome"] not in Outcome._value2member_map_:
            errors["outcome"] = "Choose an outcome from the list."
        values["outcome"] = typed["outcome"]
    since = _day(typed["from"], "from", errors)
    until = _day(typed["to"], "to", errors)
    if since is not None:
        values["since"] = datetime.combine(since, time(), UTC)
    if until is not None and until < date.max:
        values["until"] = datetime.combine(until + timedelta(days=1), time(), UTC)
    if since and until and since > until and not errors:
        errors["to"] = "The last day must be the same as or after the first day."
    if errors:
        return SearchForm(EventFilter(), typed, errors)
    return SearchForm(EventFilter(**values), typed, errors)  # type: ignore[arg-type]


def case_documents(db: Session, reference: str) -> tuple[str, ...] | None:
    """The references of a case's documents (destroyed ones too), or None: no such case."""
    from sqlmodel import col
    from sqlmodel import select as orm_select

    case = db.exec(orm_select(Case).where(Case.reference == reference)).first()
    if case is None:
        return None
    found = db.exec(
        orm_select(Document.reference).where(Document.case_id == case.id).order_by(col(Document.id))
    ).all()
    return tuple(found)


def _user_id(db: Session, typed: str) -> int | None:
    if is_whole_number(typed) and len(typed) <= 18:
        return int(typed)
    if "@" not in typed or has_control_characters(typed):
        return None  # no account has such an address (and a NUL would be a database error)
    from sqlmodel import select as orm_select

    user = db.exec(orm_select(User).where(User.email == typed.lower())).first()
    return user.id if user is not None else None


def _day(typed: str, name: str, errors: dict[str, str]) -> date | None:
    if not typed:
        return None
    try:
        return date.fromisoformat(typed)
    except ValueError:
        errors[name] = "Enter a date such as 2026-11-02 (year, month, day)."
        return None


def cursor(value: str | None) -> int | None:
    """A page cursor from a query string; anything that cannot be one is the first page."""
    if not value or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_CURSOR else None


@dataclass(frozen=True)
class EventPage:
    page: Page
    newer: bool  # there is a previous (newer) page
    newer_before: int | None  # its cursor; None with ``newer`` means the first page


def find_events(
    connection: Connection, where: EventFilter, *, before: int | None, limit: int
) -> EventPage:
    """One page, newest first, and where the page before it (newer events) begins."""
    page = search(connection, where, before=before, limit=limit)
    newer, newer_before = False, None
    if before is not None:
        # The ``limit`` events just newer than this page, oldest first: the previous page ends
        # with the newest of them.
        start = page.records[0].seq if page.records else before - 1
        seqs = seqs_after(connection, where, after=start, limit=limit + 1)
        newer = bool(seqs)
        if len(seqs) > limit:
            newer_before = seqs[limit - 1] + 1
    return EventPage(page, newer, newer_before)


def record_search(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    where: EventFilter,
    *,
    shown: int,
    target: Target = AUDIT_LOG,
) -> None:
    """SPEC §5: searching the log is itself an event, with what was searched for. The caller
    commits."""
    details: dict[str, int | bool | str] = {"filtered": not where.is_empty, "count": shown}
    if where.actor is not None:
        details["filter_actor"] = where.actor
    if where.action is not None:
        details["filter_action"] = str(where.action)
    if where.review is not None:
        details["filter_review"] = where.review
    if where.document is not None:
        details["filter_document"] = where.document
    if where.case is not None:
        details["filter_case"] = where.case
    if where.since is not None:
        details["since_us"] = max(0, to_us(where.since))
    if where.until is not None:
        details["until_us"] = max(0, to_us(where.until))
    auditor.record_as(
        db,
        acting,
        Action.AUDIT_SEARCHED,
        target=target,
        # The filters go in the details, not in the review and document columns: a DPO's
        # search is not an access to the review or document it names.
        details=details,
    )

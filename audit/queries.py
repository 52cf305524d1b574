"""Searching the log: by actor, action, target, review, document, outcome and time, newest first,
paginated by keyset (``before`` = the last sequence number of the previous page), so that page
1000 costs what page 1 costs. Each filter has a (field, seq) index.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from .encoding import from_us, to_us
from .events import Actor, AuditRecord, Target
from .tables import event_table

MAX_PAGE = 1000
# The kind of target of a case (``EventFilter.case``).
CASE = "case"

_c = event_table.c


@dataclass(frozen=True)
class EventFilter:
    """Which events: every field given must match; times are [since, until)."""

    actor: int | None = None  # user id
    action: str | None = None
    target: Target | None = None
    review: str | None = None
    document: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # A case (its reference): events whose target is the case, or that name one of its
    # documents (``case_documents``, the references the caller found for it).
    case: str | None = None
    case_documents: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self == EventFilter()

    def clauses(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.actor is not None:
            found.append(_c.user_id == self.actor)
        if self.action is not None:
            found.append(_c.action == str(self.action))
        if self.target is not None:
            found.append(_c.target_kind == str(self.target.kind))
            found.append(_c.target_ref == self.target.ref)
        if self.review is not None:
            found.append(_c.review == self.review)
        if self.document is not None:
            found.append(_c.document == self.document)
        if self.outcome is not None:
            found.append(_c.outcome == str(self.outcome))
        if self.since is not None:
            found.append(_c.at_us >= to_us(self.since))
        if self.until is not None:
            found.append(_c.at_us < to_us(self.until))
        if self.case is not None:
            about_case = and_(_c.target_kind == CASE, _c.target_ref == self.case)
            if self.case_documents:
                found.append(or_(about_case, _c.document.in_(self.case_documents)))
            else:
                found.append(about_case)
        return found

    def matcher(self) -> Any:
        """A predicate on event rows (EVENT_FIELDS order), the same test as ``clauses``."""
        tests: list[tuple[int, Any]] = []
        if self.actor is not None:
            tests.append((3, self.actor))
        if self.action is not None:
            tests.append((6, str(self.action)))
        if self.target is not None:
            tests.append((7, str(self.target.kind)))
            tests.append((8, self.target.ref))
        if self.review is not None:
            tests.append((9, self.review))
        if self.document is not None:
            tests.append((10, self.document))
        if self.outcome is not None:
            tests.append((11, str(self.outcome)))
        since = to_us(self.since) if self.since is not None else None
        until = to_us(self.until) if self.until is not None else None

        case, case_documents = self.case, frozenset(self.case_documents)

        def matches(row: Sequence[Any]) -> bool:
            if case is not None and not (
                (row[7] == CASE and row[8] == case) or row[10] in case_documents
            ):
                return False
            if since is not None and row[1] < since:
                return False
            if until is not None and row[1] >= until:
                return False
            return all(row[index] == value for index, value in tests)

        return matches


@dataclass(frozen=True)
class Page:
    records: list[AuditRecord]
    next_before: int | None  # pass as ``before`` for the next page; None on the last page


def search(
    connection: Connection,
    where: EventFilter | None = None,
    *,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """One page of events matching ``where``, newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    query = select(*event_table.c).where(*(where or EventFilter()).clauses())
    if before is not None:
        query = query.where(_c.seq < before)
    rows = connection.execute(query.order_by(_c.seq.desc()).limit(limit + 1)).all()
    records = [record_from_row(row) for row in rows[:limit]]
    return Page(records, records[-1].seq if len(rows) > limit else None)


def seqs_after(connection: Connection, where: EventFilter, *, after: int, limit: int) -> list[int]:
    """The sequence numbers of the first ``limit`` events after ``after`` that match ``where``,
    oldest first: where the page of newer events before a ``search`` page begins."""
    rows = connection.execute(
        select(_c.seq).where(*where.clauses(), _c.seq > after).order_by(_c.seq).limit(limit)
    )
    return [int(row[0]) for row in rows]


def count_events(connection: Connection, where: EventFilter | None = None) -> int:
    """How many events match ``where`` (all of them: None)."""
    query = select(func.count()).select_from(event_table)
    return int(connection.execute(query.where(*(where or EventFilter()).clauses())).scalar_one())


def events_between(
    connection: Connection,
    since: datetime,
    through: datetime,
    *,
    actions: Collection[str] | None = None,
    outcome: str | None = None,
) -> list[AuditRecord]:
    """Every event from ``since`` up to and including ``through``, oldest first, of one of
    ``actions`` (any: None) with ``outcome`` (any: None): a window for rules that look at the
    log as a whole (bursts, times of day). Unpaged: the caller bounds the window."""
    query = select(*event_table.c).where(_c.at_us >= to_us(since), _c.at_us <= to_us(through))
    if actions is not None:
        query = query.where(_c.action.in_([str(action) for action in actions]))
    if outcome is not None:
        query = query.where(_c.outcome == str(outcome))
    return [record_from_row(row) for row in connection.execute(query.order_by(_c.seq))]


def record_from_row(row: Sequence[Any]) -> AuditRecord:
    (seq, at_us, _nonce, user_id, role, organisation_id, action, target_kind, target_ref) = row[:9]
    target = None
    if target_kind is not None and target_ref is not None:
        target = Target(target_kind, target_ref)
    return AuditRecord(
        seq=seq,
        at=from_us(at_us),
        actor=Actor(user_id, role, organisation_id),
        action=action,
        outcome=row[11],
        target=target,
        review=row[9],
        document=row[10],
        client=row[12],
        request_id=row[13],
        details=json.loads(row[14]),
        hash=row[15],
    )

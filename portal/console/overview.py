"""The console's home: a few counts, each a link to the page that explains it; and the
destruction schedule as the console shows it (the schedule itself is portal.destruction's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import Connection, func
from sqlmodel import Session, col, select

from audit import EventFilter, count_events
from portal.console.anomalies import find_anomalies
from portal.destruction.models import Hold, HoldState, Notice
from portal.destruction.schedule import Entry, schedule
from portal.exchange.acting import Acting
from portal.exchange.models import Document, DocumentState
from portal.models import as_utc


@dataclass(frozen=True)
class Overview:
    events_today: int
    pending_scan: int
    flagged: int
    due: int
    holds_active: int
    holds_requested: int
    anomalies: int


def _count(db: Session, query: Any) -> int:
    return int(db.exec(query).one())


def overview(db: Session, connection: Connection, acting: Acting) -> Overview:
    now = acting.now
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    events_today = count_events(connection, EventFilter(since=midnight))
    pending = Document.state == DocumentState.pending_scan
    return Overview(
        events_today=int(events_today),
        pending_scan=_count(db, select(func.count()).select_from(Document).where(pending)),
        flagged=_count(
            db,
            select(func.count())
            .select_from(Document)
            .where(pending, col(Document.scan_flagged_at).is_not(None)),
        ),
        due=sum(1 for e in schedule(db, acting, today=now.date()) if e.due),
        holds_active=_count(
            db, select(func.count()).select_from(Hold).where(Hold.state == HoldState.active)
        ),
        holds_requested=_count(
            db, select(func.count()).select_from(Hold).where(Hold.state == HoldState.requested)
        ),
        anomalies=len(find_anomalies(connection, now=now)),
    )


def schedule_rows(db: Session, acting: Acting) -> list[dict[str, Any]]:
    """The schedule with what the console adds: notices sent, and what the caller may do."""
    entries: list[Entry] = schedule(db, acting, today=acting.now.date())
    rows = []
    for entry in entries:
        notices = db.exec(
            select(Notice)
            .where(Notice.review_id == entry.review.id, col(Notice.sent_at).is_not(None))
            .order_by(col(Notice.sent_at))
        ).all()
        early = entry.early
        rows.append(
            {
                "entry": entry,
                "notices": [
                    {"kind": n.kind.value, "sent_at": as_utc(n.sent_at)}
                    for n in notices
                    if n.sent_at is not None
                ],
                "may_request_early": entry.status == "scheduled" and early is None,
                "may_approve_early": early is not None
                and early.state.value == "pending"
                and early.requested_by != acting.user_id,
            }
        )
    return rows

"""Patterns in the audit log a DPO should look at: computed from the log alone, time passed in.

The rules, each a plain function over a window of the log (by default the last 7 days):

* **bulk downloads**: one user downloading more than ``BULK_DOWNLOADS`` documents within any hour
  (threat: an insider or a stolen session harvesting a review's records);
* **out of hours**: a download or a metadata view before 08:00 or from 18:00 UK local time
  (Europe/London, so British Summer Time is followed), or at a weekend;
* **failed sign-ins**: ``FAILED_SIGN_INS`` or more failed sign-in steps (password or code) within
  an hour for one account or from one client address (threat: password guessing);
* **refusals**: one user refused (outcome ``denied``) more than ``REFUSALS`` times within an hour
  (threat: a signed-in user probing for references they may not see).

The queries are plain, parameterised reads of the event table; the sliding windows are counted in
Python over the rows of the window, which one week of a portal's events keeps small.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from audit import AuditRecord, Outcome, events_between
from portal.audit_vocabulary import Action
from portal.settings import AlertThresholds

# The defaults of PORTAL_ALERT_BULK_DOWNLOADS, _BULK_DOCUMENTS, _FAILED_SIGN_INS and _REFUSALS.
BULK_DOWNLOADS = AlertThresholds.bulk_downloads  # more than this many downloads in an hour
BULK_DOCUMENTS = AlertThresholds.bulk_documents  # more than this many different documents
FAILED_SIGN_INS = AlertThresholds.failed_sign_ins  # this many failures in an hour
REFUSALS = AlertThresholds.refusals  # more than this many refusals of one user in an hour
WINDOW = timedelta(days=7)
HOUR = timedelta(hours=1)
UK = ZoneInfo("Europe/London")
WORKDAY_STARTS = time(8, 0)
WORKDAY_ENDS = time(18, 0)
MAX_FINDINGS = 500  # per rule: enough to act on; the audit search has the rest

ACCESS_ACTIONS = (Action.DOCUMENT_DOWNLOADED, Action.DOCUMENT_METADATA_VIEWED)
FAILED_ACTIONS = (Action.SIGN_IN_FAILED, Action.MFA_FAILED)


@dataclass(frozen=True)
class Anomaly:
    """One finding: which rule, who or where, when, and the events behind it (sequence numbers)."""

    rule: str  # bulk_downloads | bulk_documents | out_of_hours | failed_sign_ins | refusals
    started_at: datetime
    ended_at: datetime
    count: int
    user_id: int | None = None
    client: str | None = None
    document: str | None = None
    review: str | None = None
    action: str | None = None
    sequences: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Row:
    seq: int
    at: datetime
    user_id: int | None
    action: str
    review: str | None
    document: str | None
    client: str | None


def _rows(
    connection: Connection,
    actions: Iterable[Action] | None,
    since: datetime,
    until: datetime,
    *,
    outcome: Outcome | None = None,
) -> list[_Row]:
    """The events of ``actions`` (all of them: None) with ``outcome`` (any: None) in the window."""
    return [_row(record) for record in _records(connection, actions, since, until, outcome)]


def _records(
    connection: Connection,
    actions: Iterable[Action] | None,
    since: datetime,
    until: datetime,
    outcome: Outcome | None,
) -> list[AuditRecord]:
    return events_between(
        connection,
        since,
        until,  # up to and including now
        actions=None if actions is None else [action.value for action in actions],
        outcome=None if outcome is None else outcome.value,
    )


def _row(record: AuditRecord) -> _Row:
    return _Row(
        record.seq,
        record.at,
        record.actor.user_id,
        record.action,
        record.review,
        record.document,
        record.client,
    )


def _bursts(
    rows: list[_Row], *, more_than: int, distinct_documents: bool = False
) -> list[tuple[list[_Row], int]]:
    """Maximal runs where more than ``more_than`` rows (or, ``distinct_documents``, distinct
    documents) fall within one hour of each other.

    Each burst is reported once (from its first row past the threshold to the end of the run),
    with the largest count seen in any one-hour window of it.
    """
    found: list[tuple[list[_Row], int]] = []
    window: deque[_Row] = deque()
    documents: Counter[str | None] = Counter()
    current: list[_Row] | None = None
    peak = 0
    for row in rows:
        window.append(row)
        documents[row.document] += 1
        while row.at - window[0].at >= HOUR:
            gone = window.popleft()
            documents[gone.document] -= 1
            if not documents[gone.document]:
                del documents[gone.document]
        size = len(documents) if distinct_documents else len(window)
        if size > more_than:
            if current is None:
                current, peak = list(window), size
            else:
                current.append(row)
                peak = max(peak, size)
        elif current is not None and row.at - current[-1].at >= HOUR:
            found.append((current, peak))
            current = None
    if current is not None:
        found.append((current, peak))
    return found


def _burst_findings(
    rule: str,
    groups: dict[Any, list[_Row]],
    *,
    more_than: int,
    key: str,
    distinct_documents: bool = False,
) -> list[Anomaly]:
    """One finding per burst in each group (``key`` names what the group is: user_id or client)."""
    return [
        Anomaly(
            rule=rule,
            started_at=burst[0].at,
            ended_at=burst[-1].at,
            count=peak,
            sequences=tuple(r.seq for r in burst),
            **{key: group},
        )
        for group, rows in groups.items()
        for burst, peak in _bursts(rows, more_than=more_than, distinct_documents=distinct_documents)
    ]


def bulk_downloads(
    connection: Connection,
    *,
    now: datetime,
    window: timedelta = WINDOW,
    limit: int = BULK_DOWNLOADS,
) -> list[Anomaly]:
    """Users who downloaded more than ``limit`` documents within an hour."""
    per_user: dict[int, list[_Row]] = defaultdict(list)
    for row in _rows(connection, [Action.DOCUMENT_DOWNLOADED], now - window, now):
        if row.user_id is not None:
            per_user[row.user_id].append(row)
    return _newest_first(
        _burst_findings("bulk_downloads", per_user, more_than=limit, key="user_id")
    )


def bulk_documents(
    connection: Connection,
    *,
    now: datetime,
    window: timedelta = WINDOW,
    limit: int = BULK_DOCUMENTS,
) -> list[Anomaly]:
    """Users who downloaded more than ``limit`` *different* documents within an hour: the
    harvesting pattern, which counting downloads alone misses when each is taken once (and
    confuses with one file fetched again and again)."""
    per_user: dict[int, list[_Row]] = defaultdict(list)
    for row in _rows(connection, [Action.DOCUMENT_DOWNLOADED], now - window, now):
        if row.user_id is not None:
            per_user[row.user_id].append(row)
    return _newest_first(
        _burst_findings(
            "bulk_documents", per_user, more_than=limit, key="user_id", distinct_documents=True
        )
    )


def is_working_hours(moment: datetime) -> bool:
    """Monday to Friday, 08:00 to 18:00 UK local time."""
    local = moment.astimezone(UK)
    return local.weekday() < 5 and WORKDAY_STARTS <= local.time() < WORKDAY_ENDS


def night_of(moment: datetime) -> date:
    """The night (or weekend day) an out-of-hours moment belongs to: from 08:00 UK local time on
    that date to 08:00 the next day, so an evening and the early morning after it are one."""
    return (moment.astimezone(UK) - timedelta(hours=WORKDAY_STARTS.hour)).date()


def out_of_hours(
    connection: Connection, *, now: datetime, window: timedelta = WINDOW
) -> list[Anomaly]:
    """Downloads and metadata views outside working hours: one finding per user per night.

    One per event buried everything else (issue 17: 33 of 35 findings in a small demo): a DPO
    wants to know who worked late and when, then the events behind it.
    """
    groups: dict[tuple[int | None, date], list[_Row]] = defaultdict(list)
    for row in _rows(connection, ACCESS_ACTIONS, now - window, now):
        if not is_working_hours(row.at):
            groups[(row.user_id, night_of(row.at))].append(row)
    found = []
    for (user_id, _night), rows in groups.items():
        documents = {r.document for r in rows}
        reviews = {r.review for r in rows}
        actions = {r.action for r in rows}
        found.append(
            Anomaly(
                rule="out_of_hours",
                started_at=rows[0].at,
                ended_at=rows[-1].at,
                count=len(rows),
                user_id=user_id,
                client=rows[0].client if len({r.client for r in rows}) == 1 else None,
                document=rows[0].document if len(documents) == 1 else None,
                review=rows[0].review if len(reviews) == 1 else None,
                action=rows[0].action if len(actions) == 1 else None,
                sequences=tuple(r.seq for r in rows),
            )
        )
    return _newest_first(found)


def failed_sign_ins(
    connection: Connection,
    *,
    now: datetime,
    window: timedelta = WINDOW,
    threshold: int = FAILED_SIGN_INS,
) -> list[Anomaly]:
    """``threshold`` or more failed sign-in steps within an hour, per account and per address."""
    per_user: dict[int, list[_Row]] = defaultdict(list)
    per_client: dict[str, list[_Row]] = defaultdict(list)
    for row in _rows(connection, FAILED_ACTIONS, now - window, now):
        if row.user_id is not None:
            per_user[row.user_id].append(row)
        if row.client is not None:
            per_client[row.client].append(row)
    return _newest_first(
        _burst_findings("failed_sign_ins", per_user, more_than=threshold - 1, key="user_id")
        + _burst_findings("failed_sign_ins", per_client, more_than=threshold - 1, key="client")
    )


def refusals(
    connection: Connection,
    *,
    now: datetime,
    window: timedelta = WINDOW,
    limit: int = REFUSALS,
) -> list[Anomaly]:
    """Users refused more than ``limit`` times within an hour: content, metadata, reviews or
    certificates they may not see, approvals they may not give (every refusal is an event).

    A team member asking for a document still being scanned (reason ``not_available``) is
    waiting, not probing: those refusals do not count."""
    per_user: dict[int, list[_Row]] = defaultdict(list)
    for record in _records(connection, None, now - window, now, Outcome.DENIED):
        if record.actor.user_id is not None and record.details.get("reason") != "not_available":
            per_user[record.actor.user_id].append(_row(record))
    return _newest_first(_burst_findings("refusals", per_user, more_than=limit, key="user_id"))


def find_anomalies(
    connection: Connection,
    *,
    now: datetime,
    window: timedelta = WINDOW,
    thresholds: AlertThresholds | None = None,
) -> list[Anomaly]:
    """Every rule over the window ending at ``now``, newest first (``PORTAL_ALERT_*``)."""
    limits = thresholds or AlertThresholds()
    return _newest_first(
        [
            *bulk_downloads(connection, now=now, window=window, limit=limits.bulk_downloads),
            *bulk_documents(connection, now=now, window=window, limit=limits.bulk_documents),
            *out_of_hours(connection, now=now, window=window),
            *failed_sign_ins(connection, now=now, window=window, threshold=limits.failed_sign_ins),
            *refusals(connection, now=now, window=window, limit=limits.refusals),
        ]
    )


def _newest_first(found: list[Anomaly]) -> list[Anomaly]:
    found.sort(key=lambda a: (a.ended_at, a.sequences[-1] if a.sequences else 0), reverse=True)
    return found[:MAX_FINDINGS]

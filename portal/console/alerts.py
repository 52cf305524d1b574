"""Alerts: the anomaly rules, raised once each, and told to the people who must act.

The console's anomaly page (``portal.console.anomalies``) shows patterns to whoever looks; nobody
was told (issue 17). The worker now runs the rules over the last day once a minute and raises an
alert for each finding not raised before. One finding is one alert: a burst or a late night that
goes on updates its alert (count, end), it never raises another. Each new alert goes out as

* an e-mail to every active DPO, content-free: the rule, the count, the times, the alert's number
  and a link to the console; no names, no addresses, no file names (SMTP as configured by
  ``PORTAL_SMTP_URL``; tried again each round until the relay takes it);
* a structured JSON line on the log stream (logger ``portal.alerts``, level WARNING) for a SIEM,
  with the same facts and the account id and event sequence numbers behind it, never an e-mail
  or IP address.

Besides the anomaly rules the worker raises two alerts of its own: a witness that the database
contradicts (``witness_mismatch``) and an unsigned tail older than twice the checkpoint interval
(``unsigned_tail``: nothing signed the log for that long). A DPO acknowledges an alert in the
console; that is audited (``audit.alert_acknowledged``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from audit import Target, from_us
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.console.anomalies import Anomaly, find_anomalies, night_of
from portal.console.display import RULE_WORDS, people
from portal.destruction.notices import active_dpos, content_free_message
from portal.errors import Conflict
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound
from portal.models import as_utc, parse_id, utc_column
from portal.settings import AlertThresholds

log = logging.getLogger("portal.alerts")

LOOK_BACK = timedelta(days=1)  # each run looks at the last day: older findings were raised then
HOUR = timedelta(hours=1)

Send = Callable[[EmailMessage], None]


class AlreadyAcknowledged(Conflict):
    code = "already_acknowledged"


class Alert(SQLModel, table=True):
    """One finding of an anomaly rule, raised once; acknowledged by a DPO."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_subject", "rule", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    # SHA-256 of rule, subject and when it started (the night, for out-of-hours): the same
    # finding never raises twice, even when two workers find it at once.
    key: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    rule: str = Field(max_length=40)
    # SHA-256 of whom or what it is about ("user:7", "client:<address>", a witness problem):
    # the address itself is never stored here, nor logged, nor mailed.
    subject: str = Field(max_length=64)
    user_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    count: int
    first_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    last_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    started_at: datetime = Field(sa_column=utc_column())
    ended_at: datetime = Field(sa_column=utc_column())
    raised_at: datetime = Field(sa_column=utc_column())
    mailed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    acknowledged_by: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    acknowledged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


@dataclass(frozen=True)
class Finding:
    """What a rule found, before it is stored: ``who`` is hashed into the alert, never kept."""

    rule: str
    who: str
    anchor: str  # what makes it one finding: when it started, or the night
    count: int
    started_at: datetime
    ended_at: datetime
    user_id: int | None = None
    first_seq: int | None = None
    last_seq: int | None = None


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def finding_of(anomaly: Anomaly) -> Finding:
    who = f"user:{anomaly.user_id}" if anomaly.user_id is not None else f"client:{anomaly.client}"
    started = as_utc(anomaly.started_at)
    # A night's out-of-hours work is one finding however its first event moves in the window.
    anchor = (
        night_of(started).isoformat() if anomaly.rule == "out_of_hours" else started.isoformat()
    )
    return Finding(
        rule=anomaly.rule,
        who=who,
        anchor=anchor,
        count=anomaly.count,
        started_at=started,
        ended_at=as_utc(anomaly.ended_at),
        user_id=anomaly.user_id,
        first_seq=anomaly.sequences[0] if anomaly.sequences else None,
        last_seq=anomaly.sequences[-1] if anomaly.sequences else None,
    )


def witness_finding(problem: str, *, now: datetime) -> Finding:
    """A witness that the database contradicts: one alert per distinct problem."""
    return Finding("witness_mismatch", f"witness:{problem}", "-", 1, now, now)


def unsigned_tail_finding(events: int, since_us: int, *, now: datetime) -> Finding:
    """An unsigned tail too old: one alert per tail (the event it starts from)."""
    return Finding("unsigned_tail", "audit_log", str(since_us), events, from_us(since_us), now)


def log_line(alert: Alert) -> str:
    """The alert as one JSON object, for a SIEM: facts and references, nothing personal."""
    return json.dumps(
        {
            "event": "audit_alert",
            "alert": alert.id,
            "rule": alert.rule,
            "count": alert.count,
            "user_id": alert.user_id,
            "first_seq": alert.first_seq,
            "last_seq": alert.last_seq,
            "started_at": as_utc(alert.started_at).isoformat(),
            "ended_at": as_utc(alert.ended_at).isoformat(),
        },
        sort_keys=True,
    )


def _same_finding(db: Session, key: str, finding: Finding, subject: str) -> Alert | None:
    """The alert already raised for this finding: by its key, or (a burst whose first events
    left the look-back window) one of the same rule and subject that it overlaps."""
    found = db.exec(select(Alert).where(Alert.key == key)).first()
    if found is not None:
        return found
    # Only the alerts the finding can overlap, found through ix_alert_subject, not all of them.
    for alert in db.exec(
        select(Alert).where(
            Alert.rule == finding.rule,
            Alert.subject == subject,
            col(Alert.ended_at) >= finding.started_at - HOUR,
            col(Alert.started_at) <= finding.ended_at,
        )
    ).all():
        if finding.started_at <= as_utc(alert.ended_at) + HOUR and (
            finding.ended_at >= as_utc(alert.started_at)
        ):
            return alert
    return None


def _record(db: Session, finding: Finding, now: datetime) -> Alert | None:
    """Store ``finding`` as a new alert, or bring the one raised for it up to date (None)."""
    key = _digest(finding.rule, finding.who, finding.anchor)
    subject = _digest(finding.who)
    found = _same_finding(db, key, finding, subject)
    if found is not None:
        if finding.count > found.count or finding.ended_at > as_utc(found.ended_at):
            found.count = max(found.count, finding.count)
            found.ended_at = max(as_utc(found.ended_at), finding.ended_at)
            found.last_seq = finding.last_seq or found.last_seq
            db.add(found)
            db.commit()
        return None
    alert = Alert(
        key=key,
        rule=finding.rule,
        subject=subject,
        user_id=finding.user_id,
        count=finding.count,
        first_seq=finding.first_seq,
        last_seq=finding.last_seq,
        started_at=finding.started_at,
        ended_at=finding.ended_at,
        raised_at=now,
    )
    db.add(alert)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # another worker raised it at the same moment
        return None
    db.refresh(alert)
    return alert


def raise_alerts(
    engine: Engine,
    *,
    now: datetime,
    thresholds: AlertThresholds,
    extra: list[Finding] | None = None,
) -> list[Alert]:
    """Run the rules over the last day, store the findings not raised before, and log each new
    one as a JSON line; returns the new alerts. ``extra``: findings of the caller's own."""
    with engine.connect() as connection:
        found = find_anomalies(connection, now=now, window=LOOK_BACK, thresholds=thresholds)
    findings = [finding_of(a) for a in found] + list(extra or [])
    new = []
    with Session(engine) as db:
        for finding in findings:
            stored = _record(db, finding, now)
            if stored is not None:
                log.warning("%s", log_line(stored))
                new.append(stored)
    return new


def compose(alert: Alert, *, sender: str, to: str, public_url: str) -> EmailMessage:
    what = RULE_WORDS.get(alert.rule, alert.rule)
    events = (
        f"audit events {alert.first_seq} to {alert.last_seq}"
        if alert.first_seq is not None and alert.last_seq != alert.first_seq
        else f"audit event {alert.first_seq}"
        if alert.first_seq is not None
        else "see the console"
    )
    return content_free_message(
        sender=sender,
        to=to,
        subject=f"Portal audit alert {alert.id}: {what}",
        body=f"The portal's audit log raised alert {alert.id}: {what.lower()}.\n\n"
        f"How many: {alert.count}, from {as_utc(alert.started_at):%Y-%m-%d %H:%M} to "
        f"{as_utc(alert.ended_at):%Y-%m-%d %H:%M} UTC ({events}).\n\n"
        "To see who and what, and to acknowledge it, sign in to the DPO console:\n"
        f"{public_url}/console/alerts",
    )


def mail_alerts(engine: Engine, send: Send, *, now: datetime, sender: str, public_url: str) -> int:
    """E-mail every alert not mailed yet to every active DPO; how many alerts were sent.

    An alert raised while there is no active DPO waits until there is one."""
    sent = 0
    with Session(engine) as db:
        recipients = active_dpos(db)
        if not recipients:
            return 0
        waiting = db.exec(
            select(Alert).where(col(Alert.mailed_at).is_(None)).order_by(col(Alert.id))
        ).all()
        for alert in waiting:
            try:
                for to in recipients:
                    send(compose(alert, sender=sender, to=to, public_url=public_url))
            except (OSError, smtplib.SMTPException) as failure:  # tried again next round
                log.warning("could not mail alert %s: %s", alert.id, type(failure).__name__)
                break
            alert.mailed_at = now
            db.add(alert)
            db.commit()
            sent += 1
    return sent


def list_alerts(db: Session, *, limit: int = 200) -> list[Alert]:
    """The newest alerts, those not acknowledged first."""
    return list(
        db.exec(
            select(Alert)
            .order_by(col(Alert.acknowledged_at).is_not(None), col(Alert.id).desc())
            .limit(limit)
        ).all()
    )


def acknowledge(db: Session, auditor: Auditor, acting: Acting, alert_id: str) -> Alert:
    """A DPO acknowledges an alert: recorded on it and audited. The caller commits."""
    number = parse_id(alert_id)
    alert = db.get(Alert, number) if number is not None else None
    if alert is None:
        raise NotFound("There is no alert with that number.")
    if alert.acknowledged_at is not None:
        raise AlreadyAcknowledged(f"Alert {alert.id} was acknowledged already.")
    alert.acknowledged_by = acting.actor.user_id
    alert.acknowledged_at = acting.now
    db.add(alert)
    auditor.record_as(
        db,
        acting,
        Action.ALERT_ACKNOWLEDGED,
        target=Target(TargetKind.ALERT, str(alert.id)),
        details={"rule": alert.rule, "count": alert.count},
    )
    return alert


def _shown(moment: datetime | None) -> str | None:
    return as_utc(moment).strftime("%-d %b %Y, %H:%M UTC") if moment is not None else None


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment is not None else None


def alert_rows(db: Session, found: list[Alert], *, page: bool = True) -> list[dict[str, Any]]:
    """The alerts as the console (``page``: with times for people) and the API show them (to
    DPOs: with the people named)."""
    who = people(db, [a.user_id for a in found] + [a.acknowledged_by for a in found])
    rows = []
    for alert in found:
        person = who.get(alert.user_id) if alert.user_id is not None else None
        acknowledger = who.get(alert.acknowledged_by) if alert.acknowledged_by is not None else None
        rows.append(
            {
                "id": alert.id,
                "rule": alert.rule,
                "rule_words": RULE_WORDS.get(alert.rule, alert.rule),
                "count": alert.count,
                "user_id": alert.user_id,
                "email": person.email if person else None,
                "first_seq": alert.first_seq,
                "last_seq": alert.last_seq,
                "started_at": _iso(alert.started_at),
                "ended_at": _iso(alert.ended_at),
                "raised_at": _iso(alert.raised_at),
                "mailed_at": _iso(alert.mailed_at),
                "acknowledged_at": _iso(alert.acknowledged_at),
                "acknowledged_by": alert.acknowledged_by,
                "acknowledged_by_email": acknowledger.email if acknowledger else None,
            }
        )
        if page:
            rows[-1] |= {
                "started_shown": _shown(alert.started_at),
                "ended_shown": _shown(alert.ended_at),
                "acknowledged_shown": _shown(alert.acknowledged_at),
            }
    return rows

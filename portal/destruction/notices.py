"""Notices 30 and 7 days before a review's destruction: in the portal, and by e-mail if configured.

The e-mail carries no content and no names: the review's code, the date and a link to the portal.
Each recipient (the review's lead and the DPOs) gets a message of their own, so that no one sees
the others' addresses. A notice is recorded once per review, kind and date; its e-mail is retried
each round until it is sent.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from portal.accounts.models import Role, User
from portal.destruction.models import Notice, NoticeKind
from portal.exchange.models import Review, ReviewState
from portal.settings import SmtpAddress

DAYS = {NoticeKind.days_30: 30, NoticeKind.days_7: 7}

Send = Callable[[EmailMessage], None]


def kind_due(destroy_on: date, today: date) -> NoticeKind | None:
    """The notice that should exist now: the 7-day one within a week, else the 30-day one."""
    if today >= destroy_on:
        return None
    if today >= destroy_on - timedelta(days=7):
        return NoticeKind.days_7
    if today >= destroy_on - timedelta(days=30):
        return NoticeKind.days_30
    return None


def record_notices(engine: Engine, *, now: datetime) -> list[Notice]:
    """Record the notices due today; returns the new ones. Safe with several workers."""
    today = now.date()
    created = []
    with Session(engine) as db:
        candidates = db.exec(
            select(Review).where(col(Review.state).in_([ReviewState.open, ReviewState.closed]))
        ).all()
        wanted = [
            (review.id, kind, review.destroy_on)
            for review in candidates
            if (kind := kind_due(review.destroy_on, today)) is not None
        ]
    for review_id, kind, due_on in wanted:
        assert review_id is not None
        with Session(engine) as db:
            exists = db.exec(
                select(Notice.id).where(
                    Notice.review_id == review_id, Notice.kind == kind, Notice.due_on == due_on
                )
            ).first()
            if exists is not None:
                continue
            notice = Notice(review_id=review_id, kind=kind, due_on=due_on, created_at=now)
            db.add(notice)
            try:
                db.commit()
            except IntegrityError:
                db.rollback()  # another worker recorded it at the same moment
                continue
            db.refresh(notice)
            created.append(notice)
    return created


def recipients(db: Session, review: Review) -> list[str]:
    lead = db.get(User, review.lead_user_id)
    found = {lead.email} if lead is not None and lead.disabled_at is None else set()
    return sorted(found | set(active_dpos(db)))


def active_dpos(db: Session) -> list[str]:
    """The e-mail addresses of every active DPO."""
    dpos = db.exec(select(User).where(User.role == Role.dpo, col(User.disabled_at).is_(None))).all()
    return sorted(u.email for u in dpos)


NO_CONTENT = "This message carries no content and no names. Please do not reply to it.\n"


def content_free_message(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text notice; ``body`` says what and where to sign in, never who or what content."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"{body}\n\n{NO_CONTENT}")
    return message


def compose(
    notice: Notice, review: Review, *, sender: str, to: str, public_url: str
) -> EmailMessage:
    days = DAYS[notice.kind]
    when = f"{notice.due_on:%d %B %Y}".lstrip("0")
    return content_free_message(
        sender=sender,
        to=to,
        subject=f"Review {review.code}: records to be destroyed on {when}",
        body=f"The records of review {review.code} are due to be destroyed on {when} "
        f"({notice.due_on.isoformat()}), in {days} days or less.\n\n"
        "Destruction runs by itself on that date unless a hold is placed. To see the schedule "
        f"or to ask for a hold, sign in to the portal:\n{public_url}/",
    )


@dataclass(frozen=True)
class Mailer:
    """Sends through the SMTP relay of ``PORTAL_SMTP_URL``."""

    address: SmtpAddress
    timeout: float = 15

    def __call__(self, message: EmailMessage) -> None:
        if self.address.tls:
            with smtplib.SMTP_SSL(
                self.address.host,
                self.address.port,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            ) as smtp:
                smtp.send_message(message)
        else:
            with smtplib.SMTP(self.address.host, self.address.port, timeout=self.timeout) as smtp:
                smtp.send_message(message)


def send_notices(engine: Engine, send: Send, *, now: datetime, sender: str, public_url: str) -> int:
    """E-mail every recorded notice not sent yet; returns how many were sent."""
    sent = 0
    with Session(engine) as db:
        pending = db.exec(
            select(Notice.id).where(col(Notice.sent_at).is_(None)).order_by(col(Notice.id))
        ).all()
    for notice_id in pending:
        with Session(engine) as db:
            query = select(Notice).where(Notice.id == notice_id, col(Notice.sent_at).is_(None))
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            notice = db.exec(query).first()
            if notice is None:
                continue
            review = db.get(Review, notice.review_id)
            assert review is not None
            addresses = recipients(db, review)
            try:
                for to in addresses:
                    send(compose(notice, review, sender=sender, to=to, public_url=public_url))
            except (OSError, smtplib.SMTPException):
                return sent  # the relay is down: every notice waits for the next round
            notice.sent_at = now
            notice.recipients = len(addresses)
            db.add(notice)
            db.commit()
            sent += 1
    return sent

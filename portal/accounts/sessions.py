"""Server-side sessions: the browser holds only a random id; the database holds its hash.

A new id is issued at every sign-in step (no session fixation); idle and absolute time-outs are
checked on every request; signing out, or disabling the user, ends the session at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from portal.accounts.models import User, WebSession
from portal.accounts.secrets import digest, new_token
from portal.models import as_utc


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    # Half signed in (password accepted, code pending): a short life.
    pending: timedelta = timedelta(minutes=5)
    # Write last_seen_at at most this often, so each page view is not a database write.
    touch_every: timedelta = timedelta(seconds=60)


def start_session(db: Session, user: User, *, mfa_done: bool, now: datetime) -> str:
    """Create a session and return its id (the cookie's value), shown nowhere else."""
    raw = new_token("s_", 32)  # 256 bits
    assert user.id is not None
    db.add(
        WebSession(
            id_hash=digest(raw),
            user_id=user.id,
            mfa_done=mfa_done,
            created_at=now,
            last_seen_at=now,
        )
    )
    return raw


def find_session(
    db: Session, raw: str, *, now: datetime, policy: SessionPolicy
) -> tuple[WebSession, User] | None:
    """The live session with this id and its user, or None (and the session is ended if stale)."""
    if not raw or len(raw) > 100:
        return None
    found = db.exec(
        select(WebSession, User)
        .join(User, col(User.id) == WebSession.user_id)
        .where(WebSession.id_hash == digest(raw))
    ).first()
    if found is None:
        return None
    session, user = found
    if session.ended_at is not None or user.disabled_at is not None:
        return None
    created, seen = as_utc(session.created_at), as_utc(session.last_seen_at)
    absolute = policy.absolute if session.mfa_done else policy.pending
    if now - created > absolute or now - seen > policy.idle:
        session.ended_at = now
        db.add(session)
        db.commit()
        return None
    if now - seen > policy.touch_every:
        session.last_seen_at = now
        db.add(session)
        db.commit()
    return session, user


def end_session(db: Session, session: WebSession, *, now: datetime) -> None:
    session.ended_at = now
    db.add(session)


def end_all_sessions(db: Session, user_id: int, *, now: datetime) -> int:
    result = db.exec(
        update(WebSession)
        .where(col(WebSession.user_id) == user_id)
        .where(col(WebSession.ended_at).is_(None))
        .values(ended_at=now)
    )
    return int(result.rowcount)

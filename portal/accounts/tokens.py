"""Personal access tokens for the API: shown once, stored hashed, expiring, revocable."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

import audit
from portal.accounts.models import ApiToken, User
from portal.accounts.secrets import digest, new_token
from portal.auditing import Action, Auditor, Origin, Target, TargetKind
from portal.errors import NotFound
from portal.models import as_utc
from portal.text import clean_text

TOKEN_PREFIX = "pat_"  # noqa: S105 (a label, so leaked tokens are recognisable by scanners)
DEFAULT_DAYS = 30
MAX_DAYS = 365


def create_token(
    db: Session, user: User, *, name: str, days: int, now: datetime
) -> tuple[ApiToken, str]:
    """Returns the stored row and the token itself, which is never available again."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"A token must expire in 1 to {MAX_DAYS} days, not {days}.")
    name = clean_text(name, what="token's name", longest=100)
    assert user.id is not None
    raw = new_token(TOKEN_PREFIX, 32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=digest(raw),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.add(row)
    db.flush()
    return row, raw


def find_token(db: Session, raw: str, *, now: datetime) -> tuple[ApiToken, User] | None:
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    found = db.exec(
        select(ApiToken, User)
        .join(User, col(User.id) == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(raw))
    ).first()
    if found is None:
        return None
    token, user = found
    if token.revoked_at is not None or user.disabled_at is not None:
        return None
    if as_utc(token.expires_at) <= now:
        return None
    last = token.last_used_at
    if last is None or now - as_utc(last) > timedelta(minutes=1):
        token.last_used_at = now
        db.add(token)
        db.commit()
    return token, user


def why_refused(
    db: Session, raw: str, *, now: datetime
) -> tuple[str, ApiToken | None, User | None]:
    """Why ``find_token`` refused ``raw``: a reason code, and the token's row and owner when it
    is one of ours (for the audit event: its id and owner, never the token)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return "malformed", None, None
    found = db.exec(
        select(ApiToken, User)
        .join(User, col(User.id) == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(raw))
    ).first()
    if found is None:
        return "unknown", None, None
    token, user = found
    if token.revoked_at is not None:
        return "revoked", token, user
    if user.disabled_at is not None:
        return "disabled", token, user
    if as_utc(token.expires_at) <= now:
        return "expired", token, user
    return "unknown", token, user  # pragma: no cover - find_token would have accepted it


def list_tokens(db: Session, user_id: int) -> list[ApiToken]:
    return list(
        db.exec(
            select(ApiToken)
            .where(ApiToken.user_id == user_id)
            .order_by(col(ApiToken.created_at).desc())
        ).all()
    )


def revoke_token(db: Session, token: ApiToken, *, now: datetime) -> None:
    if token.revoked_at is None:
        token.revoked_at = now
        db.add(token)


def revoke_all_tokens(db: Session, user_id: int, *, now: datetime) -> int:
    result = db.exec(
        update(ApiToken)
        .where(col(ApiToken.user_id) == user_id)
        .where(col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)


def revoke_token_of(
    db: Session,
    auditor: Auditor,
    token_id: int,
    *,
    owner_id: int | None,
    actor: audit.Actor,
    now: datetime,
    origin: Origin,
) -> None:
    """Revoke a token (audited): the caller's own (``owner_id``), or any (None: an
    administrator's). Another person's token is as absent as one that never was."""
    token = db.get(ApiToken, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        raise NotFound()
    revoke_token(db, token, now=now)
    auditor.record(
        db,
        Action.TOKEN_REVOKED,
        actor=actor,
        now=now,
        origin=origin,
        target=Target(TargetKind.TOKEN, str(token.id)),
    )

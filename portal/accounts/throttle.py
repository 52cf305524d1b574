"""Throttling and lock-out of sign-in attempts, per account and per client address.

Threats: online guessing of passwords and TOTP codes. A 6-digit code with a window of three steps is
guessed one time in 333,333; five failures lock the account for 15 minutes, doubling each time (up to a
day), so 1,000 guesses never get near. The account key is a hash of the e-mail typed, whether or not
such a user exists, so an unknown address is locked exactly like a real one (no enumeration).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from portal.accounts.models import Throttle
from portal.accounts.secrets import digest
from portal.models import as_utc


@dataclass(frozen=True)
class ThrottlePolicy:
    account_failures: int = 5
    address_failures: int = 30
    window: timedelta = timedelta(minutes=15)
    first_lockout: timedelta = timedelta(minutes=15)
    longest_lockout: timedelta = timedelta(hours=24)


def account_key(email: str) -> str:
    return "account:" + digest(email.strip().lower())


def address_key(address: str) -> str:
    return "address:" + address[:64]


def locked_until(db: Session, keys: list[str], now: datetime) -> datetime | None:
    """The latest time any of ``keys`` is locked until, if one is locked now."""
    rows = db.exec(select(Throttle).where(Throttle.key.in_(keys))).all()  # type: ignore[attr-defined]
    until = [as_utc(row.locked_until) for row in rows if row.locked_until is not None]
    active = [moment for moment in until if moment > now]
    return max(active) if active else None


def record_failure(
    db: Session, key: str, *, limit: int, policy: ThrottlePolicy, now: datetime
) -> datetime | None:
    """Count a failure against ``key``; returns the lock's end when this failure locks it."""
    _ensure_row(db, key, now)
    # Lock the row so concurrent failures (several processes) are all counted.
    row = db.exec(select(Throttle).where(Throttle.key == key).with_for_update()).one()
    if now - as_utc(row.window_started_at) > policy.window:
        row.failures = 0
        row.window_started_at = now
    row.failures += 1
    lock_end = None
    if row.failures >= limit:
        length = min(policy.first_lockout * (2**row.lockouts), policy.longest_lockout)
        lock_end = now + length
        row.locked_until = lock_end
        row.lockouts += 1
        row.failures = 0
        row.window_started_at = now
    db.add(row)
    db.flush()
    return lock_end


def clear(db: Session, key: str) -> None:
    """After a full sign-in: the account starts afresh."""
    db.exec(  # type: ignore[call-overload]
        update(Throttle)
        .where(Throttle.key == key)
        .values(failures=0, lockouts=0, locked_until=None)
    )


def _ensure_row(db: Session, key: str, now: datetime) -> None:
    values = {"key": key, "failures": 0, "lockouts": 0, "window_started_at": now}
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.exec(insert(Throttle).values(**values).on_conflict_do_nothing())  # type: ignore[call-overload]

"""Throttling of sign-in attempts: per account, per client address, and per known browser.

Threats: online guessing of passwords and TOTP codes, and lock-out used as a denial of service.

- **Per account** (a hash of the e-mail typed, whether or not such a user exists, so an unknown
  address behaves exactly like a real one: no enumeration): five failures are free; each further
  one makes the next attempt wait, 30 s doubling to at most an hour. An attempt inside the wait is
  refused without being checked ("try again in N seconds"), so the guesses an attacker gets are
  bounded (about 24 a day once the waits are long), while the owner is only ever delayed, never
  locked out for hours. The count is forgotten after a day without failures, or at a full sign-in.
- **Per client address**: the same with 30 free failures, against one machine guessing many
  accounts. Councils' staff share one outgoing address, so this pause must not stop them: see below.
- **Per known browser** (a signed device cookie, OWASP's "device cookies"): correct credentials
  from a browser the account has fully signed in with before pass both pauses above; that browser's
  own failures count against it alone (the same five free, then waits), so a stolen cookie buys no
  extra guesses. An attacker's failures therefore never hold up the owner at their usual browser.

An administrator can clear an account's counters (``portal user unlock``, the Users page).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from portal.accounts.models import Throttle
from portal.accounts.secrets import digest
from portal.models import as_utc

UNLOCKED = "sign_in_unlocked"  # the audit reason of an administrator's unlock (user.updated)


@dataclass(frozen=True)
class ThrottlePolicy:
    account_failures: int = 5  # free failures per account, then each attempt waits
    address_failures: int = 30  # free failures per client address
    device_failures: int = 5  # free failures per known browser
    first_delay: timedelta = timedelta(seconds=30)
    longest_delay: timedelta = timedelta(hours=1)
    forget_after: timedelta = timedelta(hours=24)  # without a failure, the count starts afresh

    def delay(self, failures: int, free: int) -> timedelta | None:
        """How long the next attempt waits after ``failures`` consecutive failures."""
        if failures < free:
            return None
        doublings = min(failures - free, 32)
        delay: timedelta = min(self.first_delay * (2**doublings), self.longest_delay)
        return delay


def account_key(email: str) -> str:
    return "account:" + digest(email.strip().lower())


def address_key(address: str) -> str:
    return "address:" + address[:64]


def device_key(user_id: int, nonce: str) -> str:
    """One known browser of one account (the cookie's random part, hashed)."""
    return f"device:{user_id}:{digest(nonce)[:40]}"


def waiting_until(db: Session, keys: list[str], now: datetime) -> datetime | None:
    """The latest time any of ``keys`` must wait until, if one must wait now."""
    rows = db.exec(select(Throttle).where(col(Throttle.key).in_(keys))).all()
    until = [as_utc(row.locked_until) for row in rows if row.locked_until is not None]
    active = [moment for moment in until if moment > now]
    return max(active) if active else None


def seconds_left(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def record_failure(
    db: Session, key: str, *, free: int, policy: ThrottlePolicy, now: datetime
) -> datetime | None:
    """Count a failure against ``key``; returns when the next attempt may come, if it must wait.

    ``window_started_at`` holds the time of the latest failure: a day later the count restarts.
    """
    _ensure_row(db, key, now)
    # Lock the row so concurrent failures (several processes) are all counted.
    row = db.exec(select(Throttle).where(Throttle.key == key).with_for_update()).one()
    if now - as_utc(row.window_started_at) > policy.forget_after:
        row.failures = 0
    row.failures += 1
    row.window_started_at = now
    wait = policy.delay(row.failures, free)
    next_attempt = None
    if wait is not None:
        next_attempt = now + wait
        row.locked_until = next_attempt
        row.lockouts += 1
    db.add(row)
    db.flush()
    return next_attempt


def clear(db: Session, key: str) -> None:
    """After a full sign-in: the key starts afresh."""
    db.exec(
        update(Throttle)
        .where(col(Throttle.key) == key)
        .values(failures=0, lockouts=0, locked_until=None)
    )


def unlock(db: Session, *, email: str, user_id: int) -> int:
    """An administrator's unlock: the account's counters and its browsers'; how many were set."""
    rows = db.exec(
        select(Throttle).where(
            (col(Throttle.key) == account_key(email))
            | col(Throttle.key).startswith(f"device:{user_id}:", autoescape=True)
        )
    ).all()
    counted = sum(1 for row in rows if row.failures or row.locked_until is not None)
    db.exec(delete(Throttle).where(col(Throttle.key).in_([row.key for row in rows])))
    return counted


def account_states(db: Session, emails: list[str], now: datetime) -> dict[str, datetime]:
    """For the Users page: which of ``emails`` must wait before signing in, and until when."""
    keys = {account_key(email): email for email in emails}
    rows = db.exec(select(Throttle).where(col(Throttle.key).in_(list(keys)))).all()
    return {
        keys[row.key]: as_utc(row.locked_until)
        for row in rows
        if row.locked_until is not None and as_utc(row.locked_until) > now
    }


def _ensure_row(db: Session, key: str, now: datetime) -> None:
    values = {"key": key, "failures": 0, "lockouts": 0, "window_started_at": now}
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.exec(insert(Throttle).values(**values).on_conflict_do_nothing())

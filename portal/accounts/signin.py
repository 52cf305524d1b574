"""Signing in: e-mail and password, then a TOTP code or a one-time recovery code.

Every failure gives the same answer whatever went wrong (unknown e-mail, wrong password, disabled
account, not yet enrolled), and takes as long (a decoy Argon2 verification), so nobody can learn which
e-mail addresses have accounts. Every attempt is audited, success or failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from portal.accounts import throttle, totp
from portal.accounts.devices import DeviceClaim, DeviceCookies
from portal.accounts.models import RecoveryCode, User
from portal.accounts.passwords import PasswordHasher
from portal.accounts.secrets import SecretBox, digest, normalise_recovery_code
from portal.auditing import Action, Actor, Auditor, Origin, Outcome
from portal.errors import Unauthenticated
from portal.text import has_control_characters

BAD_CREDENTIALS = (
    "Enter a correct email address and password. Check them and try again; if you have "
    "forgotten your password, ask your portal administrator to send you a new link."
)
BAD_CODE = (
    "Enter the 6-digit code shown in your authenticator app now, or one of your recovery codes."
)


class SignInRefused(Unauthenticated):
    """A sign-in step failed; ``message`` is what the person may be told.

    ``locked_until``: the attempt came (or this failure made the next one come) too soon, and no
    attempt is checked before then."""

    def __init__(self, message: str, *, locked_until: datetime | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minutes"


def locked_message(until: datetime, now: datetime) -> str:
    wait = _duration(throttle.seconds_left(until, now))
    return (
        "There have been too many failed attempts to sign in. For your security, try again in "
        f"{wait}. If this keeps happening, ask your portal administrator for help."
    )


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, role=user.role.value, organisation_id=user.organisation_id)


@dataclass(frozen=True)
class SignIn:
    """Everything the sign-in steps need, built once per process."""

    hasher: PasswordHasher
    secret_box: SecretBox
    auditor: Auditor
    policy: throttle.ThrottlePolicy = field(default_factory=throttle.ThrottlePolicy)
    devices: DeviceCookies | None = None  # None: no browser is ever known (tests of the rest)

    def known_device(self, raw: str | None, user: User | None, now: datetime) -> DeviceClaim | None:
        """The device cookie ``raw``, if it is valid and names ``user``."""
        if self.devices is None or user is None:
            return None
        claim = self.devices.claim(raw, now)
        return claim if claim is not None and claim.user_id == user.id else None

    def issue_device_cookie(self, user: User, now: datetime) -> str | None:
        """After a full sign-in: the cookie that marks this browser as known to ``user``."""
        if self.devices is None or user.id is None:
            return None
        return self.devices.issue(user.id, now)

    def _keys(
        self, email: str, origin: Origin, device: DeviceClaim | None
    ) -> list[tuple[str, int]]:
        """The throttle keys an attempt is checked and counted against, with their free failures."""
        if device is not None:
            # A browser this account has signed in with: only its own failures hold it up.
            return [
                (throttle.device_key(device.user_id, device.nonce), self.policy.device_failures)
            ]
        return [
            (throttle.account_key(email), self.policy.account_failures),
            (throttle.address_key(origin.client_address or ""), self.policy.address_failures),
        ]

    def check_password(
        self,
        db: Session,
        *,
        email: str,
        password: str,
        origin: Origin,
        now: datetime,
        device: str | None = None,
    ) -> User:
        """First step. Returns the user, or raises SignInRefused (already audited and committed).

        ``device``: the browser's device cookie, if it sent one."""
        email = email.strip().lower()
        # An address no account can have is looked up nowhere (a NUL would be a database error).
        typable = len(email) <= 320 and not has_control_characters(email)
        user = db.exec(select(User).where(User.email == email)).first() if typable else None
        actor = actor_of(user) if user else Actor()
        keys = self._keys(email, origin, self.known_device(device, user, now))
        until = throttle.waiting_until(db, [key for key, _ in keys], now)
        if until is not None:
            # Still spend the Argon2 time, so a waiting account cannot be told from a slow one.
            self.hasher.verify(None, password)
            self._refuse(db, Action.SIGN_IN_FAILED, actor, origin, now, "locked")
            raise SignInRefused(locked_message(until, now), locked_until=until)
        ok = self.hasher.verify(user.password_hash if user else None, password)
        usable = user is not None and user.disabled_at is None and user.enrolled_at is not None
        if ok and usable:
            assert user is not None
            return user
        reason = "unknown_account" if user is None else ("bad_password" if not ok else "unusable")
        lock = self._count_failure(db, keys, now)
        self._refuse(db, Action.SIGN_IN_FAILED, actor, origin, now, reason)
        if lock is not None:
            self._lockout(db, actor, origin, now)
            raise SignInRefused(f"{BAD_CREDENTIALS} {locked_message(lock, now)}", locked_until=lock)
        raise SignInRefused(BAD_CREDENTIALS)

    def check_second_factor(
        self,
        db: Session,
        *,
        user: User,
        code: str,
        origin: Origin,
        now: datetime,
        device: str | None = None,
    ) -> str:
        """Second step: a TOTP code never used before, or an unused recovery code.

        Returns the method used ("totp" or "recovery_code"); raises SignInRefused otherwise.
        """
        known = self.known_device(device, user, now)
        keys = self._keys(user.email, origin, known)
        actor = actor_of(user)
        until = throttle.waiting_until(db, [key for key, _ in keys], now)
        if until is not None:
            self._refuse(db, Action.MFA_FAILED, actor, origin, now, "locked")
            raise SignInRefused(locked_message(until, now), locked_until=until)
        if user.disabled_at is not None:
            self._refuse(db, Action.MFA_FAILED, actor, origin, now, "unusable")
            raise SignInRefused(BAD_CODE)
        method = None
        cleaned = "".join(ch for ch in code if ch.isalnum())
        if len(cleaned) == 16:
            method = "recovery_code" if self._use_recovery_code(db, user, code, now) else None
        elif self._use_totp(db, user, code, now):
            method = "totp"
        if method is not None:
            # The account (or this browser) starts afresh; an address's count is left alone.
            throttle.clear(db, keys[0][0])
            return method
        lock = self._count_failure(db, keys, now)
        self._refuse(db, Action.MFA_FAILED, actor, origin, now, "bad_code")
        if lock is not None:
            self._lockout(db, actor, origin, now)
            raise SignInRefused(f"{BAD_CODE} {locked_message(lock, now)}", locked_until=lock)
        raise SignInRefused(BAD_CODE)

    def _use_totp(self, db: Session, user: User, code: str, now: datetime) -> bool:
        if user.totp_secret_sealed is None:
            return False
        secret = self.secret_box.open(user.totp_secret_sealed).decode()
        step = totp.matching_step(secret, code, now)
        if step is None:
            return False
        # Replay defence: move the last accepted step forward only if this step is newer. The
        # conditional UPDATE is atomic, so two requests with one code (even in two processes on
        # PostgreSQL, where the second waits for the first's row lock) give exactly one success.
        result = db.exec(
            update(User)
            .where(col(User.id) == user.id)
            .where(or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step))
            .values(totp_last_step=step)
        )
        return bool(result.rowcount == 1)

    def _use_recovery_code(self, db: Session, user: User, code: str, now: datetime) -> bool:
        hashed = digest(normalise_recovery_code(code))
        result = db.exec(
            update(RecoveryCode)
            .where(col(RecoveryCode.user_id) == user.id)
            .where(col(RecoveryCode.code_hash) == hashed)
            .where(col(RecoveryCode.used_at).is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount == 1)

    def _count_failure(
        self, db: Session, keys: list[tuple[str, int]], now: datetime
    ) -> datetime | None:
        waits = [
            throttle.record_failure(db, key, free=free, policy=self.policy, now=now)
            for key, free in keys
        ]
        found = [wait for wait in waits if wait is not None]
        return max(found) if found else None

    def _refuse(
        self,
        db: Session,
        action: Action,
        actor: Actor,
        origin: Origin,
        now: datetime,
        reason: str,
    ) -> None:
        self.auditor.record(
            db,
            action,
            actor=actor,
            now=now,
            origin=origin,
            outcome=Outcome.FAILURE,
            details={"reason": reason},
        )
        # A refusal is committed even though the caller raises: the failure counters and the
        # audit event must survive, or an attacker could guess for ever.
        db.commit()

    def _lockout(self, db: Session, actor: Actor, origin: Origin, now: datetime) -> None:
        self.auditor.record(
            db, Action.LOCKED_OUT, actor=actor, now=now, origin=origin, outcome=Outcome.DENIED
        )
        db.commit()

"""Organisations and users: created by administrators, enrolled by the user from a one-time link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

import audit
from portal.accounts import sessions, throttle, tokens, totp
from portal.accounts.models import Enrolment, RecoveryCode, Role, User
from portal.accounts.passwords import PasswordHasher, password_problem
from portal.accounts.secrets import SecretBox, digest, new_recovery_code, new_token
from portal.auditing import Action, Auditor, Origin, Target, TargetKind
from portal.errors import Invalid
from portal.models import Organisation, OrganisationKind, as_utc
from portal.text import TextRefused, clean_text

ENROLMENT_LIFETIME = timedelta(days=3)
RECOVERY_CODES = 10
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")

# Which roles an organisation of each kind may hold (SPEC §2): authorities upload; the
# inspectorate inspects, leads, protects data and administers.
ROLES_OF_KIND = {
    OrganisationKind.authority: {Role.uploader},
    OrganisationKind.inspectorate: {Role.inspector, Role.lead, Role.dpo, Role.admin},
}


class AccountError(Invalid):
    """A request about accounts that cannot be carried out; the message says why and what to do."""


def add_organisation(
    db: Session, *, slug: str, name: str, kind: OrganisationKind, now: datetime
) -> Organisation:
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise AccountError(
            f"Organisation code {slug!r} is not valid: use 3 to 64 lower-case letters, digits and "
            "hyphens, e.g. aberdeen-city."
        )
    if db.exec(select(Organisation).where(Organisation.slug == slug)).first():
        raise AccountError(f"An organisation with the code {slug!r} already exists.")
    try:
        name = clean_text(name, what="organisation's name", longest=200)
    except TextRefused as refused:
        raise AccountError(str(refused)) from None
    organisation = Organisation(slug=slug, name=name, kind=kind, created_at=now)
    db.add(organisation)
    db.flush()
    return organisation


def find_organisation(db: Session, slug: str) -> Organisation:
    slug = slug.strip().lower()
    organisation = (
        db.exec(select(Organisation).where(Organisation.slug == slug)).first()
        if _SLUG.match(slug)
        else None
    )
    if organisation is None:
        raise AccountError(f"There is no organisation with the code {slug!r}.")
    return organisation


def add_user(
    db: Session,
    *,
    email: str,
    role: Role,
    organisation: Organisation,
    now: datetime,
    name: str | None = None,
) -> tuple[User, str]:
    """Create a user and their enrolment token (returned once, for the link)."""
    email = email.strip().lower()
    name = " ".join(name.split()) if name else None
    if name is not None and len(name) > 200:
        raise AccountError("A name is at most 200 characters.")
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an email address.")
    if db.exec(select(User).where(User.email == email)).first():
        raise AccountError("A user with that email address already exists.")
    if role not in ROLES_OF_KIND[organisation.kind]:
        allowed = ", ".join(sorted(r.value for r in ROLES_OF_KIND[organisation.kind]))
        raise AccountError(
            f"A user of {organisation.kind.value} {organisation.slug!r} cannot have the role "
            f"{role.value}: choose one of {allowed}."
        )
    assert organisation.id is not None
    user = User(email=email, name=name, role=role, organisation_id=organisation.id, created_at=now)
    db.add(user)
    db.flush()
    return user, new_enrolment(db, user, now=now)


def new_enrolment(db: Session, user: User, *, now: datetime) -> str:
    """A fresh one-time enrolment token; earlier unused ones stop working."""
    assert user.id is not None
    for old in db.exec(
        select(Enrolment).where(Enrolment.user_id == user.id, col(Enrolment.used_at).is_(None))
    ).all():
        old.used_at = now
        db.add(old)
    raw = new_token("", 32)
    db.add(
        Enrolment(
            token_hash=digest(raw),
            user_id=user.id,
            created_at=now,
            expires_at=now + ENROLMENT_LIFETIME,
        )
    )
    return raw


def find_enrolment(db: Session, raw: str, *, now: datetime) -> tuple[Enrolment, User] | None:
    if not raw or len(raw) > 100:
        return None
    found = db.exec(
        select(Enrolment, User)
        .join(User, col(User.id) == Enrolment.user_id)
        .where(Enrolment.token_hash == digest(raw))
    ).first()
    if found is None:
        return None
    enrolment, user = found
    if enrolment.used_at is not None or as_utc(enrolment.expires_at) <= now:
        return None
    if user.disabled_at is not None:
        return None
    return enrolment, user


def set_password(
    db: Session, user: User, password: str, confirm: str, *, hasher: PasswordHasher
) -> None:
    if password != confirm:
        raise AccountError("The two passwords are different. Type the same password twice.")
    problem = password_problem(password, email=user.email)
    if problem:
        raise AccountError(problem)
    user.password_hash = hasher.hash(password)
    db.add(user)


def start_totp(db: Session, user: User, *, box: SecretBox) -> str:
    """Give the user a new TOTP secret (not yet confirmed); returns it for the QR code."""
    secret = totp.new_secret()
    user.totp_secret_sealed = box.seal(secret.encode())
    user.totp_last_step = None
    db.add(user)
    return secret


@dataclass(frozen=True)
class Enrolled:
    recovery_codes: list[str]


def confirm_totp(
    db: Session, enrolment: Enrolment, user: User, code: str, *, box: SecretBox, now: datetime
) -> Enrolled:
    """The user proves their app shows the right code: enrolment completes."""
    if user.password_hash is None or user.totp_secret_sealed is None:
        raise AccountError("Set a password first.")
    secret = box.open(user.totp_secret_sealed).decode()
    step = totp.matching_step(secret, code, now)
    if step is None:
        raise AccountError(
            "That code is not right. Check the time on your phone is correct, then enter the "
            "6-digit code your authenticator app shows now."
        )
    user.totp_last_step = step  # the code used to enrol cannot then be used to sign in
    user.enrolled_at = now
    enrolment.used_at = now
    db.add(user)
    db.add(enrolment)
    return Enrolled(recovery_codes=replace_recovery_codes(db, user))


def replace_recovery_codes(db: Session, user: User) -> list[str]:
    """Ten new one-time recovery codes (shown once); the old ones stop working."""
    assert user.id is not None
    for old in db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all():
        db.delete(old)
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    for code in codes:
        db.add(RecoveryCode(user_id=user.id, code_hash=digest(code)))
    return codes


def disable_user(db: Session, user: User, *, now: datetime) -> tuple[int, int]:
    """Disable a user: every session and token ends at once. Returns (sessions, tokens) ended."""
    assert user.id is not None
    user.disabled_at = now
    db.add(user)
    return (
        sessions.end_all_sessions(db, user.id, now=now),
        tokens.revoke_all_tokens(db, user.id, now=now),
    )


def disable_account(
    db: Session,
    auditor: Auditor,
    user: User,
    *,
    actor: audit.Actor,
    now: datetime,
    origin: Origin | None = None,
) -> tuple[int, int]:
    """An administrator disables ``user`` (``disable_user``), audited; (sessions, tokens) ended."""
    ended, revoked = disable_user(db, user, now=now)
    auditor.record(
        db,
        Action.USER_DISABLED,
        actor=actor,
        now=now,
        origin=origin or Origin(),
        target=Target(TargetKind.USER, str(user.id)),
        details={"count": ended + revoked},
    )
    return ended, revoked


def unlock_account(
    db: Session,
    auditor: Auditor,
    user: User,
    *,
    actor: audit.Actor,
    now: datetime,
    origin: Origin | None = None,
) -> int:
    """An administrator clears ``user``'s failed sign-in counts, audited; how many were set."""
    assert user.id is not None
    cleared = throttle.unlock(db, email=user.email, user_id=user.id)
    auditor.record(
        db,
        Action.USER_UPDATED,
        actor=actor,
        now=now,
        origin=origin or Origin(),
        target=Target(TargetKind.USER, str(user.id)),
        details={"reason": throttle.UNLOCKED, "count": cleared},
    )
    return cleared


def find_user(db: Session, email: str) -> User:
    address = email.strip().lower()
    user = (
        db.exec(select(User).where(User.email == address)).first()
        if _EMAIL.match(address)
        else None
    )
    if user is None:
        raise AccountError("There is no user with that email address.")
    return user

"""Who is at the command line: a named person with an active account, never an anonymous ``cli``.

Audited commands (reviews, destruction, audit exports, accounts, keys) take ``--by EMAIL``, or the
operator's configured identity ``PORTAL_OPERATOR``. The account must exist, be enabled and hold
one of the roles the command allows; its id, role and organisation then stand in the audit
events, and in a destruction certificate, as the person who acted. The threat: someone with a
shell on a portal node acts without leaving a name; with this, the log says whose identity they
used, and a disabled or wrong-role account is refused, as it would be on the web.

Refusals are ``OperatorRefused`` (an ``AccountError``); the command line audits each one
(``access.denied``, outcome ``denied``, ``method: cli`` and the reason code) and turns it
into exit 2.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, func, select

import audit
from portal.accounts.caller import Caller
from portal.accounts.models import Role, User
from portal.accounts.users import AccountError

ENVIRONMENT_VARIABLE = "PORTAL_OPERATOR"
SETUP = audit.Actor.system("setup")  # the first administrator's creation, on a fresh installation


class OperatorRefused(AccountError):
    """No named, active account with an allowed role: the command does nothing.

    ``reason`` is a code for the audit log (``no_operator``, ``unknown_account``, ``disabled``,
    ``wrong_role``); ``actor`` is the account named, when there is one, as sign-in failures
    record it (never the address typed)."""

    def __init__(self, message: str, *, reason: str, actor: audit.Actor | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.actor = actor or audit.Actor()


def _roles(allowed: Collection[Role]) -> str:
    names = sorted(r.value for r in allowed)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def resolve_operator(db: Session, email: str | None, *, allowed: Collection[Role]) -> Caller:
    """The active account behind ``email`` if it holds one of the ``allowed`` roles."""
    if not email or not email.strip():
        raise OperatorRefused(
            f"Say who you are: --by EMAIL (or {ENVIRONMENT_VARIABLE}), the address of your "
            f"active account with the role {_roles(allowed)}.",
            reason="no_operator",
        )
    address = email.strip().lower()
    user = db.exec(select(User).where(User.email == address)).first()
    if user is None:
        raise OperatorRefused(
            f"No account has the e-mail address {address!r}: give --by the address of your own "
            "account.",
            reason="unknown_account",
        )
    assert user.id is not None
    named = audit.Actor(user.id, user.role.value, user.organisation_id)
    if user.disabled_at is not None:
        raise OperatorRefused(
            f"The account {address!r} is disabled: it cannot act.", reason="disabled", actor=named
        )
    if user.role not in allowed:
        raise OperatorRefused(
            f"The account {address!r} has the role {user.role.value}; this command needs the "
            f"role {_roles(allowed)}.",
            reason="wrong_role",
            actor=named,
        )
    return Caller(user_id=user.id, role=user.role, organisation_id=user.organisation_id)


def has_active_admin(db: Session) -> bool:
    """False on a fresh installation: its first administrator is created without ``--by``."""
    count = db.exec(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.admin, col(User.disabled_at).is_(None))
    ).one()
    return int(count) > 0

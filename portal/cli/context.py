"""What every ``portal`` command shares: the settings, the failures, the person acting.

Settings are read from the environment once, when a command first needs them, so that ``--help``
works whatever the environment holds; a bad ``PORTAL_*`` value is a usage error (exit 2) that names
the variable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from portal.accounts.models import Role
from portal.settings import Settings, SettingsError

if TYPE_CHECKING:
    from sqlmodel import Session

    from portal.accounts.operators import Operator, OperatorRefused
    from portal.auditing import Auditor
    from portal.exchange.acting import Acting


class CliContext:
    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_environ()
            except SettingsError as exc:
                raise UsageFailure(str(exc)) from exc
        return self._settings

    def use_settings(self, settings: Settings) -> None:
        self._settings = settings


class UsageFailure(click.ClickException):
    exit_code = 2


class CheckFailure(click.ClickException):
    """The thing checked failed (verification, readiness, destruction): exit 1."""

    exit_code = 1


pass_cli = click.make_pass_decorator(CliContext, ensure=True)

F = TypeVar("F", bound=Callable[..., Any])


def by_option(command: F) -> F:
    """``--by EMAIL``: the person acting, for the audit log (default ``PORTAL_OPERATOR``)."""
    return click.option(
        "--by",
        "by",
        metavar="EMAIL",
        help="Your account's e-mail: the audit log records you as acting (default: "
        "PORTAL_OPERATOR).",
    )(command)


def operator_for(
    cli: CliContext, db: Session, by: str | None, *, allowed: Collection[Role]
) -> Operator:
    """The named person acting, or a usage error (exit 2) that says what to give.

    A refusal is itself audited, as a refused sign-in is: someone at a shell tried to act
    without a name, or under an account that may not."""
    from portal.accounts.operators import OperatorRefused, resolve_operator

    try:
        return resolve_operator(db, by or cli.settings.operator, allowed=allowed)
    except OperatorRefused as refused:
        _audit_refusal(cli, db, refused)
        raise UsageFailure(str(refused)) from None


def _audit_refusal(cli: CliContext, db: Session, refused: OperatorRefused) -> None:
    """Record the refusal, alone: whatever the command's session holds is rolled back first
    (a refused command does nothing), then ``access.denied``, denied, with the account
    named if there is one and never the address typed, is committed."""
    from datetime import UTC, datetime

    from audit import Action, Outcome
    from portal.auditing import Auditor, Origin
    from portal.keys import checked_keys

    db.rollback()  # first: on SQLite the session's transaction holds the write lock
    auditor = Auditor.from_keys(checked_keys(cli.settings))
    auditor.record(
        db,
        Action.ACCESS_DENIED,
        actor=refused.actor,
        now=datetime.now(UTC),
        origin=Origin(),
        outcome=Outcome.DENIED,
        details={"reason": refused.reason, "method": "cli"},
    )
    db.commit()


MANAGERS = frozenset({Role.admin, Role.lead})
READERS = frozenset({Role.admin, Role.lead, Role.dpo, Role.inspector})


@contextmanager
def acting_session(
    cli: CliContext, by: str | None, allowed: frozenset[Role] = MANAGERS
) -> Iterator[tuple[Session, Auditor, Acting]]:
    """A database session, the auditor and the named person acting now; errors exit 2."""
    from sqlmodel import Session

    import audit
    from portal.auditing import Auditor, Origin
    from portal.db import make_engine
    from portal.exchange.acting import Acting
    from portal.exchange.errors import ExchangeError
    from portal.keys import checked_keys
    from storage import StorageError

    settings = cli.settings
    try:
        auditor = Auditor.from_keys(checked_keys(settings))
    except (audit.AuditError, StorageError) as exc:
        raise UsageFailure(f"{exc} Run 'portal init' first.") from None
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            person = operator_for(cli, db, by, allowed=allowed)
            acting = Acting.of(
                user_id=person.user_id,
                role=person.role,
                organisation_id=person.organisation_id,
                now=datetime.now(UTC),
                origin=Origin(),
            )
            try:
                yield db, auditor, acting
            except ExchangeError as problem:
                db.rollback()
                raise UsageFailure(problem.message) from None
    finally:
        engine.dispose()

"""What every ``portal`` command shares: the settings, the failures, the person acting.

Settings are read from the environment once, when a command first needs them, so that ``--help``
works whatever the environment holds; a bad ``PORTAL_*`` value is a usage error (exit 2) that names
the variable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from portal.accounts.models import Role
from portal.settings import Settings, SettingsError

if TYPE_CHECKING:
    from sqlmodel import Session

    from portal.accounts.caller import Caller
    from portal.accounts.operators import OperatorRefused
    from portal.auditing import Auditor
    from portal.exchange.acting import Acting
    from portal.runtime import Runtime


class CliContext:
    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._runtime: Runtime | None = None

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

    @property
    def runtime(self) -> Runtime:
        """The database, keys, auditor and vault a command works with: the runtime the web app
        and the worker use, built on first use (the key service shown to hold this database's
        keys) and disposed of when the command ends."""
        if self._runtime is None:
            from audit import AuditError
            from portal.runtime import build_runtime
            from storage import StorageError

            try:
                runtime = build_runtime(self.settings)
            except (AuditError, StorageError) as exc:
                raise UsageFailure(f"{exc} Run 'portal init' first.") from None
            click.get_current_context().find_root().call_on_close(runtime.engine.dispose)
            self._runtime = runtime
        return self._runtime


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
) -> Caller:
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
    from audit import Outcome
    from portal.audit_vocabulary import Action
    from portal.auditing import Origin

    db.rollback()  # first: on SQLite the session's transaction holds the write lock
    runtime = cli.runtime
    runtime.auditor.record(
        db,
        Action.ACCESS_DENIED,
        actor=refused.actor,
        now=runtime.clock(),
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

    from portal.auditing import Origin
    from portal.errors import Refusal
    from portal.exchange.acting import Acting

    runtime = cli.runtime
    with Session(runtime.engine) as db:
        person = operator_for(cli, db, by, allowed=allowed)
        acting = Acting.as_caller(person, now=runtime.clock(), origin=Origin())
        try:
            yield db, runtime.auditor, acting
        except Refusal as problem:
            db.rollback()
            raise UsageFailure(problem.message) from None

"""``portal org``, ``portal user`` and ``portal token``: administration from the command line.

Commands run as the operating-system user who holds the key store, and act as the administrator
``--by EMAIL`` (or ``PORTAL_OPERATOR``) names: the audit log records them. On a fresh installation,
with no active administrator yet, ``org add`` and ``user add`` need no ``--by``: they are audited
with the role ``setup``, and the first administrator they create names every later command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from sqlmodel import Session

import audit
from portal.accounts import tokens, users
from portal.accounts.models import Role
from portal.accounts.operators import SETUP, has_active_admin
from portal.accounts.users import AccountError
from portal.auditing import Action, Auditor, Target, TargetKind
from portal.cli.context import CliContext, UsageFailure, by_option, operator_for, pass_cli
from portal.models import OrganisationKind, as_utc

ADMIN = frozenset({Role.admin})


@contextmanager
def _database(
    cli: CliContext, by: str | None, *, setup: bool = False
) -> Iterator[tuple[Session, Auditor, audit.Actor]]:
    """The database, the auditor and the administrator acting (``setup``: or, on a fresh
    installation, the setup itself)."""
    runtime = cli.runtime
    with Session(runtime.engine) as db:
        if setup and not by and not cli.settings.operator and not has_active_admin(db):
            actor = SETUP
        else:
            actor = operator_for(cli, db, by, allowed=ADMIN).actor
        try:
            yield db, runtime.auditor, actor
        except AccountError as problem:
            db.rollback()
            raise UsageFailure(str(problem)) from None


def _now() -> datetime:
    return datetime.now(UTC)


def _emit(as_json: bool, data: dict[str, object], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


@click.group()
def org() -> None:
    """Organisations: local authorities and the inspectorate."""


@org.command("add")
@click.argument("code")
@click.option("--name", required=True, help="Full name, e.g. 'Aberdeen City Council'.")
@click.option("--kind", required=True, type=click.Choice([k.value for k in OrganisationKind]))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@by_option
@pass_cli
def org_add(
    cli: CliContext, by: str | None, code: str, name: str, kind: str, as_json: bool
) -> None:
    """Add an organisation with a short CODE such as aberdeen-city."""
    with _database(cli, by, setup=True) as (db, auditor, actor):
        now = _now()
        organisation = users.add_organisation(
            db, slug=code, name=name, kind=OrganisationKind(kind), now=now
        )
        auditor.record(
            db,
            Action.ORGANISATION_CREATED,
            actor=actor,
            now=now,
            target=Target(TargetKind.ORGANISATION, organisation.slug),
        )
        db.commit()
        _emit(
            as_json,
            {"code": organisation.slug, "name": organisation.name, "kind": kind},
            f"Added {kind} {organisation.slug} ({organisation.name}).",
        )


@click.group()
def user() -> None:
    """Users: add (with a one-time enrolment link), new link, unlock, disable."""


def _link(cli: CliContext, raw: str) -> str:
    return f"{cli.settings.public_url}/enrol/{raw}"


@user.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--org", "org_code", required=True, help="The organisation's code.")
@click.option("--name", help="The person's full name (shown in destruction certificates).")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def user_add(
    cli: CliContext,
    by: str | None,
    email: str,
    role: str,
    org_code: str,
    name: str | None,
    as_json: bool,
) -> None:
    """Add a user and print their one-time enrolment link (valid for 3 days)."""
    with _database(cli, by, setup=True) as (db, auditor, actor):
        now = _now()
        organisation = users.find_organisation(db, org_code)
        account, raw = users.add_user(
            db, email=email, role=Role(role), organisation=organisation, now=now, name=name
        )
        auditor.record(
            db,
            Action.USER_CREATED,
            actor=actor,
            now=now,
            target=Target(TargetKind.USER, str(account.id)),
            details={"granted_role": role},
        )
        db.commit()
        link = _link(cli, raw)
        _emit(
            as_json,
            {"id": account.id, "email": account.email, "role": role, "enrolment_link": link},
            f"Added {account.email} ({role}, {organisation.slug}).\n"
            f"Send them this one-time link to set up their account (it expires in 3 days):\n{link}",
        )


@user.command("link")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def user_link(cli: CliContext, by: str | None, email: str, as_json: bool) -> None:
    """A new enrolment link (e.g. after a lost phone); earlier links stop working."""
    with _database(cli, by) as (db, auditor, actor):
        now = _now()
        account = users.find_user(db, email)
        if account.disabled_at is not None:
            raise AccountError("That user is disabled.")
        raw = users.new_enrolment(db, account, now=now)
        account.enrolled_at = None  # they must enrol again: new password and new app
        account.password_hash = None
        account.totp_secret_sealed = None
        db.add(account)
        auditor.record(
            db,
            Action.USER_UPDATED,
            actor=actor,
            now=now,
            target=Target(TargetKind.USER, str(account.id)),
            details={"reason": "re_enrolment"},
        )
        db.commit()
        link = _link(cli, raw)
        _emit(as_json, {"email": account.email, "enrolment_link": link}, link)


@user.command("disable")
@click.argument("email")
@by_option
@pass_cli
def user_disable(cli: CliContext, by: str | None, email: str) -> None:
    """Disable a user: their sessions and tokens end at once."""
    with _database(cli, by) as (db, auditor, actor):
        now = _now()
        account = users.find_user(db, email)
        ended, revoked = users.disable_account(db, auditor, account, actor=actor, now=now)
        db.commit()
        click.echo(
            f"Disabled {account.email}: {ended} session(s) ended, {revoked} token(s) revoked."
        )


@user.command("unlock")
@click.argument("email")
@by_option
@pass_cli
def user_unlock(cli: CliContext, by: str | None, email: str) -> None:
    """Clear EMAIL's failed sign-in counts, so that they need not wait to sign in again."""
    with _database(cli, by) as (db, auditor, actor):
        account = users.find_user(db, email)
        cleared = users.unlock_account(db, auditor, account, actor=actor, now=_now())
        db.commit()
        click.echo(
            f"Unlocked sign-in for {account.email}: {cleared} failure count(s) cleared; "
            "they can sign in at once."
        )


@click.group()
def token() -> None:
    """Personal access tokens for the API."""


@token.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for.")
@click.option(
    "--expires-days",
    default=tokens.DEFAULT_DAYS,
    show_default=True,
    type=click.IntRange(1, tokens.MAX_DAYS),
)
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def token_create(
    cli: CliContext, by: str | None, email: str, name: str, expires_days: int, as_json: bool
) -> None:
    """Create a token for EMAIL (e.g. a service account); prints the token alone on stdout."""
    with _database(cli, by) as (db, auditor, actor):
        now = _now()
        account = users.find_user(db, email)
        if account.disabled_at is not None:
            raise AccountError("That user is disabled.")
        try:
            row, raw = tokens.create_token(db, account, name=name, days=expires_days, now=now)
        except ValueError as problem:
            raise AccountError(str(problem)) from None
        auditor.record(
            db,
            Action.TOKEN_CREATED,
            actor=actor,
            now=now,
            target=Target(TargetKind.TOKEN, str(row.id)),
            details={"expires_in_days": expires_days},
        )
        db.commit()
        _emit(
            as_json,
            {
                "id": row.id,
                "name": row.name,
                "token": raw,
                "expires_at": as_utc(row.expires_at).isoformat(),
            },
            raw,
        )

"""``portal review``, ``portal request`` and ``portal download``.

``review`` and ``request`` are operator commands: they open the database and the key store with the
settings, and act as the person ``--by EMAIL`` (or ``PORTAL_OPERATOR``) names, with that person's
rights (a lead manages their own reviews, an administrator any): the audit log records them. ``download`` is a client of the
JSON API: it needs only a URL and a personal access token, and never touches the database or keys.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

from portal.cli.context import (
    READERS,
    CliContext,
    acting_session,
    by_option,
    pass_cli,
)

if TYPE_CHECKING:
    pass

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime) -> date:
    return value.date()


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


# --- portal review ----------------------------------------------------------------------------


@click.group()
def review() -> None:
    """Reviews: create, open, close, list."""


@review.command("create")
@click.argument("code")
@click.option("--title", required=True, help="What the review is about.")
@click.option("--legal-basis", required=True, help="The law that allows it to ask for records.")
@click.option("--lead", "lead_email", required=True, help="The lead's email (role lead).")
@click.option(
    "--org", "org_codes", multiple=True, required=True, help="A participating authority (repeat)."
)
@click.option("--member", "member_emails", multiple=True, help="An inspector on the team (repeat).")
@click.option("--opens", required=True, type=DATE, help="First day of uploads (YYYY-MM-DD).")
@click.option("--closes", required=True, type=DATE, help="Last day of uploads (YYYY-MM-DD).")
@click.option(
    "--retention-days", required=True, type=int, help="Days the records are kept after closing."
)
@click.option("--open", "open_now", is_flag=True, help="Open the review for uploads at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the review as JSON.")
@by_option
@pass_cli
def review_create(
    cli: CliContext,
    by: str | None,
    code: str,
    title: str,
    legal_basis: str,
    lead_email: str,
    org_codes: tuple[str, ...],
    member_emails: tuple[str, ...],
    opens: datetime,
    closes: datetime,
    retention_days: int,
    open_now: bool,
    as_json: bool,
) -> None:
    """Create review CODE (e.g. SWG24) as a draft, with its key, organisations and team."""
    from portal.exchange import reviews
    from portal.exchange.serialize import review_json

    plan = reviews.ReviewPlan(
        code=code,
        title=title,
        legal_basis=legal_basis,
        opens_on=_day(opens),
        closes_on=_day(closes),
        retention_days=retention_days,
    )
    with acting_session(cli, by) as (db, auditor, acting):
        # Every name is looked up before anything is created, so a typo creates nothing.
        plan = reviews.check_plan(plan)
        lead = reviews.user_by_email(db, lead_email)
        organisations = [reviews.organisation_by_code(db, c) for c in dict.fromkeys(org_codes)]
        members = [reviews.user_by_email(db, e) for e in dict.fromkeys(member_emails)]
        created = reviews.create_review(db, auditor, acting, plan, lead=lead, vault=None)
        for organisation in organisations:
            reviews.add_organisation(db, auditor, acting, created, organisation)
        for member in members:
            reviews.add_member(db, auditor, acting, created, member)
        if open_now:
            reviews.open_review(db, auditor, acting, created)
        # The key is made once every step has passed, just before the commit, so a refused
        # organisation or member leaves no key behind (creating it is idempotent if a retry follows).
        # The title and legal basis are sealed under that key at the same moment.
        vault = cli.runtime.vault
        reviews.seal_new_review(vault, created, plan)
        db.commit()
        body = review_json(vault, created)
        body["organisations"] = [o.slug for o in organisations]
        _emit(
            as_json,
            body,
            f"Created review {created.code} ({created.state.value}): "
            f"{len(organisations)} organisation(s), {1 + len(members)} on the team.\n"
            f"Uploads {created.opens_on:%d %B %Y} to {created.closes_on:%d %B %Y}; "
            f"records destroyed on {created.destroy_on:%d %B %Y}."
            + (
                "" if open_now else f"\nOpen it for uploads with: portal review open {created.code}"
            ),
        )


def _change_state(
    cli: CliContext, by: str | None, code: str, as_json: bool, *, close: bool
) -> None:
    from portal.exchange import reviews
    from portal.exchange.serialize import review_json

    with acting_session(cli, by) as (db, auditor, acting):
        found = reviews.managed_review(db, acting, code)
        if close:
            reviews.close_review(db, auditor, acting, found)
            text = (
                f"Review {found.code} is closed (closing date {found.closes_on:%d %B %Y}); "
                f"its records will be destroyed on {found.destroy_on:%d %B %Y}."
            )
        else:
            reviews.open_review(db, auditor, acting, found)
            text = f"Review {found.code} is open for uploads until {found.closes_on:%d %B %Y}."
        db.commit()
        _emit(as_json, review_json(cli.runtime.vault, found), text)


@review.command("open")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def review_open(cli: CliContext, by: str | None, code: str, as_json: bool) -> None:
    """Open a draft review for uploads."""
    _change_state(cli, by, code, as_json, close=False)


@review.command("close")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def review_close(cli: CliContext, by: str | None, code: str, as_json: bool) -> None:
    """Close a review now: no more uploads; closing early brings its destruction date forward."""
    _change_state(cli, by, code, as_json, close=True)


@review.command("list")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def review_list(cli: CliContext, by: str | None, as_json: bool) -> None:
    """Every review, newest opening date first."""
    from portal.exchange import reviews
    from portal.exchange.review_texts import review_label
    from portal.exchange.serialize import review_json

    with acting_session(cli, by, READERS) as (db, _, acting):
        found = reviews.list_reviews(db, acting)
        vault = cli.runtime.vault
        if as_json:
            items = [review_json(vault, r) for r in found]
            click.echo(json.dumps({"items": items}, indent=2))
            return
        if not found:
            click.echo("No reviews yet. Create one with: portal review create CODE ...")
            return
        click.echo(f"{'CODE':<16} {'STATE':<9} {'OPENS':<10} {'CLOSES':<10} {'DESTROY':<10} TITLE")
        for r in found:
            click.echo(
                f"{r.code:<16} {r.state.value:<9} {r.opens_on} {r.closes_on} {r.destroy_on} "
                f"{review_label(vault, r)}"
            )


# --- portal request ---------------------------------------------------------------------------


@click.group("request")
def request_group() -> None:
    """Requests for records from one organisation."""


@request_group.command("create")
@click.argument("code")
@click.option("--org", "org_code", required=True, help="The authority asked.")
@click.option("--title", required=True, help="What is asked for.")
@click.option("--instructions", default="", help="What to send and how.")
@click.option("--due", required=True, type=DATE, help="Due date (YYYY-MM-DD).")
@click.option("--expected", default=0, show_default=True, type=int, help="Items expected.")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def request_create(
    cli: CliContext,
    by: str | None,
    code: str,
    org_code: str,
    title: str,
    instructions: str,
    due: datetime,
    expected: int,
    as_json: bool,
) -> None:
    """Ask an organisation taking part in review CODE for records; prints the request's number."""
    from portal.exchange import reviews
    from portal.exchange.serialize import request_json

    vault = cli.runtime.vault
    with acting_session(cli, by) as (db, auditor, acting):
        found = reviews.managed_review(db, acting, code)
        created = reviews.create_request(
            db,
            auditor,
            acting,
            vault,
            found,
            organisation=reviews.organisation_by_code(db, org_code),
            title=title,
            instructions=instructions,
            due_on=_day(due),
            expected_items=expected,
        )
        db.commit()
        _emit(
            as_json,
            request_json(db, vault, found, created),
            f"Request {created.id} in {found.code} to {org_code.strip().lower()}, "
            f"due {created.due_on:%d %B %Y}.",
        )

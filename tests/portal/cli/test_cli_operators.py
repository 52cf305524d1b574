"""Audited commands act as a named person (issue 16: they were audited with the role ``cli`` and no
person): ``--by EMAIL`` or ``PORTAL_OPERATOR``, an active account with an allowed role; anything
else is refused with exit 2 and changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

import audit
from portal.accounts.models import Role
from portal.audit_vocabulary import Action
from portal.cli import main
from portal.db import make_engine
from portal.destruction.models import Certificate
from portal.exchange.models import Review, ReviewState
from portal.settings import Settings
from tests.portal.conftest import Exchange

BODY = b"Minutes of the case conference.\n" * 30


def _env(settings: Settings, operator: str | None = None) -> dict[str, str | None]:
    return {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_OPERATOR": operator,
    }


def portal(settings: Settings, *args: str, operator: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=_env(settings, operator))


def _events(settings: Settings, action: Action) -> list[audit.AuditRecord]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            page = audit.search(connection, audit.EventFilter(action=action.value), limit=1000)
    finally:
        engine.dispose()
    return list(page.records)


def _state(settings: Settings, code: str) -> ReviewState:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            return db.exec(select(Review).where(Review.code == code)).one().state
    finally:
        engine.dispose()


def _refused(result: Result, says: str) -> None:
    assert result.exit_code == 2, result.output
    assert says in result.output, result.output


def test_review_close_is_refused_without_a_named_active_allowed_person(
    exchange: Exchange,
) -> None:
    settings, people = exchange.world.settings, exchange.world.people
    _refused(portal(settings, "review", "close", "SWG24"), "Say who you are: --by EMAIL")
    _refused(
        portal(settings, "review", "close", "SWG24", "--by", "nobody@nowhere.example"),
        "No account has the e-mail address 'nobody@nowhere.example'",
    )
    _refused(
        portal(settings, "review", "close", "SWG24", "--by", people["uploader"].email),
        "has the role uploader; this command needs the role admin or lead",
    )
    # A lead may close only the reviews they lead, as on the web.
    other_lead = exchange.world.add_person("lead2@inspectorate.example", Role.lead, "inspectorate")
    refused = portal(settings, "review", "close", "SWG24", "--by", other_lead.email)
    assert refused.exit_code == 2, refused.output
    # A disabled account cannot act, even named in PORTAL_OPERATOR.
    disabled = portal(settings, "user", "disable", other_lead.email, "--by", people["admin"].email)
    assert disabled.exit_code == 0, disabled.output
    _refused(
        portal(settings, "review", "close", "SWG24", operator=other_lead.email),
        f"The account '{other_lead.email}' is disabled",
    )
    assert _state(settings, "SWG24") is ReviewState.open  # nothing changed
    assert not _events(settings, Action.REVIEW_CLOSED)

    # The review's lead, by the configured identity: audited as that person.
    closed = portal(settings, "review", "close", "SWG24", operator=people["lead"].email)
    assert closed.exit_code == 0, closed.output
    assert _state(settings, "SWG24") is ReviewState.closed
    [event] = _events(settings, Action.REVIEW_CLOSED)
    assert (event.actor.user_id, event.actor.role) == (people["lead"].user_id, "lead")
    assert event.actor.organisation_id is not None


def test_a_command_refused_for_its_operator_is_itself_audited(exchange: Exchange) -> None:
    """Found: a command refused for lack of --by (or for naming an account that may not act)
    left no trace; someone at a shell could probe for accounts unseen. Each refusal is an
    ``access.denied``, denied, with a reason code, the account when there is one, and no
    address (as a refused sign-in records it)."""
    settings, people = exchange.world.settings, exchange.world.people
    before = len(_events(settings, Action.ACCESS_DENIED))
    _refused(portal(settings, "review", "close", "SWG24"), "Say who you are")
    _refused(portal(settings, "review", "close", "SWG24", "--by", "nobody@x.example"), "No account")
    _refused(
        portal(settings, "destroy", "run", operator=people["uploader"].email), "needs the role"
    )
    other = exchange.world.add_person("lead2@inspectorate.example", Role.lead, "inspectorate")
    assert (
        portal(settings, "user", "disable", other.email, "--by", people["admin"].email).exit_code
        == 0
    )
    _refused(portal(settings, "review", "close", "SWG24", "--by", other.email), "is disabled")
    events = _events(settings, Action.ACCESS_DENIED)[
        : len(_events(settings, Action.ACCESS_DENIED)) - before
    ]
    events.reverse()  # oldest first
    assert [e.details for e in events] == [
        {"reason": "no_operator", "method": "cli"},
        {"reason": "unknown_account", "method": "cli"},
        {"reason": "wrong_role", "method": "cli"},
        {"reason": "disabled", "method": "cli"},
    ]
    assert all(e.outcome == "denied" for e in events)
    assert [e.actor.user_id for e in events] == [
        None,
        None,
        people["uploader"].user_id,
        other.user_id,
    ]
    assert (events[2].actor.role, events[3].actor.role) == ("uploader", "lead")
    assert _state(settings, "SWG24") is ReviewState.open  # and still nothing else changed
    assert not _events(settings, Action.REVIEW_CLOSED)
    assert "nobody@x.example" not in json.dumps([e.details for e in events])


def test_destroy_run_is_carried_out_by_a_named_dpo_and_the_certificate_says_so(
    exchange: Exchange,
) -> None:
    settings, people, client = exchange.world.settings, exchange.world.people, exchange.client
    reference = exchange.upload("uploader", BODY).json()["reference"]
    closed = client.post("/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={})
    assert closed.is_success, closed.text
    # The command runs on the real clock: destruction brought forward is due at once.
    early = "/api/v1/reviews/SWG24/destruction"
    assert client.post(f"{early}/request", headers=exchange.tokens["dpo"]).is_success
    assert client.post(f"{early}/approve", headers=exchange.tokens["admin"]).is_success

    for who in ("uploader", "lead", "inspector"):
        _refused(
            portal(settings, "destroy", "run", "--by", people[who].email),
            "this command needs the role admin or dpo",
        )
    _refused(portal(settings, "destroy", "run"), "Say who you are")
    assert not _events(settings, Action.DOCUMENT_DESTROYED)  # nothing was destroyed

    # --by wins over PORTAL_OPERATOR.
    ran = portal(
        settings, "destroy", "run", "--by", people["dpo"].email, operator=people["admin"].email
    )
    assert ran.exit_code == 0, ran.output
    [destroyed] = _events(settings, Action.DOCUMENT_DESTROYED)
    assert destroyed.document == reference
    assert (destroyed.actor.user_id, destroyed.actor.role) == (people["dpo"].user_id, "dpo")
    for action in (Action.KEY_DESTROYED, Action.CERTIFICATE_ISSUED):
        assert [e.actor.user_id for e in _events(settings, action)] == [people["dpo"].user_id]
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            body = json.loads(db.exec(select(Certificate)).one().body)
    finally:
        engine.dispose()
    assert body["carried_out_by"] == {
        "person": {
            "user_id": people["dpo"].user_id,
            "name": "Dara Quinn",
            "email": people["dpo"].email,
            "role": "dpo",
            "organisation": {"code": "inspectorate", "name": "Care Inspectorate"},
        }
    }


def test_audit_export_and_verify_record_the_named_person(
    exchange: Exchange, tmp_path: Path
) -> None:
    settings, people = exchange.world.settings, exchange.world.people
    out = tmp_path / "audit.jsonl"
    _refused(portal(settings, "audit", "export", "--format", "jsonl", "-o", str(out)), "--by")
    _refused(
        portal(settings, "audit", "export", "--format", "jsonl", "--by", people["admin"].email),
        "needs the role dpo",
    )
    assert not out.exists() and not _events(settings, Action.AUDIT_EXPORTED)
    exported = portal(
        settings,
        "audit",
        "export",
        "--format",
        "jsonl",
        "-o",
        str(out),
        "--by",
        people["dpo"].email,
    )
    assert exported.exit_code == 0, exported.output
    verified = portal(settings, "audit", "verify", operator=people["admin"].email)
    assert verified.exit_code == 0, verified.output
    [export_event] = _events(settings, Action.AUDIT_EXPORTED)
    [verify_event] = _events(settings, Action.AUDIT_VERIFIED)
    assert (export_event.actor.user_id, export_event.actor.role) == (people["dpo"].user_id, "dpo")
    assert (verify_event.actor.user_id, verify_event.actor.role) == (
        people["admin"].user_id,
        "admin",
    )


def test_no_audited_command_records_an_anonymous_cli(exchange: Exchange) -> None:
    settings, people = exchange.world.settings, exchange.world.people
    admin = people["admin"].email
    for args in (
        ("org", "add", "fife", "--name", "Fife Council", "--kind", "authority"),
        ("user", "add", "new@fife.example", "--role", "uploader", "--org", "fife"),
        ("token", "create", people["dpo"].email, "--name", "reports"),
        ("keys", "rotate"),
    ):
        _refused(portal(settings, *args), "Say who you are")
        _refused(portal(settings, *args, "--by", people["dpo"].email), "needs the role admin")
        done = portal(settings, *args, operator=admin)
        assert done.exit_code == 0, (args, done.output)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            records = audit.search(connection, audit.EventFilter(), limit=1000).records
    finally:
        engine.dispose()
    assert records and all(r.actor.role != "cli" for r in records)


@pytest.fixture
def fresh(settings: Settings) -> Settings:
    """A fresh installation: migrated, keys made, no organisation and no account."""
    return settings


def test_a_fresh_installation_makes_its_first_admin_without_by(fresh: Settings) -> None:
    made = portal(
        fresh, "org", "add", "inspectorate", "--name", "Inspectorate", "--kind", "inspectorate"
    )
    assert made.exit_code == 0, made.output
    first = portal(
        fresh,
        "user",
        "add",
        "first@inspectorate.example",
        "--role",
        "admin",
        "--org",
        "inspectorate",
        "--name",
        "Fran Hale",
    )
    assert first.exit_code == 0, first.output
    assert {e.actor.role for e in _events(fresh, Action.USER_CREATED)} == {"setup"}
    # From then on, a named administrator.
    _refused(
        portal(
            fresh, "user", "add", "x@inspectorate.example", "--role", "dpo", "--org", "inspectorate"
        ),
        "Say who you are",
    )
    second = portal(
        fresh,
        "user",
        "add",
        "x@inspectorate.example",
        "--role",
        "dpo",
        "--org",
        "inspectorate",
        "--by",
        "first@inspectorate.example",
    )
    assert second.exit_code == 0, second.output

"""Every refusal is an event (issue 17): a signed-in caller refused content, metadata, a review, a
certificate or an approval is recorded (actor, target, outcome denied, reason code), a CSRF failure
and a refused token too, while the answer stays byte for byte the 404 of a reference that does not
exist (no oracle). And a HEAD on a content route is not a download: it is refused (405).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx2
import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

import audit
from portal.accounts import tokens
from portal.accounts.models import ApiToken, Role, User
from portal.audit_vocabulary import Action, TargetKind
from portal.db import make_engine
from portal.references import new_reference
from portal.runtime import build_runtime
from portal.web.access import RuledRoute
from portal.web.app import routes
from portal.worker import Worker
from tests.portal.conftest import Exchange, World, api_token, cheap_hasher, csrf_from, sign_in

MINUTES = b"Minutes of the multi-agency meeting held on 3 March.\n" * 20
# Headers that differ between any two responses, refused or not: the request's own id.
PER_REQUEST = {"x-request-id", "date"}


def _events(world: World, **where: object) -> list[audit.AuditRecord]:
    engine = make_engine(world.settings.database_url)
    try:
        with engine.connect() as connection:
            page = audit.search(connection, audit.EventFilter(**where), limit=1000)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    return list(page.records)


def _denied(world: World) -> list[audit.AuditRecord]:
    return _events(world, outcome=audit.Outcome.DENIED.value)


def _same_answer(refused: httpx2.Response, missing: httpx2.Response) -> None:
    """Status, every header but the request's id and date, and the body: byte for byte."""
    assert refused.status_code == missing.status_code == 404, (refused.text, missing.text)
    assert refused.content == missing.content
    theirs = [(k, v) for k, v in refused.headers.multi_items() if k.lower() not in PER_REQUEST]
    ours = [(k, v) for k, v in missing.headers.multi_items() if k.lower() not in PER_REQUEST]
    assert theirs == ours


def _outsider(world: World, role: Role = Role.inspector) -> dict[str, str]:
    """An inspector (or lead) of the inspectorate who is not on SWG24's team."""
    key = f"outside_{role.value}"
    world.people[key] = world.add_person(f"{key}@inspectorate.example", role, "inspectorate")
    return api_token(world, key)


def _uploaded(exchange: Exchange) -> str:
    uploaded = exchange.upload("uploader", MINUTES)
    assert uploaded.status_code == 201, uploaded.text
    reference: str = uploaded.json()["reference"]
    return reference


def _one_refusal(
    world: World, before: int, *, action: Action, who: str, target: str, reason: str
) -> audit.AuditRecord:
    denied = _denied(world)
    assert len(denied) == before + 1, [(e.action, e.details) for e in denied]
    event = denied[0]  # newest first
    assert event.action == action.value
    assert event.outcome == audit.Outcome.DENIED.value
    assert event.actor.user_id == world.people[who].user_id
    assert event.target is not None and event.target.ref == target
    assert dict(event.details) == {"reason": reason}
    return event


@pytest.mark.parametrize(
    ("who", "reason"),
    [("uploader", "role"), ("dpo", "role"), ("admin", "role"), ("outside_inspector", "not_member")],
)
def test_refused_content_is_audited_and_answers_as_a_missing_document(
    exchange: Exchange, who: str, reason: str
) -> None:
    world, client = exchange.world, exchange.client
    reference = _uploaded(exchange)
    headers = _outsider(world) if who == "outside_inspector" else exchange.tokens[who]
    before = len(_denied(world))
    refused = client.get(f"/api/v1/documents/{reference}/content", headers=headers)
    _one_refusal(
        world,
        before,
        action=Action.DOCUMENT_DOWNLOADED,
        who=who,
        target=reference,
        reason=reason,
    )
    missing = client.get(f"/api/v1/documents/{new_reference()}/content", headers=headers)
    _same_answer(refused, missing)
    # A reference that does not exist names nothing: no event.
    assert len(_denied(world)) == before + 1


def test_refused_content_on_the_page_address_answers_as_a_missing_document(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world = exchange.world
    reference = _uploaded(exchange)
    browser = second_client()
    sign_in(browser, world.people["dpo"], world.clock)
    before = len(_denied(world))
    refused = browser.get(f"/documents/{reference}/download")
    _one_refusal(
        world,
        before,
        action=Action.DOCUMENT_DOWNLOADED,
        who="dpo",
        target=reference,
        reason="role",
    )
    _same_answer(refused, browser.get(f"/documents/{new_reference()}/download"))


@pytest.mark.parametrize(
    ("who", "reason"),
    [("other_uploader", "other_organisation"), ("outside_inspector", "not_member")],
)
def test_refused_metadata_is_audited_and_answers_as_a_missing_document(
    exchange: Exchange, who: str, reason: str
) -> None:
    world, client = exchange.world, exchange.client
    reference = _uploaded(exchange)
    headers = _outsider(world) if who == "outside_inspector" else exchange.tokens[who]
    for path in ("/api/v1/documents/{}", "/api/v1/documents/{}/receipt"):
        before = len(_denied(world))
        refused = client.get(path.format(reference), headers=headers)
        _one_refusal(
            world,
            before,
            action=Action.DOCUMENT_METADATA_VIEWED,
            who=who,
            target=reference,
            reason=reason,
        )
        _same_answer(refused, client.get(path.format(new_reference()), headers=headers))
        assert len(_denied(world)) == before + 1


def test_refused_metadata_page_answers_as_a_missing_document(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world = exchange.world
    reference = _uploaded(exchange)
    browser = second_client()
    sign_in(browser, world.people["other_uploader"], world.clock)
    before = len(_denied(world))
    refused = browser.get(f"/documents/{reference}")
    _one_refusal(
        world,
        before,
        action=Action.DOCUMENT_METADATA_VIEWED,
        who="other_uploader",
        target=reference,
        reason="other_organisation",
    )
    _same_answer(refused, browser.get(f"/documents/{new_reference()}"))


def test_a_refused_review_is_audited_and_answers_as_a_missing_review(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world, client = exchange.world, exchange.client
    headers = _outsider(world)
    before = len(_denied(world))
    refused = client.get("/api/v1/reviews/SWG24", headers=headers)
    event = _one_refusal(
        world,
        before,
        action=Action.ACCESS_DENIED,
        who="outside_inspector",
        target="SWG24",
        reason="not_member",
    )
    assert event.target is not None and event.target.kind == TargetKind.REVIEW.value
    assert event.review == "SWG24"
    _same_answer(refused, client.get("/api/v1/reviews/NOPE99", headers=headers))
    assert len(_denied(world)) == before + 1
    # The page, in a browser.
    browser = second_client()
    sign_in(browser, world.people["outside_inspector"], world.clock)
    before = len(_denied(world))
    refused = browser.get("/reviews/SWG24")
    _one_refusal(
        world,
        before,
        action=Action.ACCESS_DENIED,
        who="outside_inspector",
        target="SWG24",
        reason="not_member",
    )
    _same_answer(refused, browser.get("/reviews/NOPE99"))


def _certificate(exchange: Exchange) -> str:
    _uploaded(exchange)
    world = exchange.world
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    worker.run_round(force=True)  # the scan
    closed = exchange.client.post(
        "/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={}
    )
    assert closed.status_code == 200, closed.text
    world.clock.advance(days=91)
    report = worker.run_round().destruction.report
    assert report is not None and len(report.certificates) == 1, report
    reference: str = report.certificates[0]
    return reference


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_refused_certificate_is_audited_and_answers_as_a_missing_one(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world, client = exchange.world, exchange.client
    reference = _certificate(exchange)
    # 91 days on: the tokens made at the start have expired.
    fresh = {who: api_token(world, who) for who in ("dpo", "inspector")}
    assert client.get(f"/api/v1/certificates/{reference}", headers=fresh["dpo"]).is_success
    outside_lead = _outsider(world, Role.lead)
    for who, headers, reason in [
        ("outside_lead", outside_lead, "not_member"),  # a lead, of another review
        ("inspector", fresh["inspector"], "role"),  # refused by the route's rule
    ]:
        before = len(_denied(world))
        refused = client.get(f"/api/v1/certificates/{reference}", headers=headers)
        event = _one_refusal(
            world,
            before,
            action=Action.ACCESS_DENIED,
            who=who,
            target=reference,
            reason=reason,
        )
        assert event.target is not None
        assert event.target.kind == TargetKind.CERTIFICATE.value
        missing = client.get(f"/api/v1/certificates/{new_reference()}", headers=headers)
        _same_answer(refused, missing)
        assert len(_denied(world)) == before + 1
    # The console's signed copy, refused to a lead by its rule.
    browser = second_client()
    sign_in(browser, world.people["lead"], world.clock)
    before = len(_denied(world))
    refused = browser.get(f"/console/certificates/{reference}/signed")
    _one_refusal(
        world,
        before,
        action=Action.ACCESS_DENIED,
        who="lead",
        target=reference,
        reason="role",
    )
    _same_answer(refused, browser.get(f"/console/certificates/{new_reference()}/signed"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refused_approvals_of_early_destruction_are_audited(exchange: Exchange) -> None:
    world, client, tokens_of = exchange.world, exchange.client, exchange.tokens
    early = "/api/v1/reviews/SWG24/destruction"
    closed = client.post("/api/v1/reviews/SWG24/close", headers=tokens_of["lead"], json={})
    assert closed.status_code == 200, closed.text
    assert client.post(f"{early}/request", headers=tokens_of["dpo"]).status_code == 201
    # The requester approving their own request.
    before = len(_denied(world))
    same = client.post(f"{early}/approve", headers=tokens_of["dpo"])
    assert same.status_code == 409 and same.json()["error"]["code"] == "second_person_required"
    event = _one_refusal(
        world,
        before,
        action=Action.DESTRUCTION_APPROVED,
        who="dpo",
        target="SWG24",
        reason="own_request",
    )
    assert event.review == "SWG24"
    # The review's lead, whom the route's rule refuses: the same 404 as for no such review.
    before = len(_denied(world))
    refused = client.post(f"{early}/approve", headers=tokens_of["lead"])
    _one_refusal(
        world,
        before,
        action=Action.DESTRUCTION_APPROVED,
        who="lead",
        target="SWG24",
        reason="role",
    )
    _same_answer(
        refused,
        client.post("/api/v1/reviews/NOPE99/destruction/approve", headers=tokens_of["lead"]),
    )
    assert len(_denied(world)) == before + 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_csrf_failure_is_audited(world: World, second_client: Callable[[], TestClient]) -> None:
    browser = second_client()
    sign_in(browser, world.people["uploader"], world.clock)
    before = len(_denied(world))
    forged = browser.post("/account/tokens", data={"name": "x", "csrf_token": "forged"})
    assert forged.status_code == 403
    denied = _denied(world)
    assert len(denied) == before + 1
    event = denied[0]
    assert event.action == Action.ACCESS_DENIED.value
    assert event.actor.user_id == world.people["uploader"].user_id
    assert dict(event.details) == {"reason": "csrf", "method": "post"}
    # A real token passes the check (the form's own answer follows), and records no refusal.
    token = csrf_from(browser.get("/account").text)
    assert (
        browser.post("/account/tokens", data={"name": "", "csrf_token": token}).status_code == 400
    )
    assert len(_denied(world)) == before + 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refused_tokens_are_audited_with_the_address_never_the_token(
    world: World, client: TestClient
) -> None:
    live = api_token(world, "inspector")["Authorization"].removeprefix("Bearer ")
    revoked = api_token(world, "inspector")["Authorization"].removeprefix("Bearer ")
    expired = api_token(world, "inspector")["Authorization"].removeprefix("Bearer ")
    engine = make_engine(world.settings.database_url)
    with Session(engine) as db:
        found = tokens.find_token(db, revoked, now=world.clock())
        assert found is not None
        tokens.revoke_token(db, found[0], now=world.clock())
        old = tokens.find_token(db, expired, now=world.clock())
        assert old is not None
        row = db.get(ApiToken, old[0].id)
        assert row is not None
        row.expires_at = world.clock() - timedelta(days=1)
        db.add(row)
        db.commit()
        expired_id, revoked_id = row.id, found[0].id
        inspector = db.get(User, world.people["inspector"].user_id)
        assert inspector is not None
    engine.dispose()
    with TestClient(client.app, client=("203.0.113.7", 50000)) as far:
        cases = [
            ("pat_" + "x" * 40, "unknown", None),
            ("not-a-token", "malformed", None),
            (revoked, "revoked", revoked_id),
            (expired, "expired", expired_id),
        ]
        for raw, reason, token_id in cases:
            before = _events(world, action=Action.SIGN_IN_FAILED.value)
            answer = far.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
            assert answer.status_code == 401
            after = _events(world, action=Action.SIGN_IN_FAILED.value)
            assert len(after) == len(before) + 1
            event = after[0]
            assert event.outcome == audit.Outcome.DENIED.value
            assert event.client == "203.0.113.7"
            assert dict(event.details) == {"factor": "token", "reason": reason}
            if token_id is None:
                assert event.actor.user_id is None and event.target is None
            else:
                assert event.actor.user_id == world.people["inspector"].user_id
                assert event.target == audit.Target(TargetKind.TOKEN, str(token_id))
            assert raw not in repr(event)
        assert far.get("/api/v1/me", headers={"Authorization": f"Bearer {live}"}).is_success


CONTENT_HANDLERS = {"download_document"}


def test_no_content_route_answers_head() -> None:
    content = [r for r in routes() if isinstance(r, RuledRoute) and r.name in CONTENT_HANDLERS]
    assert {r.path for r in content} == {
        "/api/v1/documents/{ref}/content",
        "/documents/{ref}/download",
    }
    for found in content:
        assert found.methods == {"GET"}, found.path


def test_head_on_content_is_refused_and_is_not_a_download(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world, client = exchange.world, exchange.client
    reference = _uploaded(exchange)
    headers = exchange.tokens["inspector"]
    before = _events(world, action=Action.DOCUMENT_DOWNLOADED.value)
    head = client.head(f"/api/v1/documents/{reference}/content", headers=headers)
    assert head.status_code == 405 and head.headers["allow"] == "GET"
    browser = second_client()
    sign_in(browser, world.people["inspector"], world.clock)
    page_head = browser.head(f"/documents/{reference}/download")
    assert page_head.status_code == 405 and page_head.headers["allow"] == "GET"
    assert _events(world, action=Action.DOCUMENT_DOWNLOADED.value) == before
    # GET still downloads, and is recorded.
    got = client.get(f"/api/v1/documents/{reference}/content", headers=headers)
    assert got.status_code == 200 and got.content == MINUTES
    assert len(_events(world, action=Action.DOCUMENT_DOWNLOADED.value)) == len(before) + 1

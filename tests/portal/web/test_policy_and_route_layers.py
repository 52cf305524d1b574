"""Each of the two authorisation layers refuses content to a DPO on its own (issue 18, item 7).

A DPO's (or an administrator's, or an uploader's) request for a document's content is refused twice:
by the route's rule (portal.web.access: only inspectors and leads may call the content routes) and by
the policy (portal.policy.can_read_content: only the document's review team). Both answer 404, so a
test through both layers stays green when either one is broken. Here each is tested with the other
out of the way: the route with a policy that allows everything, the policy called directly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from portal import policy
from portal.accounts.caller import Caller
from portal.accounts.models import Role, User
from portal.auditing import Origin
from portal.db import make_engine
from portal.exchange import documents
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound
from portal.exchange.models import Document, Review
from portal.runtime import build_runtime
from portal.web.access import RuledRoute
from portal.web.app import routes
from tests.portal.conftest import Exchange, sign_in

CONTENT_ROUTES = ("/api/v1/documents/{ref}/content", "/documents/{ref}/download")
NEVER_CONTENT = ("dpo", "admin", "uploader")
MINUTES = b"Minutes of the case conference.\n" * 20


def _uploaded(exchange: Exchange) -> str:
    answer = exchange.upload("uploader", MINUTES, "minutes.txt")
    assert answer.status_code == 201, answer.text
    reference: str = answer.json()["reference"]
    meta = exchange.client.get(
        f"/api/v1/documents/{reference}", headers=exchange.tokens["inspector"]
    )
    assert meta.json()["state"] == "available", meta.text
    return reference


def test_the_content_routes_rules_admit_inspectors_and_leads_only() -> None:
    found = {
        item.path: item for item in routes() if isinstance(item, RuledRoute)
    }  # the rule table as the app builds it
    for path in CONTENT_ROUTES:
        rule = found[path].rule
        assert rule.roles == frozenset({Role.inspector, Role.lead}), path
        assert not rule.public and not rule.pending, path


def _permissive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that lets anyone see and read anything: only the route's rule is left."""
    allow: Callable[..., bool] = lambda *args, **kwargs: True  # noqa: E731
    for name in ("can_see_document", "can_read_content", "can_see_file_name", "can_see_review"):
        monkeypatch.setattr(policy, name, allow)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_route_rule_alone_refuses_content_to_dpos_admins_and_uploaders(
    exchange: Exchange,
    monkeypatch: pytest.MonkeyPatch,
    second_client: Callable[[], TestClient],
) -> None:
    reference = _uploaded(exchange)
    _permissive(monkeypatch)
    path = f"/api/v1/documents/{reference}/content"
    # The policy really allows everything now: the inspector is served, and the DPO would be.
    assert exchange.client.get(path, headers=exchange.tokens["inspector"]).status_code == 200
    for who in NEVER_CONTENT:
        answer = exchange.client.get(path, headers=exchange.tokens[who])
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found"), who
        assert MINUTES[:20] not in answer.content
    # The page address of the same handler has its own rule.
    browser = second_client()
    sign_in(browser, exchange.world.people["dpo"], exchange.world.clock)
    page = browser.get(f"/documents/{reference}/download")
    assert page.status_code == 404 and MINUTES[:20] not in page.content


def _caller(exchange: Exchange, who: str, db: Session) -> Caller:
    user = db.get(User, exchange.world.people[who].user_id)
    assert user is not None and user.id is not None
    return Caller(user_id=user.id, role=user.role, organisation_id=user.organisation_id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_policy_alone_refuses_content_to_dpos_admins_and_uploaders(
    exchange: Exchange,
) -> None:
    """No route in the way: the policy's functions and the service behind the handler."""
    reference = _uploaded(exchange)
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock)
    engine = make_engine(world.settings.database_url)
    try:
        with Session(engine) as db:
            document = db.exec(select(Document).where(Document.reference == reference)).one()
            review = db.get(Review, document.review_id)
            assert review is not None
            inspector = _caller(exchange, "inspector", db)
            assert policy.can_read_content(db, inspector, document, review)  # the control
            for who in NEVER_CONTENT:
                caller = _caller(exchange, who, db)
                assert not policy.can_read_content(db, caller, document, review), who
                assert policy.why_not_content(db, caller, document, review) == "role", who
            for who in NEVER_CONTENT:
                caller = _caller(exchange, who, db)
                acting = Acting.of(
                    user_id=caller.user_id,
                    role=caller.role,
                    organisation_id=caller.organisation_id,
                    now=world.clock(),
                    origin=Origin(),
                )
                with pytest.raises(NotFound):
                    documents.open_content(db, runtime.auditor, acting, runtime.vault, reference)
                db.rollback()
    finally:
        engine.dispose()

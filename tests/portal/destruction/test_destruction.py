"""Destruction end to end, with the clock passed in: schedule, notices, holds, the worker's run,
certificates, 410 Gone, and the audit log that outlives the documents (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

import audit
from portal.audit_vocabulary import Action
from portal.auditing import SIGNING_KEY_FILE
from portal.blobs import open_vault
from portal.db import make_engine
from portal.destruction.models import Certificate, DestructionItem, Notice
from portal.exchange.models import Document, DocumentState, Review
from portal.runtime import build_runtime
from portal.settings import SmtpAddress
from portal.worker import Worker
from tests.harness.mail import Inbox, smtp_server
from tests.portal.conftest import Exchange, api_token, cheap_hasher

MINUTES = b"Minutes of the case conference.\nPresent: social worker, team lead.\n" * 50
TITLE = "Children's services thematic review"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, SmtpAddress]]:
    with smtp_server() as served:
        yield served


def _events(exchange: Exchange, action: Action) -> list[audit.AuditRecord]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.connect() as connection:
            page = audit.search(connection, audit.EventFilter(action=action.value), limit=1000)
    finally:
        engine.dispose()
    return list(page.records)


def _verify_log(exchange: Exchange) -> audit.Verification:
    settings = exchange.world.settings
    key = audit.load_signing_key(settings.key_dir / SIGNING_KEY_FILE)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return audit.verify_log(connection, [key.public_key])
    finally:
        engine.dispose()


def test_a_review_closes_its_date_comes_and_the_worker_destroys_it(
    exchange: Exchange, inbox: tuple[Inbox, SmtpAddress]
) -> None:
    world, client, tokens = exchange.world, exchange.client, exchange.tokens
    mails, smtp = inbox
    refs = [
        exchange.upload("uploader", MINUTES, f"child-{n}-case-notes.txt").json()["reference"]
        for n in range(3)
    ]
    kept, *gone = refs
    settings = dataclasses.replace(world.settings, smtp=smtp)
    worker = Worker(build_runtime(settings, clock=world.clock, password_hasher=cheap_hasher()))
    worker.run_round(force=True)  # scans anything left pending

    # A lead may only ask for a hold; a DPO places one.
    asked = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "document": kept, "reason": "legal"},
        headers=tokens["lead"],
    )
    assert asked.status_code == 201 and asked.json()["state"] == "requested", asked.text
    lift = client.post(
        f"/api/v1/holds/{asked.json()['id']}/lift",
        json={"reason": "placed_in_error"},
        headers=tokens["lead"],
    )
    assert lift.status_code == 404
    placed = client.post(
        "/api/v1/holds",
        json={
            "review": "SWG24",
            "document": kept,
            "reason": "legal",
            "order_reference": "CO/2027/0142",
        },
        headers=tokens["dpo"],
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["state"] == "active" and placed.json()["id"] == asked.json()["id"]
    bad = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "reason": "legal", "order_reference": "Jane Doe's case"},
        headers=tokens["dpo"],
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_order_reference"
    # A field the route does not take is refused by name, never dropped: {"case": …} used to
    # place a hold on the whole review (issue 16); a misspelt field must not either.
    for_case = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "cases": "ABCD-EFGH-JKMN", "reason": "legal"},
        headers=tokens["dpo"],
    )
    assert for_case.status_code == 400, for_case.text
    assert for_case.json()["error"]["code"] == "unknown_field"
    assert "'cases'" in for_case.json()["error"]["message"]
    listed = client.get("/api/v1/holds", headers=tokens["dpo"]).json()["items"]
    assert [h["document"] for h in listed] == [kept]  # no whole-review hold appeared

    closed = client.post("/api/v1/reviews/SWG24/close", headers=tokens["lead"], json={})
    assert closed.status_code == 200, closed.text
    destroy_on = closed.json()["destroy_on"]
    assert destroy_on == (world.clock().date() + timedelta(days=90)).isoformat()

    # 30 and 7 days ahead: notices in the portal and by e-mail, with no content and no names.
    world.clock.advance(days=61)
    assert worker.run_round().destruction.notices == 1
    world.clock.advance(days=23)
    assert worker.run_round().destruction.notices == 1
    tokens = {who: api_token(world, who) for who in world.people}  # the first ones expired
    schedule = client.get("/api/v1/destruction/schedule", headers=tokens["dpo"]).json()["items"]
    assert [(e["review"], e["status"], e["held_documents"]) for e in schedule] == [
        ("SWG24", "scheduled", [kept])
    ]
    assert client.get("/api/v1/destruction/schedule", headers=tokens["uploader"]).status_code == 404
    # The clock jumped two months with no worker signing the log: the DPOs are alerted to that
    # too (tests/portal/console/test_alerts.py); here, the destruction notices.
    notices = [(to, m) for to, m in mails.messages if not m["Subject"].startswith("Portal audit")]
    recipients = sorted(to for rcpt, _ in notices for to in rcpt)
    people = world.people
    assert recipients == sorted([people["lead"].email, people["dpo"].email] * 2)
    for _, message in notices:
        raw = message.get_payload(decode=True)
        assert isinstance(raw, bytes)
        text = raw.decode()
        assert "SWG24" in text and destroy_on in text
        assert settings.public_url in text
        for secret in (TITLE, "child-", "case-notes", *refs):
            assert secret not in text and secret not in str(message["Subject"])

    # The day before: nothing happens. On the day: all but the held document.
    world.clock.advance(days=5)
    assert worker.run_round().destruction.report.destroyed == 0
    world.clock.advance(days=1)
    tokens = {who: api_token(world, who) for who in world.people}
    first = worker.run_round().destruction.report
    assert first.destroyed == 2 and len(first.certificates) == 1 and first.ok
    assert [(h.review, h.document) for h in first.held] == [("SWG24", kept)]
    for reference in gone:
        for path in (f"/api/v1/documents/{reference}", f"/api/v1/documents/{reference}/content"):
            answer = client.get(path, headers=tokens["inspector"])
            assert answer.status_code == 410, answer.text
            error = answer.json()["error"]
            assert error["code"] == "destroyed" and reference in error["message"]
            assert world.clock().date().isoformat() in error["message"]
        other = client.get(f"/api/v1/documents/{reference}", headers=tokens["other_uploader"])
        assert other.status_code == 404  # never confirms to those who could not see it
    survivor = client.get(f"/api/v1/documents/{kept}/content", headers=tokens["inspector"])
    assert survivor.status_code == 200 and survivor.content == MINUTES
    assert worker.run_round().destruction.report.destroyed == 0  # nothing twice

    # Lifting the hold lets the next run destroy the rest, and the review key with it.
    lifted = client.post(
        f"/api/v1/holds/{placed.json()['id']}/lift",
        json={"reason": "proceedings_concluded"},
        headers=tokens["dpo"],
    )
    assert lifted.status_code == 200 and lifted.json()["state"] == "lifted"
    second = worker.run_round().destruction.report
    assert second.destroyed == 1 and len(second.certificates) == 1 and not second.held
    assert client.get(f"/api/v1/documents/{kept}", headers=tokens["dpo"]).status_code == 410
    review = client.get("/api/v1/reviews/SWG24", headers=tokens["lead"]).json()
    assert review["state"] == "destroyed"
    assert not open_vault(settings).keystore.has_review_key("SWG24")

    listed = client.get("/api/v1/certificates", headers=tokens["lead"]).json()["items"]
    assert sorted(c["reference"] for c in listed) == sorted(
        first.certificates + second.certificates
    )
    whole = client.get(f"/api/v1/certificates/{second.certificates[0]}", headers=tokens["dpo"])
    certificate = whole.json()["certificate"]
    assert certificate["review"] == {"code": "SWG24", "scope": "whole_review"}
    assert [d["reference"] for d in certificate["documents"]] == [kept]
    assert certificate["verification"]["result"] == "passed"
    assert certificate["verification"]["review_key"] == "destroyed"
    # The key object the key service destroyed, and when: what its own backups must not outlive.
    keys = open_vault(settings).keystore
    assert certificate["verification"]["review_key_object"] == keys.key_reference("SWG24")
    assert "vault/reviews/" in certificate["verification"]["review_key_object"]
    assert certificate["verification"]["review_key_destroyed_at"].startswith(
        world.clock().date().isoformat()
    )
    assert certificate["authorised_by"]["basis"] == "retention_schedule"
    page = client.get(f"/destruction/certificates/{second.certificates[0]}")
    assert page.status_code in (303, 404)  # a page: signed-in DPOs and leads only

    engine = make_engine(settings.database_url)
    with Session(engine) as db:
        documents = db.exec(select(Document)).all()
        assert {d.state for d in documents} == {DocumentState.destroyed}
        assert all(
            d.wrapped_key is None and d.filename_sealed is None and d.blob_id is None
            for d in documents
        )
        assert len(db.exec(select(DestructionItem)).all()) == 3
        assert all(i.blob_id is None for i in db.exec(select(DestructionItem)).all())
        assert len(db.exec(select(Certificate)).all()) == 2
        assert {n.kind.value for n in db.exec(select(Notice)).all()} == {"days_30", "days_7"}
        assert all(n.sent_at is not None for n in db.exec(select(Notice)).all())
        assert db.exec(select(Review).where(col(Review.code) == "SWG24")).one().destroyed_at
    engine.dispose()
    assert not list(open_vault(settings).store.list_blobs())

    # The audit log outlives the documents: their whole history, and it still verifies.
    destroyed = _events(exchange, Action.DOCUMENT_DESTROYED)
    assert sorted(e.document for e in destroyed if e.document) == sorted(refs)
    assert len(_events(exchange, Action.DOCUMENT_UPLOADED)) == 3
    for action, count in [
        (Action.REVIEW_DESTROYED, 1),
        (Action.KEY_DESTROYED, 1),
        (Action.CERTIFICATE_ISSUED, 2),
        (Action.HOLD_PLACED, 2),
        (Action.HOLD_LIFTED, 1),
    ]:
        assert len(_events(exchange, action)) == count, action
    assert "Jane" not in str([e.details for e in _events(exchange, Action.HOLD_PLACED)])
    verification = _verify_log(exchange)
    assert verification.ok, verification


@pytest.mark.parametrize(
    ("value", "shown"),
    [("http://mail.example", True), ("smtp://", True), ("smtp://user:secret@mail.example", False)],
)
def test_a_bad_smtp_url_names_the_variable_and_never_echoes_a_password(
    value: str, shown: bool
) -> None:
    from portal.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"PORTAL_SMTP_URL": value})
    assert "PORTAL_SMTP_URL" in str(caught.value)
    assert (value in str(caught.value)) is shown and "secret" not in str(caught.value)
    good = Settings.from_environ({"PORTAL_SMTP_URL": "smtp://mail.example"})
    assert good.smtp == SmtpAddress(host="mail.example", port=25)
    with pytest.raises(SettingsError, match="PORTAL_NOTICE_FROM"):
        Settings.from_environ({"PORTAL_NOTICE_FROM": "not an address"})


def test_canonical_json_sorts_keys_has_no_whitespace_and_refuses_floats() -> None:
    from portal.destruction.certificates import canonical

    assert canonical({"b": 1, "a": ["é", None, True]}) == '{"a":["é",null,true],"b":1}'.encode()
    with pytest.raises(ValueError):
        canonical({"size": 1.5})


def test_a_dpos_hold_on_the_whole_review_keeps_every_document(exchange: Exchange) -> None:
    """Found by mutation (issue 16): removing both whole-review hold checks, in the schedule and
    in the run, left the whole suite green. The review is closed and its date has passed."""
    world, client, tokens = exchange.world, exchange.client, exchange.tokens
    refs = [exchange.upload("uploader", MINUTES).json()["reference"] for _ in range(2)]
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    worker.run_round(force=True)
    held = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "reason": "safeguarding"},
        headers=tokens["dpo"],
    )
    assert held.status_code == 201 and held.json()["state"] == "active", held.text
    closed = client.post("/api/v1/reviews/SWG24/close", headers=tokens["lead"], json={})
    assert closed.status_code == 200, closed.text
    world.clock.advance(days=120)  # well past destroy_on (90 days)
    tokens = {who: api_token(world, who) for who in world.people}
    report = worker.run_round().destruction.report
    assert report.destroyed == 0 and not report.certificates
    assert [(h.review, h.document) for h in report.held] == [("SWG24", None)]
    schedule = client.get("/api/v1/destruction/schedule", headers=tokens["dpo"]).json()["items"]
    assert [(e["review"], e["status"]) for e in schedule] == [("SWG24", "held")]
    for reference in refs:
        content = client.get(f"/api/v1/documents/{reference}/content", headers=tokens["inspector"])
        assert content.status_code == 200 and content.content == MINUTES
    assert open_vault(world.settings).keystore.has_review_key("SWG24")
    # Lifted, the next run destroys the review as scheduled.
    lifted = client.post(
        f"/api/v1/holds/{held.json()['id']}/lift",
        json={"reason": "proceedings_concluded"},
        headers=tokens["dpo"],
    )
    assert lifted.status_code == 200, lifted.text
    assert worker.run_round().destruction.report.destroyed == 2

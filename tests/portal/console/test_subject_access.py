"""The DPO's subject-access view (issue 16): "what did we hold for case X, who opened it, when
was it destroyed?", through the API, the console and the CLI; the case search of the audit log;
upload events that name the case; and a case link that survives destruction."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from sqlmodel import Session, select
from starlette.testclient import TestClient

import audit
from portal.audit_vocabulary import Action, TargetKind
from portal.cli import main
from portal.db import make_engine
from portal.exchange.models import Case, Document
from portal.runtime import build_runtime
from portal.worker import Worker
from tests.portal.conftest import Exchange, cheap_hasher, sign_in

SECRET_NAME = "Callum-Smith-case-notes.txt"
CONTENT = b"Case notes: confidential content that the subject-access view never shows.\n" * 20
MISTYPED = "0000-0000-0001"  # the check character is wrong
UNKNOWN = "0000-0000-0000"  # well formed, no such case


def _events(exchange: Exchange, where: audit.EventFilter) -> list[audit.AuditRecord]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.connect() as connection:
            return list(audit.search(connection, where, limit=1000).records)
    finally:
        engine.dispose()


def _worker(exchange: Exchange) -> Worker:
    world = exchange.world
    return Worker(build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher()))


def _case_with_documents(exchange: Exchange, count: int = 2) -> tuple[str, list[str]]:
    case = exchange.client.post("/api/v1/reviews/SWG24/cases", headers=exchange.tokens["uploader"])
    assert case.status_code == 201, case.text
    reference: str = case.json()["reference"]
    documents = []
    for _ in range(count):
        sent = exchange.upload("uploader", CONTENT, SECRET_NAME, case=reference)
        assert sent.status_code == 201, sent.text
        documents.append(sent.json()["reference"])
    _worker(exchange).run_round(force=True)  # the scan
    return reference, documents


def _destroy_early(exchange: Exchange) -> None:
    tokens = exchange.tokens
    for path, who, status in [
        ("close", "lead", 200),
        ("destruction/request", "dpo", 201),
        ("destruction/approve", "admin", 200),
    ]:
        answer = exchange.client.post(f"/api/v1/reviews/SWG24/{path}", headers=tokens[who], json={})
        assert answer.status_code == status, answer.text
    exchange.world.clock.advance(seconds=10)
    assert _worker(exchange).run_round().destruction.report.destroyed >= 1


def _subject_access(exchange: Exchange, case: str, **params: str) -> Any:
    return exchange.client.get(
        f"/api/v1/cases/{case}/subject-access", params=params, headers=exchange.tokens["dpo"]
    )


# --- The findings -------------------------------------------------------------------------------


def test_an_upload_event_names_its_case(exchange: Exchange) -> None:
    case, (document, _) = _case_with_documents(exchange)
    uploaded = _events(exchange, audit.EventFilter(action="document.uploaded", document=document))
    assert [e.details.get("case") for e in uploaded] == [case]
    # An upload for no case says nothing of one.
    plain = exchange.upload("uploader", CONTENT, "minutes.txt")
    other = _events(
        exchange,
        audit.EventFilter(action="document.uploaded", document=plain.json()["reference"]),
    )
    assert len(other) == 1 and "case" not in other[0].details


def test_a_resumable_upload_event_names_its_case_too(exchange: Exchange) -> None:
    from tests.portal.uploads.test_tus import RECORD, patch, start

    case = exchange.client.post("/api/v1/reviews/SWG24/cases", headers=exchange.tokens["uploader"])
    reference = case.json()["reference"]
    url = start(exchange, RECORD, case=reference)
    last = patch(exchange, url, 0, RECORD)
    assert last.status_code == 204, last.text
    document = last.headers["upload-document-reference"]
    uploaded = _events(exchange, audit.EventFilter(action="document.uploaded", document=document))
    assert [e.details.get("case") for e in uploaded] == [reference]


def test_destruction_keeps_the_case_link_and_names_the_certificate(exchange: Exchange) -> None:
    case, documents = _case_with_documents(exchange)
    _destroy_early(exchange)
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with Session(engine) as db:
            found = db.exec(select(Case).where(Case.reference == case)).one()
            rows = db.exec(select(Document).where(Document.case_id == found.id)).all()
            assert sorted(d.reference for d in rows) == sorted(documents)
            assert all(d.destroyed_at is not None for d in rows)
    finally:
        engine.dispose()
    answer = _subject_access(exchange, case)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(d["reference"] for d in body["documents"]) == sorted(documents)
    certificates = exchange.client.get("/api/v1/certificates", headers=exchange.tokens["dpo"])
    issued = {c["reference"] for c in certificates.json()["items"]}
    for item in body["documents"]:
        assert item["state"] == "destroyed" and item["destroyed_at"]
        assert item["destruction"]["certificate"] in issued
        assert "document.destroyed" in [a["action"] for a in item["accesses"]]
    assert SECRET_NAME not in answer.text and "Case notes" not in answer.text


def test_the_audit_search_filters_by_case_and_says_it_did(exchange: Exchange) -> None:
    case, documents = _case_with_documents(exchange)
    unrelated = exchange.upload("uploader", CONTENT, "minutes.txt").json()["reference"]
    dpo = exchange.tokens["dpo"]
    found = exchange.client.get(
        "/api/v1/audit/events", params={"case": case.lower(), "limit": "200"}, headers=dpo
    )
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    named = {e["document"] for e in items if e["document"]}
    assert named == set(documents) and unrelated not in named
    # The case's own creation (its target is the case) is in it too.
    assert any(e["action"] == "case.created" for e in items)
    searched = _events(exchange, audit.EventFilter(action="audit.searched"))[0]
    assert searched.details["filtered"] is True and searched.details["filter_case"] == case

    # The console's search page takes it too.
    sign_in(exchange.client, exchange.world.people["dpo"], exchange.world.clock)
    page = exchange.client.get("/console/audit", params={"case": case})
    assert page.status_code == 200
    for document in documents:
        assert document in page.text
    assert unrelated not in page.text
    searched = _events(exchange, audit.EventFilter(action="audit.searched"))[0]
    assert searched.details["filtered"] is True and searched.details["filter_case"] == case


def test_the_audit_search_refuses_a_bad_or_unknown_case(exchange: Exchange) -> None:
    dpo = exchange.tokens["dpo"]
    for typed in (MISTYPED, UNKNOWN, "Callum Smith"):
        answer = exchange.client.get("/api/v1/audit/events", params={"case": typed}, headers=dpo)
        assert answer.status_code == 400, (typed, answer.text)
        assert answer.json()["error"]["code"] == "invalid_filter"
    sign_in(exchange.client, exchange.world.people["dpo"], exchange.world.clock)
    page = exchange.client.get("/console/audit", params={"case": MISTYPED})
    assert page.status_code == 400 and "not a valid case reference" in page.text


# --- The API ------------------------------------------------------------------------------------


def test_the_api_answers_what_was_held_and_who_opened_it(exchange: Exchange) -> None:
    case, (opened, untouched) = _case_with_documents(exchange)
    inspector = exchange.tokens["inspector"]
    downloaded = exchange.client.get(f"/api/v1/documents/{opened}/content", headers=inspector)
    assert downloaded.status_code == 200
    answer = _subject_access(exchange, case.lower())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["case"]["reference"] == case and body["case"]["review"] == "SWG24"
    by_reference = {d["reference"]: d for d in body["documents"]}
    assert set(by_reference) == {opened, untouched}
    item = by_reference[opened]
    assert item["state"] == "available" and item["size"] == len(CONTENT)
    assert item["uploaded_at"] and item["scanned_at"] and item["destroyed_at"] is None
    assert item["destruction"] is None and item["holds"] == []
    inspector_id = exchange.world.people["inspector"].user_id
    downloads = [a for a in item["accesses"] if a["action"] == "document.downloaded"]
    assert [(a["user_id"], a["role"]) for a in downloads] == [(inspector_id, "inspector")]
    assert downloads[0]["email"] == exchange.world.people["inspector"].email
    assert "document.downloaded" not in [a["action"] for a in by_reference[untouched]["accesses"]]
    assert SECRET_NAME not in answer.text and "Case notes" not in answer.text

    # The look itself is an access, on the case.
    looked = _events(exchange, audit.EventFilter(action="audit.searched"))[0]
    assert looked.target == audit.Target(TargetKind.CASE, case)
    assert looked.actor.user_id == exchange.world.people["dpo"].user_id
    assert looked.details["filter_case"] == case and looked.details["filtered"] is True


def test_the_api_holds_and_exports_as_csv(exchange: Exchange) -> None:
    case, (held, _) = _case_with_documents(exchange)
    placed = exchange.client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "document": held, "reason": "legal"},
        headers=exchange.tokens["dpo"],
    )
    assert placed.status_code == 201, placed.text
    body = _subject_access(exchange, case).json()
    holds = {d["reference"]: d["holds"] for d in body["documents"]}[held]
    assert [(h["scope"], h["reason"], h["state"]) for h in holds] == [
        ("document", "legal", "active")
    ]
    exported = _subject_access(exchange, case, format="csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"subject-access-{case}.csv" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["document"] for r in rows} == {d["reference"] for d in body["documents"]}
    assert "document.uploaded" in {r["action"] for r in rows}


def test_a_case_hold_shows_on_that_case_only(exchange: Exchange) -> None:
    """A hold on a case has no document id: it used to show as a hold on the whole review, on
    every case's documents."""
    case, documents = _case_with_documents(exchange)
    other, other_documents = _case_with_documents(exchange, count=1)
    placed = exchange.client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "case": case, "reason": "safeguarding"},
        headers=exchange.tokens["dpo"],
    )
    assert placed.status_code == 201, placed.text
    body = _subject_access(exchange, case).json()
    for item in body["documents"]:
        assert [(h["scope"], h["reason"]) for h in item["holds"]] == [("case", "safeguarding")]
    assert len(body["documents"]) == len(documents)
    elsewhere = _subject_access(exchange, other).json()
    assert [d["holds"] for d in elsewhere["documents"]] == [[]] * len(other_documents)


def test_the_api_refuses_what_it_should(exchange: Exchange) -> None:
    case, _ = _case_with_documents(exchange, count=1)
    assert _subject_access(exchange, UNKNOWN).status_code == 404
    mistyped = _subject_access(exchange, MISTYPED)
    assert mistyped.status_code == 400 and mistyped.json()["error"]["code"] == "invalid_reference"
    assert _subject_access(exchange, "not a reference").status_code == 400
    assert _subject_access(exchange, case, format="xml").status_code == 400
    for who in ("uploader", "inspector", "lead", "admin"):
        answer = exchange.client.get(
            f"/api/v1/cases/{case}/subject-access", headers=exchange.tokens[who]
        )
        assert answer.status_code == 404, who
    assert exchange.client.get(f"/api/v1/cases/{case}/subject-access").status_code == 401
    # A refused look is not recorded as a look at the case.
    looks = _events(exchange, audit.EventFilter(target=audit.Target(TargetKind.CASE, case)))
    assert [e.action for e in looks] == ["case.created"]


# --- The console ---------------------------------------------------------------------------------


def test_the_console_page_searches_shows_and_exports(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    case, documents = _case_with_documents(exchange)
    dpo = exchange.client
    sign_in(dpo, exchange.world.people["dpo"], exchange.world.clock)
    empty = dpo.get("/console/subject-access")
    assert empty.status_code == 200 and 'id="case-form"' in empty.text
    assert 'href="/console/subject-access"' in dpo.get("/console").text  # in the console's nav
    shown = dpo.get("/console/subject-access", params={"case": case})
    assert shown.status_code == 200
    assert f'data-case="{case}"' in shown.text
    for document in documents:
        assert f'data-document="{document}"' in shown.text
    assert "<script>" not in shown.text and "style=" not in shown.text
    assert SECRET_NAME not in shown.text and "Case notes" not in shown.text
    looked = _events(exchange, audit.EventFilter(action="audit.searched"))[0]
    assert looked.target == audit.Target(TargetKind.CASE, case)

    exported = dpo.get("/console/subject-access/export", params={"case": case, "format": "json"})
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    assert json.loads(exported.content)["case"]["reference"] == case
    as_csv = dpo.get("/console/subject-access/export", params={"case": case, "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.text.startswith("document,state,size")

    unknown = dpo.get("/console/subject-access", params={"case": UNKNOWN})
    assert unknown.status_code == 404 and "There is no case with that reference" in unknown.text
    mistyped = dpo.get("/console/subject-access", params={"case": MISTYPED})
    assert mistyped.status_code == 400 and "not a valid case reference" in mistyped.text
    assert dpo.get("/console/subject-access/export", params={"case": UNKNOWN}).status_code == 404
    bad = dpo.get("/console/subject-access/export", params={"case": case, "format": "xml"})
    assert bad.status_code == 400

    uploader = second_client()
    sign_in(uploader, exchange.world.people["uploader"], exchange.world.clock)
    assert uploader.get("/console/subject-access", params={"case": case}).status_code == 404


def _many_downloads(exchange: Exchange, document: str, count: int) -> None:
    """``count`` download events for ``document``, written straight through the audit log."""
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    inspector = world.people["inspector"]
    actor = audit.Actor(inspector.user_id, "inspector", None)
    with Session(runtime.engine) as db:
        for _ in range(count):
            runtime.auditor.record(
                db,
                Action.DOCUMENT_DOWNLOADED,
                actor=actor,
                now=world.clock.now,
                target=audit.Target(TargetKind.DOCUMENT, document),
                review="SWG24",
                document=document,
            )
        db.commit()
    runtime.engine.dispose()


def test_a_document_with_more_than_a_thousand_events_is_answered_whole(
    exchange: Exchange,
) -> None:
    """Found: the view read one audit page of 1,000 events per document and said ``truncated``;
    a subject-access answer (API, exports, CLI) must hold every event, however many."""
    case, (busy, _) = _case_with_documents(exchange)
    _many_downloads(exchange, busy, 1005)
    answer = _subject_access(exchange, case)
    assert answer.status_code == 200, answer.text
    item = {d["reference"]: d for d in answer.json()["documents"]}[busy]
    downloads = [a for a in item["accesses"] if a["action"] == "document.downloaded"]
    assert len(downloads) == 1005 and item["events"] == len(item["accesses"]) > 1005
    seqs = [a["seq"] for a in item["accesses"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # oldest first, none twice
    as_csv = _subject_access(exchange, case, format="csv")
    rows = [r for r in csv.DictReader(io.StringIO(as_csv.text)) if r["document"] == busy]
    assert len(rows) == item["events"]
    # The console page shows the first 1,000 and says how many there are, and where the rest are.
    dpo = exchange.client
    sign_in(dpo, exchange.world.people["dpo"], exchange.world.clock)
    shown = dpo.get("/console/subject-access", params={"case": case})
    assert shown.status_code == 200
    assert f"the first 1000 of {item['events']} are shown here" in shown.text
    exported = dpo.get("/console/subject-access/export", params={"case": case, "format": "json"})
    whole = {d["reference"]: d for d in json.loads(exported.content)["documents"]}[busy]
    assert len(whole["accesses"]) == item["events"]


# --- The CLI ------------------------------------------------------------------------------------


def _cli(exchange: Exchange, *args: str) -> Any:
    settings = exchange.world.settings
    env = {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_STORAGE": str(settings.storage),
        "PORTAL_OPERATOR": exchange.world.people["dpo"].email,
    }
    return CliRunner().invoke(main, ["audit", "subject-access", *args], env=env)


def test_the_cli_answers_in_json_and_csv_and_refuses_bad_cases(exchange: Exchange) -> None:
    case, documents = _case_with_documents(exchange)
    answered = _cli(exchange, case, "--format", "json")
    assert answered.exit_code == 0, answered.output
    body = json.loads(answered.stdout)
    assert sorted(d["reference"] for d in body["documents"]) == sorted(documents)
    as_csv = _cli(exchange, case.lower(), "--format", "csv")
    assert as_csv.exit_code == 0 and as_csv.stdout.startswith("document,state,size")
    looked = _events(exchange, audit.EventFilter(action="audit.searched"))[0]
    assert looked.target == audit.Target(TargetKind.CASE, case)
    assert _cli(exchange, UNKNOWN).exit_code == 1
    assert _cli(exchange, MISTYPED).exit_code == 2
    assert _cli(exchange, case, "--format", "xml").exit_code == 2

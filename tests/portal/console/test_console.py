"""The DPO console over HTTP: every page, search and paging, histories, export and verification,
the destruction pages; and never a file name or a byte of content."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

import audit
from portal.auditing import SIGNING_KEY_FILE
from portal.db import make_engine
from portal.runtime import build_runtime
from portal.worker import Worker
from tests.portal.conftest import Exchange, World, cheap_hasher, csrf_from, sign_in

SECRET_NAME = "Jane-Doe-child-protection-plan.txt"
CONTENT = b"Child protection plan: confidential content that a DPO never sees.\n" * 20
SEQ = re.compile(r'data-seq="(\d+)"')


def _public_key(world: World) -> audit.PublicKey:
    return audit.load_signing_key(world.settings.key_dir / SIGNING_KEY_FILE).public_key


def _dpo(exchange: Exchange) -> TestClient:
    sign_in(exchange.client, exchange.world.people["dpo"], exchange.world.clock)
    return exchange.client


def _uploaded(exchange: Exchange) -> str:
    sent = exchange.upload("uploader", CONTENT, SECRET_NAME)
    assert sent.status_code == 201, sent.text
    reference: str = sent.json()["reference"]
    Worker(
        build_runtime(
            exchange.world.settings, clock=exchange.world.clock, password_hasher=cheap_hasher()
        )
    ).run_round(force=True)  # the scan, if the upload left it pending
    return reference


def test_every_page_for_the_dpo_and_never_a_file_name_or_content(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    reference = _uploaded(exchange)
    inspector = exchange.tokens["inspector"]
    viewed = exchange.client.get(f"/api/v1/documents/{reference}", headers=inspector)
    assert viewed.status_code == 200 and viewed.json()["filename"] == SECRET_NAME
    downloaded = exchange.client.get(f"/api/v1/documents/{reference}/content", headers=inspector)
    assert downloaded.status_code == 200 and downloaded.content == CONTENT
    dpo = _dpo(exchange)
    user_id = exchange.world.people["inspector"].user_id
    pages = [
        "/console",
        "/console/audit",
        f"/console/audit?document={reference.lower()}",
        "/console/audit/verify",
        f"/console/documents/{reference}",
        f"/console/users/{user_id}",
        "/console/anomalies",
        "/console/destruction",
        "/console/holds",
        "/console/certificates",
    ]
    for path in pages:
        page = dpo.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        for secret in (SECRET_NAME, "Jane-Doe", "Child protection plan"):
            assert secret not in page.text, path
    assert 'href="/console"' in dpo.get("/account").text  # the nav link, for DPOs

    # One document's history: upload, scan, metadata view and download, with who did them.
    history = dpo.get(f"/console/documents/{reference}").text
    actions = re.findall(r'data-action="([a-z_.]+)"', history)
    for action in ("document.uploaded", "document.scanned", "document.downloaded"):
        assert action in actions, actions
    assert actions.count("document.metadata_viewed") >= 2  # the inspector's, then the DPO's own
    assert exchange.world.people["inspector"].email in history
    assert "Aberdeen City Council" in history and "</html>" in history
    api = exchange.client.get(
        f"/api/v1/audit/documents/{reference}", headers=exchange.tokens["dpo"]
    )
    assert api.status_code == 200
    body = api.json()
    assert "filename" not in body["document"] and SECRET_NAME not in api.text
    assert {e["action"] for e in body["items"]} >= {"document.uploaded", "document.downloaded"}
    user = exchange.client.get(f"/api/v1/audit/users/{user_id}", headers=exchange.tokens["dpo"])
    assert {e["action"] for e in user.json()["items"]} >= {"document.downloaded"}

    # Everyone else: not found, on every console page and every console API route.
    for who in ("uploader", "inspector", "lead", "admin"):
        other = second_client()
        sign_in(other, exchange.world.people[who], exchange.world.clock)
        for path in pages:
            assert other.get(path).status_code == 404, (who, path)
        for path in ("/api/v1/audit/events", "/api/v1/audit/anomalies"):
            assert other.get(path, headers=exchange.tokens[who]).status_code == 404


def test_search_filters_and_keyset_paging_both_ways(exchange: Exchange) -> None:
    reference = _uploaded(exchange)
    inspector = exchange.tokens["inspector"]
    for _ in range(65):
        assert exchange.client.get(f"/api/v1/documents/{reference}", headers=inspector).is_success
    dpo = _dpo(exchange)
    email = exchange.world.people["inspector"].email
    query = f"/console/audit?actor={email}&action=document.metadata_viewed&review=swg24"
    seen: list[list[int]] = []
    page = dpo.get(query)
    while True:
        assert page.status_code == 200, page.text[:300]
        seen.append([int(s) for s in SEQ.findall(page.text)])
        found = re.search(r'href="([^"]+)" id="next-page"', page.text)
        if not found:
            break
        page = dpo.get(found.group(1).replace("&amp;", "&"))
    assert [len(p) for p in seen] == [25, 25, 15]
    every = [s for p in seen for s in p]
    assert every == sorted(every, reverse=True) and len(set(every)) == 65
    # Back from the last page: the previous link shows the middle page again.
    previous = re.search(r'href="([^"]+)" id="previous-page"', page.text)
    assert previous is not None
    back = dpo.get(previous.group(1).replace("&amp;", "&"))
    assert [int(s) for s in SEQ.findall(back.text)] == seen[1]

    # Other filters: outcome, document, dates; a bad value is an error beside its field.
    assert not SEQ.findall(dpo.get(f"{query}&outcome=failure").text)
    by_doc = dpo.get(f"/console/audit?document={reference}&action=document.uploaded").text
    assert len(SEQ.findall(by_doc)) == 1
    today = exchange.world.clock().date()
    assert len(SEQ.findall(dpo.get(f"{query}&from={today}&to={today}").text)) == 25
    assert not SEQ.findall(dpo.get(f"{query}&to=2020-01-01").text)
    bad = dpo.get("/console/audit?document=0000-0000-0001&from=yesterday")
    assert bad.status_code == 400
    assert "not a valid document reference" in bad.text and "Enter a date" in bad.text

    # The API: the same filters, a cursor, and searching is audited.
    api = exchange.tokens["dpo"]
    params = {"actor": email, "action": "document.metadata_viewed", "limit": "40"}
    first = exchange.client.get("/api/v1/audit/events", params=params, headers=api).json()
    assert len(first["items"]) == 40 and first["next"] is not None
    second = exchange.client.get(
        "/api/v1/audit/events", params={**params, "before": first["next"]}, headers=api
    ).json()
    assert len(second["items"]) == 25 and second["next"] is None
    assert first["items"][0]["actor"]["email"] == email
    assert first["items"][0]["action_words"] == "Viewed a document's details"
    refused = exchange.client.get("/api/v1/audit/events", params={"outcome": "x"}, headers=api)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_filter"
    # Digits of other kinds (found by schemathesis: "³" was a server error) are no user number.
    for typed in ("³", "\u0663", "1\u00b2"):
        odd = exchange.client.get("/api/v1/audit/events", params={"actor": typed}, headers=api)
        assert odd.status_code == 400 and odd.json()["error"]["code"] == "invalid_filter", typed
    searches = exchange.client.get(
        "/api/v1/audit/events", params={"action": "audit.searched", "limit": "200"}, headers=api
    ).json()["items"]
    assert len(searches) >= 8
    assert any(s["details"].get("filter_actor") for s in searches)


def test_exports_in_both_formats_verify_offline_with_the_public_key(exchange: Exchange) -> None:
    reference = _uploaded(exchange)
    dpo = _dpo(exchange)
    key = _public_key(exchange.world)
    for format_ in ("jsonl", "csv"):
        whole = dpo.get(f"/console/audit/export?format={format_}")
        assert whole.status_code == 200
        assert whole.headers["content-disposition"].startswith("attachment;")
        check = audit.verify_export(whole.content, key)
        assert check.ok and check.shown > 5 and check.hidden == 0, check.verification.broken
        # Its own export event is in it: recorded before the first byte left.
        assert b"audit.exported" in whole.content
        filtered = dpo.get(f"/console/audit/export?format={format_}&document={reference}")
        check = audit.verify_export(filtered.content, key)
        assert check.ok and check.shown >= 2 and check.hidden > 0
        assert SECRET_NAME.encode() not in filtered.content + whole.content
        api = exchange.client.get(
            "/api/v1/audit/export", params={"format": format_}, headers=exchange.tokens["dpo"]
        )
        assert api.status_code == 200 and audit.verify_export(api.content, key).ok
    page = dpo.get("/console/audit?action=audit.exported")
    assert len(SEQ.findall(page.text)) == 6

    # The upload form verifies a file in the browser; one byte changed and it fails.
    data = dpo.get("/console/audit/export?format=jsonl").content
    token = csrf_from(dpo.get("/console/audit/verify").text)
    url = "/console/audit/verify-file"  # the token is the form's first field, never the address
    good = dpo.post(
        url,
        data={"csrf_token": token},
        files={"export": ("audit.jsonl", data, "application/x-ndjson")},
    )
    assert good.status_code == 200 and 'id="file-result" role="status" data-ok="true"' in good.text
    changed = data.replace(b'"outcome":"success"', b'"outcome":"failure"', 1)
    assert changed != data
    bad = dpo.post(
        url,
        data={"csrf_token": token},
        files={"export": ("audit.jsonl", changed, "application/x-ndjson")},
    )
    assert bad.status_code == 200 and 'data-ok="false"' in bad.text
    assert "does not verify" in bad.text
    junk = dpo.post(
        url, data={"csrf_token": token}, files={"export": ("notes.txt", b"hello", "text/plain")}
    )
    assert "not an audit export" in junk.text
    empty = dpo.post(url, data={"csrf_token": token}, files={"other": ("x.txt", b"", "text/plain")})
    assert empty.status_code == 400 and "Choose an export file" in empty.text


def test_the_console_verifies_in_parts_as_the_command_line_does(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long log is walked in one process per CPU from the browser too (a short one, as here,
    is one walk whatever is asked: the parts' own correctness is tests/audit/test_parallel.py)."""
    asked: list[int] = []
    real = audit.verify_log

    def noting(*args: Any, **kwargs: Any) -> audit.Verification:
        asked.append(kwargs.get("processes", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(audit, "verify_log", noting)
    dpo = _dpo(exchange)
    token = csrf_from(dpo.get("/console/audit/verify").text)
    assert 'data-ok="true"' in dpo.post("/console/audit/verify", data={"csrf_token": token}).text
    assert exchange.client.post("/api/v1/audit/verify", headers=exchange.tokens["dpo"]).is_success
    assert asked == [audit.parts_by_default()] * 2


def test_a_tampered_row_is_reported_at_its_sequence_number(exchange: Exchange) -> None:
    reference = _uploaded(exchange)
    dpo = _dpo(exchange)
    token = csrf_from(dpo.get("/console/audit/verify").text)
    fine = dpo.post("/console/audit/verify", data={"csrf_token": token})
    assert (
        fine.status_code == 200 and 'id="verify-result" role="status" data-ok="true"' in fine.text
    )
    api = exchange.client.post("/api/v1/audit/verify", headers=exchange.tokens["dpo"])
    assert api.status_code == 200 and api.json()["ok"] is True

    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.begin() as db:
            seq = db.execute(
                text("SELECT seq FROM audit_event WHERE action = :a AND document = :d"),
                {"a": "document.uploaded", "d": reference},
            ).scalar_one()
            db.execute(
                text("UPDATE audit_event SET client = :c WHERE seq = :s"),
                {"c": "203.0.113.66", "s": seq},
            )
    finally:
        engine.dispose()
    broken = dpo.post("/console/audit/verify", data={"csrf_token": token})
    assert broken.status_code == 200
    assert f'data-broken="{seq}"' in broken.text
    assert re.search(rf'id="broken-sequence">{seq}<', broken.text)
    api = exchange.client.post("/api/v1/audit/verify", headers=exchange.tokens["dpo"]).json()
    assert api["ok"] is False and api["broken"]["sequence"] == seq
    assert api["broken"]["kind"] == "changed"
    # Both checks are on record, with the broken sequence number.
    verified = exchange.client.get(
        "/api/v1/audit/events",
        params={"action": "audit.verified", "outcome": "failure"},
        headers=exchange.tokens["dpo"],
    ).json()["items"]
    assert [v["details"]["broken_sequence"] for v in verified] == [seq, seq]


def test_holds_early_destruction_and_certificates_from_the_console(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world, client, tokens = exchange.world, exchange.client, exchange.tokens
    reference = _uploaded(exchange)
    kept = _uploaded(exchange)
    asked = client.post(
        "/api/v1/holds", json={"review": "SWG24", "reason": "complaint"}, headers=tokens["lead"]
    )
    assert asked.status_code == 201
    dpo = _dpo(exchange)
    holds = dpo.get("/console/holds").text
    assert 'id="requested-holds"' in holds and f'data-hold="{asked.json()["id"]}"' in holds
    token = csrf_from(holds)

    # A bad order reference is refused beside its field; a good hold is placed, then lifted.
    bad = dpo.post(
        "/console/holds",
        data={"csrf_token": token, "review": "SWG24", "reason": "legal", "order_reference": "J D"},
    )
    assert bad.status_code == 400 and 'href="#order_reference"' in bad.text
    placed = dpo.post(
        "/console/holds",
        data={"csrf_token": token, "review": "swg24", "document": kept, "reason": "legal"},
    )
    assert placed.status_code == 303
    holds = dpo.get("/console/holds").text
    assert re.search(r'id="active-holds".*' + re.escape(kept), holds, re.S)
    # Declining the lead's request takes a reason, refused beside its own list without one.
    lift = f"/console/holds/{asked.json()['id']}/lift"
    no_reason = dpo.post(lift, data={"csrf_token": token})
    assert no_reason.status_code == 400
    assert f'href="#lift-reason-{asked.json()["id"]}"' in no_reason.text
    declined = dpo.post(lift, data={"csrf_token": token, "lift_reason": "placed_in_error"})
    assert declined.status_code == 303

    # Early destruction: asked by one DPO, refused to the same DPO, approved by a second one.
    closed = client.post("/api/v1/reviews/SWG24/close", headers=tokens["lead"], json={})
    assert closed.status_code == 200
    asked_early = dpo.post("/console/destruction/SWG24/request", data={"csrf_token": token})
    assert asked_early.status_code == 303
    same = dpo.post("/console/destruction/SWG24/approve", data={"csrf_token": token})
    assert same.status_code == 409 and "another DPO or an administrator" in same.text
    second = world.add_person("dpo2@inspectorate.example", world.people["dpo"].role, "inspectorate")
    other = second_client()
    sign_in(other, second, world.clock)
    schedule = other.get("/console/destruction").text
    assert "Approve early destruction" in schedule
    approved = other.post(
        "/console/destruction/SWG24/approve", data={"csrf_token": csrf_from(schedule)}
    )
    assert approved.status_code == 303
    assert 'data-status="due"' in dpo.get("/console/destruction").text

    # The run destroys what is not held; the certificate is listed, printable and signed; the
    # destroyed document's history is still there.
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    report = worker.run_round().destruction.report
    assert report.destroyed == 1 and len(report.certificates) == 1
    certificates = dpo.get("/console/certificates").text
    (certificate,) = re.findall(r'data-certificate="([^"]+)"', certificates)
    assert dpo.get(f"/destruction/certificates/{certificate}").status_code == 200
    signed = dpo.get(f"/console/certificates/{certificate}/signed")
    assert signed.status_code == 200 and signed.json()["algorithm"] == "Ed25519"
    gone = dpo.get(f"/console/documents/{reference}")
    assert gone.status_code == 200 and "document.destroyed" in gone.text
    assert SECRET_NAME not in gone.text + certificates


def _cut_back_to_first_checkpoint(world: World) -> None:
    engine = make_engine(world.settings.database_url)
    with engine.begin() as connection:
        first = connection.execute(
            text("SELECT seq, at_us FROM audit_checkpoint ORDER BY seq LIMIT 1")
        ).one()
        link = connection.execute(
            text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": first.seq}
        ).scalar_one()
        connection.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": first.seq})
        connection.execute(text("DELETE FROM audit_checkpoint WHERE seq > :s"), {"s": first.seq})
        connection.execute(text("DELETE FROM audit_pending"))
        connection.execute(
            text(
                "UPDATE audit_head SET seq = :s, hash = :h, checkpoint_seq = :s, checkpoint_us = :u"
            ),
            {"s": first.seq, "h": link, "u": first.at_us},
        )
    engine.dispose()


def test_the_worker_witnesses_checkpoints_and_verification_finds_a_cut_back_log(
    exchange: Exchange,
) -> None:
    """Issue 17: cutting the log back to a checkpoint and moving the head used to verify in the
    API (`{"ok": true}`) and the console. The worker gives the witness every checkpoint; the
    API and the console then compare, and name the witnessed sequence number."""
    world, client = exchange.world, exchange.client
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    _uploaded(exchange)
    world.clock.advance(seconds=61)
    done = worker.run_round(force=True)
    latest = worker.runtime.witness.latest()
    assert done.witness_problem is None and done.checkpoint is not None
    assert latest is not None and latest.seq == done.checkpoint  # sealed and witnessed
    dpo_token = exchange.tokens["dpo"]
    verified = client.post("/api/v1/audit/verify", headers=dpo_token)
    assert verified.status_code == 200 and verified.json()["ok"], verified.text
    witnessed = verified.json()["witnessed"]
    assert witnessed["seq"] >= 2 and '"format":"audit-witness/1"' in witnessed["receipt"]
    dpo = _dpo(exchange)
    token = csrf_from(dpo.get("/console/audit/verify").text)
    page = dpo.post("/console/audit/verify", data={"csrf_token": token}).text
    assert 'id="receipt"' in page and "Download the receipt" in page
    receipt = dpo.get("/console/audit/receipt")
    assert receipt.status_code == 200 and "attachment" in receipt.headers["content-disposition"]
    assert receipt.text.strip() == dpo.get("/console/audit/receipt").text.strip()

    _cut_back_to_first_checkpoint(world)
    found = client.post("/api/v1/audit/verify", headers=dpo_token)
    assert found.status_code == 200, found.text
    broken = found.json()["broken"]
    assert found.json()["ok"] is False and broken["kind"] == "rolled_back", found.text
    page = dpo.post("/console/audit/verify", data={"csrf_token": token}).text
    assert 'data-ok="false"' in page and "rolled back" in page
    # The worker reports it, and never extends the witness past the contradiction.
    done = worker.run_round(force=True)
    assert done.witness_problem is not None and "contradicts" in done.witness_problem


def test_an_unsigned_tail_older_than_two_minutes_is_a_finding(exchange: Exchange) -> None:
    world, client = exchange.world, exchange.client
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    worker.run_round(force=True)  # everything so far sealed
    assert exchange.upload("uploader", CONTENT, SECRET_NAME).status_code == 201  # new events
    world.clock.advance(seconds=1)
    dpo = exchange.tokens["dpo"]
    page = _dpo(exchange)
    token = csrf_from(page.get("/console/audit/verify").text)
    fresh = client.post("/api/v1/audit/verify", headers=dpo).json()["unsigned_tail"]
    assert fresh["events"] > 0 and fresh["stale"] is False, fresh
    # Nothing appended for two minutes and more, and no worker: the next append would sign a
    # checkpoint (it is due); until then the tail is stale, and verification says so.
    world.clock.advance(seconds=121)
    shown = page.post("/console/audit/verify", data={"csrf_token": token}).text
    assert 'id="stale-tail"' in shown
    # The verification's own event was the next append: it signed the checkpoint that was due.
    sealed = client.post("/api/v1/audit/verify", headers=dpo).json()["unsigned_tail"]
    assert sealed["events"] == 0 and sealed["stale"] is False, sealed

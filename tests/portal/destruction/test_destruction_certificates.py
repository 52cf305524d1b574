"""What a destruction certificate states, checked against what its run did (issue 16, an
independent tester's findings): the key's fate, what was kept and why, each document's own time,
the organisations concerned, and who authorised and carried it out, by name (SQLite and
PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

import audit
from portal.blobs import open_vault
from portal.destruction.certificates import CertificateInvalid, sign_certificate, verify_export
from portal.destruction.services import destroyer_for
from portal.runtime import build_runtime
from portal.worker import Worker
from tests.portal.conftest import Exchange, api_token, cheap_hasher, sign_in

MINUTES = b"Minutes of the case conference.\nPresent: social worker, team lead.\n" * 40


def _worker(exchange: Exchange) -> Worker:
    world = exchange.world
    return Worker(build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher()))


def _certificate(exchange: Exchange, reference: str) -> dict[str, Any]:
    tokens = {who: api_token(exchange.world, who) for who in ("dpo",)}
    answer = exchange.client.get(f"/api/v1/certificates/{reference}", headers=tokens["dpo"])
    assert answer.status_code == 200, answer.text
    certificate: dict[str, Any] = answer.json()["certificate"]
    return certificate


def _uploaded(exchange: Exchange) -> tuple[str, list[str], str]:
    """A case with two Aberdeen documents, one Dundee document; scanned. (case, aberdeen, dundee)"""
    case = exchange.client.post("/api/v1/reviews/SWG24/cases", headers=exchange.tokens["uploader"])
    assert case.status_code == 201, case.text
    case_ref: str = case.json()["reference"]
    aberdeen = [
        exchange.upload("uploader", MINUTES, case=case_ref).json()["reference"] for _ in range(2)
    ]
    dundee = exchange.upload("other_uploader", MINUTES + b"dundee").json()["reference"]
    _worker(exchange).run_round(force=True)  # the scan
    return case_ref, aberdeen, dundee


def _close_and_pass_the_date(exchange: Exchange) -> None:
    closed = exchange.client.post(
        "/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={}
    )
    assert closed.status_code == 200, closed.text
    exchange.world.clock.advance(days=91)


def test_a_documents_only_run_says_the_key_was_retained_and_what_was_kept_and_why(
    exchange: Exchange,
) -> None:
    """Finding: a documents-only run's method text said the review key was erased, while its own
    verification said ``retained_for_held_documents``; backups were "beyond use" unconditionally."""
    _, aberdeen, dundee = _uploaded(exchange)
    kept, gone = aberdeen
    client, tokens = exchange.client, exchange.tokens
    placed = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "document": kept, "reason": "legal"},
        headers=tokens["dpo"],
    )
    assert placed.status_code == 201, placed.text
    asked = client.post(  # a lead's request on the whole review: pending, it stops nothing
        "/api/v1/holds", json={"review": "SWG24", "reason": "complaint"}, headers=tokens["lead"]
    )
    assert asked.status_code == 201 and asked.json()["state"] == "requested", asked.text
    _close_and_pass_the_date(exchange)

    report = _worker(exchange).run_round().destruction.report
    assert report.destroyed == 2 and len(report.certificates) == 1, report
    certificate = _certificate(exchange, report.certificates[0])

    assert certificate["review"]["scope"] == "documents_only"
    keys = open_vault(exchange.world.settings).keystore
    assert certificate["review_key"] == {
        "state": "retained",
        "key_object": keys.key_reference("SWG24"),
        "erased_at": None,
        "retained_for": [kept],
    }
    method = certificate["method"]
    assert method["review_key"] == "retained"
    assert method["technique"] != "cryptographic_erase"
    assert "retained, not erased" in method["description"]
    assert "was then erased" not in method["description"]
    assert method["backups"].startswith("Not beyond use")
    assert certificate["verification"]["review_key"] == "retained_for_held_documents"
    assert [k["reference"] for k in certificate["kept_documents"]] == [kept]
    why = certificate["kept_documents"][0]["why"]
    assert {"hold": placed.json()["id"], "kind": "hold", "on": "document", "reason": "legal"} in why
    assert {
        "hold": asked.json()["id"],
        "kind": "hold_requested",
        "on": "review",
        "reason": "complaint",
    } in why
    assert sorted(d["reference"] for d in certificate["documents"]) == sorted([gone, dundee])
    assert certificate["organisations"] == [
        {"code": "aberdeen-city", "name": "Aberdeen City Council"},
        {"code": "dundee-city", "name": "Dundee City Council"},
    ]
    assert keys.has_review_key("SWG24")  # what the certificate says is what happened

    # The printable view says the same, not "destroyed by cryptographic erase" regardless.
    sign_in(client, exchange.world.people["dpo"], exchange.world.clock)
    page = client.get(f"/destruction/certificates/{report.certificates[0]}")
    assert page.status_code == 200, page.text
    assert "retained</strong>" in page.text and "Not beyond use" in page.text
    assert kept in page.text and "Dundee City Council" in page.text


def test_a_whole_review_run_says_the_key_was_erased_and_the_backup_condition(
    exchange: Exchange,
) -> None:
    case_ref, aberdeen, dundee = _uploaded(exchange)
    _close_and_pass_the_date(exchange)
    report = _worker(exchange).run_round().destruction.report
    assert report.destroyed == 3 and len(report.certificates) == 1, report
    certificate = _certificate(exchange, report.certificates[0])

    assert certificate["review"]["scope"] == "whole_review"
    key = certificate["review_key"]
    assert key["state"] == "erased" and key["erased_at"] and key["retained_for"] == []
    assert key["erased_at"] == certificate["verification"]["review_key_destroyed_at"]
    method = certificate["method"]
    assert method["review_key"] == "erased" and method["technique"] == "cryptographic_erase"
    assert key["key_object"] in method["description"]
    # Backups are beyond use only under a condition: the key service's copies of the key gone.
    assert "once every backup of the key service" in method["backups"]
    assert key["erased_at"] in method["backups"]
    assert certificate["kept_documents"] == [] and certificate["held_documents"] == []
    # What remains, the case references among it, each document with its organisation and case.
    assert certificate["remains"]["case_references"] == [case_ref]
    by_ref = {d["reference"]: d for d in certificate["documents"]}
    assert {by_ref[r]["case"] for r in aberdeen} == {case_ref} and by_ref[dundee]["case"] is None
    assert by_ref[dundee]["organisation"] == "dundee-city"
    assert {"audit_events", "certificate", "document_metadata"} <= set(certificate["remains"])
    # Who authorised it: the retention schedule set by the review's lead, named in full; the
    # worker carried it out.
    lead = exchange.world.people["lead"]
    assert certificate["authorised_by"]["review_lead"] == {
        "user_id": lead.user_id,
        "name": "Lena Ward",
        "email": lead.email,
        "role": "lead",
        "organisation": {"code": "inspectorate", "name": "Care Inspectorate"},
    }
    assert certificate["carried_out_by"] == {"process": "destruction"}


class SteppingClock:
    """One second later at every reading: each step of a run happens at its own time."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


def test_each_batch_has_its_own_destruction_time(exchange: Exchange) -> None:
    """Finding: every time in a run's certificate was one identical timestamp."""
    _uploaded(exchange)
    _close_and_pass_the_date(exchange)
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    try:
        stepping = SteppingClock(world.clock())
        destroyer = dataclasses.replace(destroyer_for(runtime), clock=stepping, batch=1)
        report = destroyer.run_due(now=world.clock())
    finally:
        runtime.engine.dispose()
    assert report.destroyed == 3 and len(report.certificates) == 1, report
    certificate = _certificate(exchange, report.certificates[0])
    destroyed = sorted(d["destroyed_at"] for d in certificate["documents"])
    assert len(set(destroyed)) == 3, destroyed
    steps = [
        certificate["started_at"],
        *destroyed,
        certificate["review_key"]["erased_at"],
        certificate["verification"]["checked_at"],
        certificate["issued_at"],
    ]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), steps


def test_an_uploaders_receipt_outlives_the_document_with_what_the_certificate_records(
    exchange: Exchange,
) -> None:
    """Receipts answered 410 after destruction: the organisation lost its proof of what it sent."""
    _, aberdeen, _ = _uploaded(exchange)
    reference = aberdeen[0]
    client = exchange.client
    before = client.get(
        f"/api/v1/documents/{reference}/receipt", headers=exchange.tokens["uploader"]
    )
    assert before.status_code == 200 and before.json()["state"] == "available", before.text
    _close_and_pass_the_date(exchange)
    [certificate_ref] = _worker(exchange).run_round().destruction.report.certificates
    certificate = _certificate(exchange, certificate_ref)
    [certified] = [d for d in certificate["documents"] if d["reference"] == reference]

    tokens = {who: api_token(exchange.world, who) for who in ("uploader", "other_uploader")}
    after = client.get(f"/api/v1/documents/{reference}/receipt", headers=tokens["uploader"])
    assert after.status_code == 200, after.text
    receipt = after.json()
    assert receipt["state"] == "destroyed" and receipt["certificate"] == certificate_ref
    assert receipt["reference"] == reference and receipt["review"] == "SWG24"
    for field in ("size", "sha256", "destroyed_at"):
        assert receipt[field] == certified[field], field
    assert (receipt["size"], receipt["sha256"]) == (before.json()["size"], before.json()["sha256"])
    assert "filename" not in receipt
    # The metadata and the content stay gone; another organisation still learns nothing.
    gone = client.get(f"/api/v1/documents/{reference}", headers=tokens["uploader"])
    assert gone.status_code == 410
    other = client.get(f"/api/v1/documents/{reference}/receipt", headers=tokens["other_uploader"])
    assert other.status_code == 404

    sign_in(client, exchange.world.people["uploader"], exchange.world.clock)
    page = client.get(f"/documents/{reference}/receipt")
    assert page.status_code == 200, page.text
    assert certificate_ref in page.text and certified["sha256"] in page.text


def test_certificates_of_format_1_still_verify_and_unknown_formats_do_not() -> None:
    key = audit.SigningKey.generate()
    for form, ok in [("/1", True), ("/2", True), ("/3", False)]:
        content = {
            "format": f"dxp-destruction-certificate{form}",
            "reference": "X",
            "documents": [],
        }
        data = sign_certificate(content, key).export() + b"\n"
        if ok:
            assert verify_export(data, key.public_key) == content
        else:
            with pytest.raises(CertificateInvalid):
                verify_export(data, key.public_key)

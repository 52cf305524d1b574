"""Bringing destruction forward (two people), the command line, certificates checked offline, and
copies taken before destruction that can no longer be read after it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

import audit
from portal.accounts.models import Role
from portal.audit_vocabulary import Action, TargetKind
from portal.blobs import open_vault
from portal.cli import main
from portal.db import make_engine
from portal.destruction.certificates import canonical
from portal.exchange.models import Document
from storage import DocumentKey, KeyDestroyed, StorageError
from tests.portal.conftest import Exchange

BODY = b"Assessment and plan for the young person.\n" * 40

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def portal(exchange: Exchange, *args: str) -> Result:
    settings = exchange.world.settings
    env = {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_OPERATOR": exchange.world.people["dpo"].email,
    }
    return CliRunner().invoke(main, list(args), env=env)


def _close(exchange: Exchange) -> None:
    closed = exchange.client.post(
        "/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={}
    )
    assert closed.status_code == 200, closed.text


def test_bringing_destruction_forward_needs_a_second_person(
    exchange: Exchange, tmp_path: Path
) -> None:
    client, tokens, world = exchange.client, exchange.tokens, exchange.world
    refs = [exchange.upload("uploader", BODY, f"plan-{n}.txt").json()["reference"] for n in (1, 2)]
    early = "/api/v1/reviews/SWG24/destruction"
    # Only a closed review can be destroyed.
    assert client.post(f"{early}/request", headers=tokens["dpo"]).status_code == 409
    _close(exchange)
    # A copy of the database rows and of the blob files, taken before destruction.
    engine = make_engine(world.settings.database_url)
    with Session(engine) as db:
        rows = [(d.reference, d.wrapped_key, d.blob_id) for d in db.exec(select(Document)).all()]
    engine.dispose()
    vault = open_vault(world.settings)
    assert vault.store.__class__.__name__ == "LocalFolderStore"
    backup = tmp_path / "backup"
    shutil.copytree(vault.store.root, backup)  # type: ignore[attr-defined]
    key = DocumentKey(review="SWG24", document_id=rows[0][0], wrapped=rows[0][1] or b"")
    assert b"".join(vault.read(key, rows[0][2] or "")) == BODY  # the copy is readable now

    assert client.post(f"{early}/request", headers=tokens["lead"]).status_code == 404
    assert client.post(f"{early}/approve", headers=tokens["dpo"]).status_code == 409  # nothing yet
    asked = client.post(f"{early}/request", headers=tokens["dpo"])
    assert asked.status_code == 201 and asked.json()["state"] == "pending", asked.text
    again = client.post(f"{early}/request", headers=tokens["dpo"])
    assert again.status_code == 409
    same = client.post(f"{early}/approve", headers=tokens["dpo"])
    assert same.status_code == 409 and same.json()["error"]["code"] == "second_person_required"
    for who in ("lead", "inspector", "uploader"):
        assert client.post(f"{early}/approve", headers=tokens[who]).status_code == 404
    # Not approved: a run destroys nothing.
    dry = portal(exchange, "destroy", "run")
    assert dry.exit_code == 0 and dry.output.strip() == "", dry.output

    second = world.add_person(
        "dpo2@inspectorate.example", Role.dpo, "inspectorate", name="Sam Okafor"
    )
    from tests.portal.conftest import api_token

    world.people["dpo2"] = second
    approved = client.post(f"{early}/approve", headers=api_token(world, "dpo2"))
    assert approved.status_code == 200 and approved.json()["state"] == "approved", approved.text
    due = portal(exchange, "destroy", "due", "--json")
    assert json.loads(due.output.splitlines()[0])["status"] == "due"
    planned = portal(exchange, "destroy", "run", "--dry-run")
    assert planned.exit_code == 0 and "would destroy SWG24: 2 document(s)" in planned.output
    ran = portal(exchange, "destroy", "run")
    assert ran.exit_code == 0, ran.output
    (reference,) = ran.output.split()
    assert portal(exchange, "destroy", "run").output.strip() == ""  # idempotent

    # The copies taken before can no longer be decrypted: the review key is gone.
    assert vault.keystore.is_destroyed("SWG24") and not vault.keystore.has_review_key("SWG24")
    from storage import LocalFolderStore, Vault

    restored = Vault(LocalFolderStore(backup), vault.keystore)
    for ref, wrapped, blob_id in rows:
        assert wrapped and blob_id and (backup / blob_id[:2] / blob_id).exists()
        with pytest.raises((KeyDestroyed, StorageError)):
            b"".join(
                restored.read(
                    DocumentKey(review="SWG24", document_id=ref, wrapped=wrapped), blob_id
                )
            )
    assert not any(vault.store.exists(blob_id or "") for _, _, blob_id in rows)

    # The certificate names both people in full, inside the signed body (issue 16: ids alone
    # left an offline auditor unable to tell who authorised it), and checks out offline.
    certificate = client.get(f"/api/v1/certificates/{reference}", headers=tokens["dpo"]).json()
    authority = certificate["certificate"]["authorised_by"]
    assert authority["basis"] == "early_destruction_approved"
    inspectorate = {"code": "inspectorate", "name": "Care Inspectorate"}
    assert authority["requested_by"] == {
        "user_id": world.people["dpo"].user_id,
        "name": "Dara Quinn",
        "email": "dpo@inspectorate.example",
        "role": "dpo",
        "organisation": inspectorate,
    }
    assert authority["approved_by"] == {
        "user_id": second.user_id,
        "name": "Sam Okafor",
        "email": "dpo2@inspectorate.example",
        "role": "dpo",
        "organisation": inspectorate,
    }
    assert sorted(d["reference"] for d in certificate["certificate"]["documents"]) == sorted(refs)
    for ref in refs:
        gone = client.get(f"/api/v1/documents/{ref}/content", headers=tokens["inspector"])
        assert gone.status_code == 410
    # The request and the approval, each under its own action.
    requests = exchange_events(exchange, Action.DESTRUCTION_REQUESTED)
    approvals = exchange_events(exchange, Action.DESTRUCTION_APPROVED)
    for events, state in ((requests, "pending"), (approvals, "approved")):
        done = [e for e in events if e.outcome == audit.Outcome.SUCCESS.value]
        assert [str(e.details["state"]) for e in done] == [state]
        assert all(e.details["early"] is True for e in done)
    # Every refusal is an event too (issue 17): the lead's request, which the route refuses; the
    # requester's own approval, and the lead's, inspector's and uploader's approvals.
    refused = [e for e in requests if e.outcome == audit.Outcome.DENIED.value]
    assert [str(e.details["reason"]) for e in refused] == ["role"]
    refused = [e for e in approvals if e.outcome == audit.Outcome.DENIED.value]
    assert sorted(str(e.details["reason"]) for e in refused) == ["own_request"] + ["role"] * 3


def exchange_events(exchange: Exchange, action: Action) -> list[audit.AuditRecord]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.connect() as connection:
            return audit.search(connection, audit.EventFilter(action=action.value)).records
    finally:
        engine.dispose()


def test_the_certificate_verifies_offline_and_fails_with_one_byte_changed(
    exchange: Exchange, tmp_path: Path
) -> None:
    exchange.upload("uploader", BODY, "minutes.txt")
    _close(exchange)
    asked = exchange.client.post(
        "/api/v1/reviews/SWG24/destruction/request", headers=exchange.tokens["dpo"]
    )
    assert asked.status_code == 201
    approved = exchange.client.post(
        "/api/v1/reviews/SWG24/destruction/approve", headers=exchange.tokens["admin"]
    )
    assert approved.status_code == 200
    ran = portal(exchange, "destroy", "run", "--review", "SWG24")
    assert ran.exit_code == 0, ran.output
    reference = ran.output.strip()

    public_key = tmp_path / "portal.pem"
    assert portal(exchange, "audit", "public-key", "-o", str(public_key)).exit_code == 0
    exported = tmp_path / "certificate.json"
    result = portal(exchange, "certificate", "export", reference.lower(), "-o", str(exported))
    assert result.exit_code == 0, result.output
    data = exported.read_bytes()
    # Found: the export was not audited. It is, like the audit log's, by the named person.
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.connect() as connection:
            [event] = audit.search(
                connection, audit.EventFilter(action="destruction.certificate_exported"), limit=10
            ).records
    finally:
        engine.dispose()
    assert event.target == audit.Target(TargetKind.CERTIFICATE, reference)
    assert event.actor.user_id == exchange.world.people["dpo"].user_id
    assert event.review == "SWG24" and event.outcome == "success"
    assert event.details == {"format": "certificate", "size_bytes": len(data) - 1}
    # Without a named person it is refused and nothing is written.
    unnamed = tmp_path / "unnamed.json"
    refused = CliRunner().invoke(
        main,
        ["certificate", "export", reference, "-o", str(unnamed)],
        env={
            "PORTAL_HOME": str(exchange.world.settings.home),
            "PORTAL_DATABASE_URL": exchange.world.settings.database_url,
            "PORTAL_CLAMD": str(exchange.world.settings.clamd),
            "PORTAL_OPERATOR": None,
        },
    )
    assert refused.exit_code == 2 and "Say who you are" in refused.output
    assert not unnamed.exists()
    served = exchange.client.get(
        f"/api/v1/certificates/{reference}", headers=exchange.tokens["dpo"]
    )
    assert served.content + b"\n" == data  # the API serves the same bytes
    envelope = json.loads(data)
    assert canonical(envelope) + b"\n" == data
    assert envelope["public_key_fingerprint"] == audit.load_public_key(public_key).fingerprint

    ok = portal(exchange, "certificate", "verify", str(exported), "--public-key", str(public_key))
    assert ok.exit_code == 0 and f"valid: certificate {reference}" in ok.output, ok.output
    # Without --public-key: this installation's own key.
    assert portal(exchange, "certificate", "verify", str(exported)).exit_code == 0

    # One byte changed anywhere (a digit of a size, a letter of a hash, the signature, the
    # reference, a brace) fails.
    tampered = tmp_path / "tampered.json"
    body_at = data.index(b'"sha256":"') + 12
    for position in (1, body_at, data.index(b'"signature":"') + 15, len(data) - 2, 40):
        changed = bytearray(data)
        changed[position] = changed[position] ^ 0x01
        tampered.write_bytes(bytes(changed))
        bad = portal(
            exchange, "certificate", "verify", str(tampered), "--public-key", str(public_key)
        )
        assert bad.exit_code == 1 and "INVALID" in bad.output, (position, bad.output)
    # Re-encoded (same content, other whitespace): refused, it is not what was signed.
    tampered.write_bytes(json.dumps(envelope, indent=1).encode())
    assert (
        portal(
            exchange, "certificate", "verify", str(tampered), "--public-key", str(public_key)
        ).exit_code
        == 1
    )

    # Another key: invalid.
    other = tmp_path / "other.pem"
    other.write_bytes(audit.SigningKey.generate().public_key.to_pem())
    wrong_key = portal(exchange, "certificate", "verify", str(exported), "--public-key", str(other))
    assert wrong_key.exit_code == 1 and "another key" in wrong_key.output
    # Usage errors: exit 2.
    assert portal(exchange, "certificate", "verify", str(tmp_path / "missing.json")).exit_code == 2
    assert portal(exchange, "certificate", "export", "0000-0000-0001").exit_code == 2

    # The printable page, for a DPO signed in.
    from tests.portal.conftest import sign_in

    sign_in(exchange.client, exchange.world.people["dpo"], exchange.world.clock)
    page = exchange.client.get(f"/destruction/certificates/{reference}")
    assert page.status_code == 200 and reference in page.text
    assert "NIST SP 800-88" in page.text and "minutes.txt" not in page.text

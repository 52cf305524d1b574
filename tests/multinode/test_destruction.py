"""Destruction with both nodes' workers running: each document destroyed exactly once, one
certificate that verifies, and no node, nor the storage library itself, opens what was destroyed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import distinct
from sqlmodel import Session, col, func, select

from portal.audit_vocabulary import Action
from portal.blobs import open_vault
from portal.destruction.models import Certificate, DestructionItem, DestructionRun
from portal.exchange.models import Document, DocumentState, Review, ReviewState
from storage import DocumentKey, KeyDestroyed

from .topology import S3_CREDENTIALS, Node, Topology, new_review_code, wait_for
from .traffic import events, post_document, record, wait_until_scanned

pytestmark = pytest.mark.slow

DOCUMENTS = 6


def _review_state(topology: Topology, code: str) -> ReviewState:
    with Session(topology.engine) as db:
        return db.exec(select(Review).where(col(Review.code) == code)).one().state


def _destroy_run(node: Node, code: str) -> tuple[int, str]:
    done = node.portal("destroy", "run", "--review", code, "--by", "dpo@inspectorate.example")
    return done.returncode, done.stdout + done.stderr


def test_both_workers_destroy_each_document_once_and_node_b_opens_none(
    topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = topology.open_review(
        new_review_code("DES"), through=topology.proxy_url, retention_days=0
    )
    token, inspector = topology.tokens["uploader"], topology.tokens["inspector"]
    marker = b"DESTROYED-RECORD-MARKER"
    with httpx.Client(base_url=topology.proxy_url, timeout=30) as client:
        references = []
        for n in range(DOCUMENTS):
            stored = post_document(client, token, code, marker + record(f"to destroy {n}", 4000))
            assert stored.status_code == 201, stored.text
            references.append(stored.json()["reference"])
        for reference in references:
            assert wait_until_scanned(client, token, reference)["state"] == "available"

    # A copy of one document's row and ciphertext, as a backup taken before destruction holds.
    with Session(topology.engine) as db:
        row = db.exec(select(Document).where(col(Document.reference) == references[0])).one()
        copy = DocumentKey(review=code, document_id=row.reference, wrapped=row.wrapped_key or b"")
        blob_id = row.blob_id or ""
    for name, value in S3_CREDENTIALS.items():  # boto3 reads them from the environment
        monkeypatch.setenv(name, value)
    vault_b = open_vault(topology.b.settings)
    sealed = b"".join(vault_b.store.get(blob_id))

    # Closed with no retention: due today. The workers of both nodes destroy it on their own.
    with httpx.Client(base_url=topology.a.url, headers=topology.tokens["lead"], timeout=30) as on_a:
        closed = on_a.post(f"/api/v1/reviews/{code}/close", json={})
        assert closed.status_code == 200, closed.text
    wait_for(
        f"review {code} destroyed by the workers",
        lambda: _review_state(topology, code) is ReviewState.destroyed or None,
    )
    # Runs started by hand on both nodes afterwards find nothing left to do.
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda node: _destroy_run(node, code), [topology.a, topology.b]))
    for status, output in runs:
        assert status == 0 and output.strip() == "", output

    with Session(topology.engine) as db:
        review = db.exec(select(Review).where(col(Review.code) == code)).one()
        run_ids = select(DestructionRun.id).where(col(DestructionRun.review_id) == review.id)
        in_runs = col(DestructionItem.run_id).in_(run_ids)
        items = db.exec(select(func.count()).select_from(DestructionItem).where(in_runs)).one()
        documents = db.exec(
            select(func.count(distinct(col(DestructionItem.document_id)))).where(in_runs)
        ).one()
        certificates = db.exec(
            select(Certificate.reference).where(col(Certificate.review_id) == review.id)
        ).all()
        left = db.exec(
            select(func.count())
            .select_from(Document)
            .where(
                col(Document.review_id) == review.id,
                col(Document.state) != DocumentState.destroyed,
            )
        ).one()
    # One destruction item per document (the column is unique), one event per document.
    assert items == documents == DOCUMENTS and left == 0
    destroyed = events(topology.engine, Action.DOCUMENT_DESTROYED)
    assert {reference: destroyed.get(reference) for reference in references} == dict.fromkeys(
        references, 1
    )
    assert len(certificates) == 1
    certificate = certificates[0]

    # The certificate verifies offline, with the published public key alone.
    exported, public_key = tmp_path / "certificate.json", tmp_path / "portal-public-key.pem"
    for args in (
        (
            "certificate",
            "export",
            certificate,
            "-o",
            str(exported),
            "--by",
            "dpo@inspectorate.example",
        ),
        ("audit", "public-key", "-o", str(public_key)),
    ):
        done = topology.b.portal(*args)
        assert done.returncode == 0, done.stdout + done.stderr
    verified = topology.a.portal(
        "certificate", "verify", str(exported), "--public-key", str(public_key)
    )
    assert verified.returncode == 0 and verified.stdout.startswith("valid:"), (
        verified.stdout + verified.stderr
    )
    assert f"{DOCUMENTS} document(s)" in verified.stdout

    # Node B answers the documented refusal (410 destroyed), never content.
    with httpx.Client(base_url=topology.b.url, headers=inspector, timeout=30) as on_b:
        for reference in references:
            answer = on_b.get(f"/api/v1/documents/{reference}/content")
            assert answer.status_code == 410, answer.text
            assert answer.json()["error"]["code"] == "destroyed"
            assert marker not in answer.content
    # And node B's vault, given the copy (even with its blob put back), refuses: the key is gone.
    assert vault_b.keystore.is_destroyed(code)
    vault_b.store.put(blob_id, [sealed])
    try:
        with pytest.raises(KeyDestroyed):
            b"".join(vault_b.read(copy, blob_id))
    finally:
        vault_b.destroy_document(blob_id)

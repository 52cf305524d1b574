"""Several workers at once on PostgreSQL and SeaweedFS (a versioned bucket): each document is
destroyed exactly once, one certificate per review, no blob or version left; a run killed with
SIGKILL half-way completes on the next run."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Select, distinct, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import audit
from audit.tables import event_table
from portal.accounts import users
from portal.accounts.models import Role
from portal.audit_vocabulary import Action
from portal.auditing import SIGNING_KEY_FILE, Auditor
from portal.blobs import open_vault
from portal.db import make_engine
from portal.destruction.models import Certificate, DestructionItem, DestructionRun
from portal.exchange import reviews
from portal.exchange.acting import Acting
from portal.exchange.models import Document, DocumentKind, DocumentState, Review, ReviewState
from portal.models import OrganisationKind
from portal.references import new_reference
from portal.settings import Settings
from portal.setup import initialise
from storage import DocumentKey, KeyDestroyed, StorageError, Vault
from tests.harness.seaweedfs import S3Server
from tests.harness.waiting import PATIENCE

REPO = Path(__file__).resolve().parents[3]
WORKERS = 4
BULK = 2000
KILLED = 200

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def s3_settings(
    tmp_path: Path, pg_database_url: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, dict[str, str]]:
    bucket = "destroy-" + secrets.token_hex(4)
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    # Versioned: a plain DELETE would leave every old version of the ciphertext behind.
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    env = {
        "PORTAL_HOME": str(tmp_path / "home"),
        "PORTAL_DATABASE_URL": pg_database_url,
        "PORTAL_STORAGE": f"s3://{bucket}/blobs",
        "PORTAL_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "portal-test",
        "AWS_SECRET_ACCESS_KEY": "portal-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PORTAL_OPERATOR": DPO,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_environ(env)
    list(initialise(settings))
    return settings, env


DPO = "dpo@inspectorate.example"


def _populate(engine: Engine, vault: Vault, auditor: Auditor, counts: dict[str, int]) -> None:
    """Reviews closed long ago, with documents made through the vault (small bodies, no HTTP)."""
    now = datetime.now(UTC)
    with Session(engine) as db:
        org = users.add_organisation(
            db, slug="aberdeen-city", name="Aberdeen", kind=OrganisationKind.authority, now=now
        )
        inspectorate = users.add_organisation(
            db,
            slug="inspectorate",
            name="Inspectorate",
            kind=OrganisationKind.inspectorate,
            now=now,
        )
        lead, _ = users.add_user(
            db,
            email="lead@inspectorate.example",
            role=Role.lead,
            organisation=inspectorate,
            now=now,
        )
        # The DPO who runs `portal destroy run` (PORTAL_OPERATOR in the fixture's environment).
        users.add_user(db, email=DPO, role=Role.dpo, organisation=inspectorate, now=now)
        db.commit()
        acting = Acting.operator(now, actor=audit.Actor.system("scale_test"))
        for code in counts:
            plan = reviews.ReviewPlan(
                code=code,
                title="Scale review",
                legal_basis="Section 53",
                opens_on=date(2026, 1, 1),
                closes_on=date(2026, 2, 1),
                retention_days=30,
            )
            review = reviews.create_review(db, auditor, acting, plan, lead=lead, vault=vault)
            review.state = ReviewState.closed
            db.add(review)
        db.commit()
        assert org.id is not None and lead.id is not None
        org_id, lead_id = org.id, lead.id
        review_ids: dict[str, int] = {}
        for code in counts:
            review_id = db.exec(select(Review.id).where(Review.code == code)).one()
            assert review_id is not None
            review_ids[code] = review_id

    def write(job: tuple[str, int]) -> Document:
        code, n = job
        reference = new_reference()
        key = vault.issue_document_key(review=code, document_id=reference)
        blob = vault.write(key, [f"record {n} of {code}\n".encode() * 4])
        if n % 100 == 0:
            # A second version of the same object: destruction must remove every version.
            vault.store.put(blob.blob_id, [b"".join(vault.store.get(blob.blob_id))])
        return Document(
            reference=reference,
            review_id=review_ids[code],
            organisation_id=org_id,
            kind=DocumentKind.record,
            state=DocumentState.available,
            size=blob.size,
            sha256=blob.sha256,
            content_type="text/plain",
            wrapped_key=key.wrapped,
            filename_sealed=vault.seal_secret(key, b"case-notes.txt"),
            blob_id=blob.blob_id,
            uploaded_by=lead_id,
            uploaded_at=now,
        )

    jobs = [(code, n) for code, count in counts.items() for n in range(count)]
    with ThreadPoolExecutor(10) as pool:  # boto3's connection pool holds 10
        documents = list(pool.map(write, jobs))
    with Session(engine) as db:
        db.add_all(documents)
        db.commit()


def _destroy(env: dict[str, str], code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from portal.cli import main; main()",
            "destroy",
            "run",
            "--review",
            code,
        ],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _count(engine: Engine, query: Select[int]) -> int:
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def _items(engine: Engine, code: str) -> int:
    return _count(
        engine,
        select(func.count())
        .select_from(DestructionItem)
        .join(DestructionRun, col(DestructionRun.id) == col(DestructionItem.run_id))
        .join(Review, col(Review.id) == col(DestructionRun.review_id))
        .where(Review.code == code),
    )


def _check_destroyed_once(engine: Engine, code: str, count: int) -> None:
    assert _items(engine, code) == count
    destroyed = (event_table.c.action == Action.DOCUMENT_DESTROYED.value) & (
        event_table.c.review == code
    )
    events = select(func.count()).select_from(event_table).where(destroyed)
    distinct_docs = select(func.count(distinct(event_table.c.document))).where(destroyed)
    assert _count(engine, events) == count == _count(engine, distinct_docs)
    certificates = (
        select(func.count())
        .select_from(Certificate)
        .join(Review, col(Review.id) == col(Certificate.review_id))
        .where(Review.code == code)
    )
    assert _count(engine, certificates) == 1
    with Session(engine) as db:
        review = db.exec(select(Review).where(Review.code == code)).one()
        assert review.state is ReviewState.destroyed
        left = db.exec(
            select(func.count())
            .select_from(Document)
            .where(Document.review_id == review.id, Document.state != DocumentState.destroyed)
        ).one()
        assert left == 0


def test_four_workers_destroy_each_document_once_and_a_killed_run_completes(
    s3_settings: tuple[Settings, dict[str, str]], s3_server: S3Server
) -> None:
    settings, env = s3_settings
    engine = make_engine(settings.database_url)
    vault = open_vault(settings)
    auditor = Auditor.from_key_dir(settings.key_dir)
    started = time.monotonic()
    _populate(engine, vault, auditor, {"BULK": BULK, "KILLED": KILLED})
    bucket, prefix = settings.storage.bucket, settings.storage.prefix + "/"
    client = s3_server.client()

    def versions() -> int:
        found = 0
        for page in client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            found += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        return found

    assert versions() == BULK + KILLED + (BULK + KILLED) // 100
    # A copy of one document's row and ciphertext, taken before destruction.
    with Session(engine) as db:
        copy = db.exec(select(Document).where(col(Document.blob_id).is_not(None)).limit(1)).one()
        copied_review = db.get(Review, copy.review_id)
        assert copied_review is not None and copy.blob_id is not None
        review_code, blob_id = copied_review.code, copy.blob_id
    sealed = b"".join(vault.store.get(blob_id))
    setup = time.monotonic() - started

    # Four workers at once over the same review.
    workers = [_destroy(env, "BULK") for _ in range(WORKERS)]
    outputs = [worker.communicate(timeout=180) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
    parallel = time.monotonic() - started
    issued = [line for out, _ in outputs for line in out.decode().split()]
    assert len(issued) == 1, outputs  # one certificate, from whichever worker finished
    _check_destroyed_once(engine, "BULK", BULK)

    # A run killed half-way (SIGKILL: no clean-up of any kind), then run again.
    victim = _destroy(env, "KILLED")
    deadline = time.monotonic() + PATIENCE
    while _items(engine, "KILLED") == 0:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = _items(engine, "KILLED")
    assert 0 < done_before < KILLED, "the run was not killed half-way"
    rerun = _destroy(env, "KILLED")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    assert len(out.split()) == 1
    _check_destroyed_once(engine, "KILLED", KILLED)

    # No blob and no version of any blob is left in the bucket.
    assert versions() == 0
    # The copy taken before can no longer be decrypted: the review key is gone.
    assert vault.keystore.is_destroyed(review_code)
    key = DocumentKey(
        review=review_code, document_id=copy.reference, wrapped=copy.wrapped_key or b""
    )
    vault.store.put(blob_id, [sealed])  # even put back from a backup
    with pytest.raises((KeyDestroyed, StorageError)):
        b"".join(vault.read(key, blob_id))
    vault.store.delete(blob_id)

    signing = audit.load_signing_key(settings.key_dir / SIGNING_KEY_FILE)
    with engine.connect() as connection:
        assert audit.verify_log(connection, [signing.public_key]).ok
    engine.dispose()
    print(
        f"setup {setup:.1f}s, 4 workers to {parallel:.1f}s, total {time.monotonic() - started:.1f}s"
    )

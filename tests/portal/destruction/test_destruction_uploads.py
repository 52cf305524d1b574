"""Destruction takes the review's unfinished resumable uploads with it, and certifies it.

A review destroyed while uploads are still in progress (some parts received, or every byte and
the document never made): their part blobs are deleted from the real store (a local folder, and a
versioned bucket on SeaweedFS, every version), no upload session row is left holding a wrapped key
or a sealed file name, and the certificate counts them. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from portal.cli import main
from portal.db import make_engine
from portal.destruction.execution import Destroyer
from portal.destruction.models import Certificate, DestroyedUpload
from portal.destruction.services import destroyer_for
from portal.runtime import build_runtime
from portal.settings import ClamdAddress, Settings
from portal.setup import initialise
from portal.uploads.models import UploadPart, UploadSession, UploadState
from portal.worker import Worker
from tests.harness.clamd import TEST_MAX_UPLOAD_BYTES
from tests.portal.conftest import Exchange, api_token, cheap_hasher, sign_in
from tests.portal.uploads.test_recovery import leave_completing
from tests.portal.uploads.test_tus import RECORD, patch, start


@pytest.fixture(params=["folder", "s3"])
def settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    clamd_address: ClamdAddress,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    env = {
        "PORTAL_HOME": str(tmp_path / "home"),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_CLAMD": str(clamd_address),
        "PORTAL_MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES),
    }
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = "uploads-" + secrets.token_hex(4)
        server.client().create_bucket(Bucket=bucket)
        # Versioned: a plain DELETE would leave every old version of a part behind.
        server.client().put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        env["PORTAL_STORAGE"] = f"s3://{bucket}/blobs"
        env["PORTAL_S3_ENDPOINT_URL"] = server.endpoint_url
        for name, value in {
            "AWS_ACCESS_KEY_ID": "portal-test",
            "AWS_SECRET_ACCESS_KEY": "portal-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
    settings = Settings.from_environ(env)
    list(initialise(settings))
    return settings


def stored(settings: Settings, request: pytest.FixtureRequest) -> set[str]:
    """What the store itself holds, read past the portal: file names, or every object version."""
    if settings.storage.kind == "file":
        assert settings.storage.path is not None
        return {path.name for path in settings.storage.path.rglob("*") if path.is_file()}
    client = request.getfixturevalue("s3_server").client()
    prefix = settings.storage.prefix + "/"
    names = set()
    for page in client.get_paginator("list_object_versions").paginate(
        Bucket=settings.storage.bucket, Prefix=prefix
    ):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            names.add(item["Key"].removeprefix(prefix))
    return names


def rows(settings: Settings) -> tuple[list[UploadSession], list[UploadPart]]:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            return list(db.exec(select(UploadSession)).all()), list(
                db.exec(select(UploadPart)).all()
            )
    finally:
        engine.dispose()


def half_finished_uploads(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], set[str]]:
    """Three uploads: one with two of its parts in, one left ``completing`` by a process that
    died, one finished (its session still holds the sealed file name). Their addresses, and the
    part blobs' ids."""
    receiving = start(exchange, RECORD)
    assert patch(exchange, receiving, 0, RECORD[:1000]).status_code == 204
    assert patch(exchange, receiving, 1000, RECORD[1000:5000]).status_code == 204
    completing = leave_completing(exchange, monkeypatch, RECORD)
    finished = start(exchange, RECORD)
    assert patch(exchange, finished, 0, RECORD).status_code == 204
    sessions, parts = rows(exchange.world.settings)
    assert len(sessions) == 3 and len(parts) == 4
    # The unfinished ones hold a wrapped key and a sealed name; the finished one forgot them
    # when its document was made.
    unfinished = [s for s in sessions if s.state != UploadState.complete]
    assert len(unfinished) == 2
    assert all(s.wrapped_key and s.filename_sealed for s in unfinished)
    return [receiving, completing, finished], {part.blob_id for part in parts}


def close_and_bring_forward(exchange: Exchange) -> None:
    """Closed, and destruction brought forward (a DPO asks, an administrator approves), so that
    it runs while the uploads are still live: left idle for a day they would have expired, and
    the worker's upload sweep would have deleted them before destruction came."""
    tokens = exchange.tokens
    for path, who, status in [
        ("close", "lead", 200),
        ("destruction/request", "dpo", 201),
        ("destruction/approve", "admin", 200),
    ]:
        answer = exchange.client.post(f"/api/v1/reviews/SWG24/{path}", headers=tokens[who], json={})
        assert answer.status_code == status, answer.text
    # Within the lease of the upload left completing: the worker has not taken it over (and,
    # the review being closed, discarded it as refused) before destruction comes to it.
    exchange.world.clock.advance(seconds=10)


def certificate_file(exchange: Exchange, reference: str, folder: Path) -> tuple[Path, Any]:
    settings = exchange.world.settings
    env = {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_STORAGE": str(settings.storage),
        "PORTAL_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "PORTAL_OPERATOR": exchange.world.people["dpo"].email,  # exports are audited
    }
    path = folder / "certificate.json"
    exported = CliRunner().invoke(
        main, ["certificate", "export", reference, "-o", str(path)], env=env
    )
    assert exported.exit_code == 0, exported.output
    verified = CliRunner().invoke(main, ["certificate", "verify", str(path)], env=env)
    assert verified.exit_code == 0, verified.output
    return path, verified


def test_destruction_deletes_unfinished_uploads_and_its_certificate_counts_them(
    exchange: Exchange,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    world = exchange.world
    settings = world.settings
    assert exchange.upload("uploader", RECORD, "minutes.txt").status_code == 201
    urls, part_blobs = half_finished_uploads(exchange, monkeypatch)
    assert part_blobs <= stored(settings, request)  # in the store, before
    close_and_bring_forward(exchange)

    worker = Worker(build_runtime(settings, clock=world.clock, password_hasher=cheap_hasher()))
    done = worker.run_round(force=True)
    assert done.expired_uploads == 0  # destruction took them, not the sweep
    report = done.destruction.report
    assert report.ok and report.destroyed == 2
    (reference,) = report.certificates

    # Gone from the store itself, every version; nothing else of the review is left either.
    assert not part_blobs & stored(settings, request)
    assert stored(settings, request) == set()
    # No row keeps a wrapped key or a sealed file name of any of the review's uploads.
    sessions, parts = rows(settings)
    assert sessions == [] and parts == []
    assert report.unfinished_uploads == 2
    assert "2 unfinished upload(s) discarded" in report.summary()
    engine = make_engine(settings.database_url)
    with Session(engine) as db:
        destroyed = list(db.exec(select(DestroyedUpload)).all())
    engine.dispose()
    assert sorted((d.previous_state, d.parts) for d in destroyed) == [
        ("completing", 2),
        ("receiving", 2),
    ]
    assert all(d.blob_ids is None for d in destroyed)  # kept only until verified absent

    # The certificate says so: in its signed content, offline verification and the page.
    path, verified = certificate_file(exchange, reference, tmp_path)
    certificate = json.loads(path.read_bytes())["certificate"]
    assert certificate["unfinished_uploads"] == {"count": 2, "part_blobs_deleted": 4}
    assert certificate["verification"]["part_blobs_checked"] == 4
    assert certificate["verification"]["part_blobs_absent"] == 4
    assert len(certificate["documents"]) == 2
    assert "2 unfinished upload(s) with 4 part(s) discarded" in verified.output
    sign_in(exchange.client, world.people["dpo"], world.clock)
    page = exchange.client.get(f"/destruction/certificates/{reference}")
    assert page.status_code == 200, page.text
    assert "Uploads in progress discarded (2)" in page.text
    assert "their 4 stored parts were deleted (4 of 4 checked absent)" in page.text

    # A client coming back to resume finds nothing there.
    token = api_token(world, "uploader")
    for url in urls:
        status = exchange.client.head(url, headers={"Tus-Resumable": "1.0.0", **token})
        assert status.status_code == 404


@pytest.mark.parametrize("settings", ["folder"], indirect=True)
def test_a_run_killed_after_the_uploads_batch_certifies_them_on_the_next_run(
    exchange: Exchange,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    world = exchange.world
    settings = world.settings
    _, part_blobs = half_finished_uploads(exchange, monkeypatch)
    close_and_bring_forward(exchange)
    runtime = build_runtime(settings, clock=world.clock, password_hasher=cheap_hasher())

    class Killed(Exception):
        pass

    def dies(self: Destroyer, blob_id: str) -> bool:
        raise Killed()

    # Killed right after the batch committed, before a single part blob was deleted.
    with monkeypatch.context() as patched:
        patched.setattr(Destroyer, "_delete_blob", dies)
        with pytest.raises(Killed):
            destroyer_for(runtime).run_due(now=world.clock())
    assert rows(settings)[0] == []  # the sessions' keys are gone with their rows ...
    assert part_blobs <= stored(settings, request)  # ... their parts not yet

    again = destroyer_for(runtime).run_due(now=world.clock())
    assert again.ok and len(again.certificates) == 1
    assert not part_blobs & stored(settings, request)
    engine = make_engine(settings.database_url)
    with Session(engine) as db:
        (certificate,) = db.exec(select(Certificate)).all()
    engine.dispose()
    content = json.loads(certificate.body)
    assert content["unfinished_uploads"] == {"count": 2, "part_blobs_deleted": 4}
    assert content["verification"]["part_blobs_absent"] == 4

"""Backup and restore (docs/operations.md): the restore drill, on PostgreSQL with SeaweedFS's S3
and on SQLite with a local folder, and the hostile cases next to it.

The drill is the one the runbook describes: two reviews with scanned documents, a backup, one
review destroyed, the backup from before its destruction restored into a fresh installation (new
home, new empty database, new empty blob store) that uses the same key folder. The live review
comes back whole; the destroyed one's content, though its rows and blobs are restored, stays
beyond use because its key is gone from the key service (SPEC §4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql
from sqlalchemy import MetaData, func, select
from sqlmodel import Session, col
from starlette.testclient import TestClient

from portal.blobs import open_blob_store, open_vault
from portal.cli import main
from portal.db import make_engine
from portal.exchange.documents import key_of
from portal.exchange.models import Document, Review
from portal.runtime import build_runtime
from portal.settings import ClamdAddress, Settings
from portal.setup import initialise
from portal.web.app import create_app
from portal.worker import Worker
from storage import KeyDestroyed
from tests.harness.clamd import TEST_MAX_UPLOAD_BYTES
from tests.harness.database import sqlalchemy_url
from tests.harness.seaweedfs import S3Server
from tests.portal.conftest import Exchange, World, cheap_hasher

BACKENDS = ["sqlite+folder", "postgresql+s3"]
DESTROYED, KEPT = "SWG24", "KEEP25"  # SWG24 is the exchange fixture's review
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "portal-test",
    "AWS_SECRET_ACCESS_KEY": "portal-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# -- installations -------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clamd_address: ClamdAddress,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The installation that is backed up (overrides conftest's, which is always a local folder)."""
    env = {
        "PORTAL_HOME": str(tmp_path / "home"),
        "PORTAL_CLAMD": str(clamd_address),
        "PORTAL_MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES),
    }
    if request.param == "postgresql+s3":
        env["PORTAL_DATABASE_URL"] = request.getfixturevalue("pg_database_url")
        env.update(_new_bucket(request, "source"))
        for name, value in S3_CREDENTIALS.items():
            monkeypatch.setenv(name, value)  # the app's and the commands' boto3 read them
    else:
        env["PORTAL_DATABASE_URL"] = request.getfixturevalue("sqlite_database_url")
    settings = Settings.from_environ(env)
    list(initialise(settings))
    return settings


def _new_bucket(request: pytest.FixtureRequest, name: str) -> dict[str, str]:
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = f"{name}-{secrets.token_hex(4)}"
    server.client().create_bucket(Bucket=bucket)
    return {"PORTAL_STORAGE": f"s3://{bucket}/blobs", "PORTAL_S3_ENDPOINT_URL": server.endpoint_url}


@pytest.fixture
def fresh(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A fresh installation's environment: new home, new empty database and blob store, and the
    same key folder as ``settings`` (the key service is shared, never restored)."""
    env = {
        "PORTAL_HOME": str(tmp_path / "restored"),
        "PORTAL_KEY_DIR": str(settings.key_dir),
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
    }
    created: str | None = None
    if settings.storage.kind == "s3":
        admin: str = request.getfixturevalue("pg_admin_url")
        created = f"portal_restore_{secrets.token_hex(6)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(created)))
        env["PORTAL_DATABASE_URL"] = sqlalchemy_url(admin.rsplit("/", 1)[0] + "/" + created)
        env.update(_new_bucket(request, "restored"))
    try:
        yield env
    finally:
        if created is not None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(created)
                    )
                )


def _env(settings: Settings) -> dict[str, str]:
    return dict(settings.sources)


def portal(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


# -- reviews and documents -------------------------------------------------------------------------


@dataclass
class Uploaded:
    reference: str
    body: bytes
    sha256: str


def _second_review(exchange: Exchange) -> None:
    client, lead = exchange.client, exchange.tokens["lead"]
    created = client.post(
        "/api/v1/reviews",
        json={
            "code": KEPT,
            "title": "Adult support and protection review",
            "legal_basis": "Public Services Reform (Scotland) Act 2010, section 53",
            "opens_on": "2026-11-01",
            "closes_on": "2027-03-31",
            "retention_days": 90,
            "organisations": ["aberdeen-city"],
        },
        headers=lead,
    )
    assert created.status_code == 201, created.text
    member = client.post(
        f"/api/v1/reviews/{KEPT}/members",
        json={"email": exchange.world.people["inspector"].email},
        headers=lead,
    )
    assert member.status_code == 200, member.text
    opened = client.post(f"/api/v1/reviews/{KEPT}/open", headers=lead, json={})
    assert opened.status_code == 200, opened.text


def _upload(exchange: Exchange, review: str, body: bytes, name: str) -> Uploaded:
    answer = exchange.client.post(
        f"/api/v1/reviews/{review}/documents",
        content=body,
        headers={
            **exchange.tokens["uploader"],
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert answer.status_code == 201, answer.text
    return Uploaded(answer.json()["reference"], body, answer.json()["sha256"])


def _two_reviews(exchange: Exchange) -> dict[str, list[Uploaded]]:
    """SWG24 and KEEP25, two scanned, available documents each."""
    _second_review(exchange)
    documents = {
        review: [
            _upload(
                exchange,
                review,
                f"{review} case file {n}: assessment and plan.\n".encode() * (40 + n),
                f"{review.lower()}-case-{n}.txt",
            )
            for n in (1, 2)
        ]
        for review in (DESTROYED, KEPT)
    }
    world = exchange.world
    Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    ).run_round(force=True)
    for uploaded in documents[DESTROYED] + documents[KEPT]:
        meta = exchange.client.get(
            f"/api/v1/documents/{uploaded.reference}", headers=exchange.tokens["inspector"]
        )
        assert meta.json()["state"] == "available", meta.text
    return documents


def _destroy(exchange: Exchange, review: str) -> None:
    """The real destruction path: closed, brought forward by a DPO, approved by a second person,
    run by ``portal destroy run``."""
    client, tokens = exchange.client, exchange.tokens
    closed = client.post(f"/api/v1/reviews/{review}/close", headers=tokens["lead"], json={})
    assert closed.status_code == 200, closed.text
    early = f"/api/v1/reviews/{review}/destruction"
    assert client.post(f"{early}/request", headers=tokens["dpo"]).status_code == 201
    assert client.post(f"{early}/approve", headers=tokens["admin"]).status_code == 200
    ran = portal(
        _env(exchange.world.settings),
        "destroy",
        "run",
        "--review",
        review,
        "--by",
        exchange.world.people["dpo"].email,
    )
    assert ran.exit_code == 0, ran.output


@pytest.fixture
def backed_up(exchange: Exchange, tmp_path: Path) -> Path:
    """One available document in SWG24, and a backup of the installation."""
    _upload(exchange, DESTROYED, b"Minutes of the case conference.\n" * 30, "minutes.txt")
    folder = tmp_path / "backup"
    made = portal(_env(exchange.world.settings), "backup", str(folder))
    assert made.exit_code == 0, made.output
    return folder


# -- what the tests look at --------------------------------------------------------------------


@contextmanager
def restored_app(env: dict[str, str], world: World) -> Iterator[TestClient]:
    app = create_app(Settings.from_environ(env), clock=world.clock, password_hasher=cheap_hasher())
    with TestClient(app, follow_redirects=False) as client:
        yield client


def database_state(database_url: str) -> dict[str, int]:
    """Rows per table (and the audit head's sequence and hash): what "changes nothing" means."""
    engine = make_engine(database_url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            state = {
                name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in sorted(tables.tables.items())
            }
            if "audit_head" in tables.tables:
                head = connection.execute(select(tables.tables["audit_head"])).one()
                state["audit_head.seq"] = head.seq
                state["audit_head.hash:" + head.hash] = 1
    finally:
        engine.dispose()
    return state


def blob_ids(settings: Settings) -> list[str]:
    if settings.storage.kind == "file" and not (settings.storage.path or Path()).exists():
        return []
    return sorted(info.blob_id for info in open_blob_store(settings).list_blobs())


def key_material(key_dir: Path) -> list[tuple[str, bytes]]:
    """Every key file's bytes, and the forms they could be copied in (hex, base64, PEM lines)."""
    needles = [("PEM header", b"PRIVATE KEY")]
    for path in sorted(key_dir.rglob("*")):
        raw = path.read_bytes() if path.is_file() else b""
        if not raw:
            continue  # the lock file and the tombstones are empty: nothing to leak
        name = str(path.relative_to(key_dir))
        needles += [(name, raw), (name + " hex", raw.hex().encode())]
        needles.append((name + " base64", base64.b64encode(raw)))
        needles += [(name + " line", line) for line in raw.splitlines() if len(line) >= 16]
    return needles


def backup_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the drill ---------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_the_restore_drill_restores_the_live_review_and_not_the_destroyed_one(
    exchange: Exchange, fresh: dict[str, str], tmp_path: Path
) -> None:
    world = exchange.world
    documents = _two_reviews(exchange)
    folder = tmp_path / "backup"
    made = portal(_env(world.settings), "backup", str(folder))
    assert made.exit_code == 0, made.output
    manifest = json.loads((folder / "manifest.json").read_text())

    _destroy(exchange, DESTROYED)
    for uploaded in documents[DESTROYED]:
        gone = exchange.client.get(
            f"/api/v1/documents/{uploaded.reference}/content", headers=exchange.tokens["inspector"]
        )
        assert gone.status_code == 410  # destroyed in the installation that was backed up

    restored = portal(fresh, "restore", str(folder))
    assert restored.exit_code == 0, restored.output
    assert f"review {DESTROYED}: its key was destroyed" in restored.output
    assert f"review {KEPT}" not in restored.output
    restored_settings = Settings.from_environ(fresh)
    assert (
        database_state(restored_settings.database_url)["audit_head.seq"]
        == (manifest["audit"]["head_seq"])
    )

    with restored_app(fresh, world) as client:
        # The tokens were made before the backup: they are in the restored database.
        inspector = exchange.tokens["inspector"]
        for uploaded in documents[KEPT]:
            answer = client.get(
                f"/api/v1/documents/{uploaded.reference}/content", headers=inspector
            )
            assert answer.status_code == 200, answer.text
            assert answer.content == uploaded.body
            assert hashlib.sha256(answer.content).hexdigest() == uploaded.sha256
        for uploaded in documents[DESTROYED]:
            answer = client.get(
                f"/api/v1/documents/{uploaded.reference}/content", headers=inspector
            )
            assert answer.status_code == 410, answer.text
            error = answer.json()["error"]
            assert error["code"] == "destroyed" and uploaded.reference in error["message"]
            assert uploaded.body[:20] not in answer.content
            page = client.get(f"/api/v1/documents/{uploaded.reference}", headers=inspector)
            assert page.status_code == 200 and page.json()["filename"] is None, page.text

    # The destroyed review's rows and blobs came back from the backup; its key did not.
    vault = open_vault(restored_settings)
    engine = make_engine(restored_settings.database_url)
    try:
        with Session(engine) as db:
            review = db.scalars(select(Review).where(col(Review.code) == DESTROYED)).one()
            rows = db.scalars(select(Document).where(col(Document.review_id) == review.id)).all()
            assert len(rows) == 2
            for document in rows:
                assert document.blob_id and vault.store.exists(document.blob_id)
                with pytest.raises(KeyDestroyed):
                    vault.read(key_of(document, review), document.blob_id)
    finally:
        engine.dispose()

    verified = portal(fresh, "audit", "verify", "--by", "dpo@inspectorate.example")
    assert verified.exit_code == 0, verified.output


def test_a_backup_is_private_lists_every_file_and_holds_no_key_material(
    exchange: Exchange, tmp_path: Path
) -> None:
    documents = _two_reviews(exchange)
    settings = exchange.world.settings
    folder = tmp_path / "backup"
    made = portal(_env(settings), "backup", str(folder))
    assert made.exit_code == 0, made.output

    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path

    files = backup_files(folder)
    manifest = json.loads(files["manifest.json"].read_text())
    listed = [manifest["database"], *manifest["blobs"]["files"]]
    assert sorted(files) == sorted(["manifest.json", "manifest.sig", *(e["file"] for e in listed)])
    for entry in listed:
        assert hashlib.sha256(files[entry["file"]].read_bytes()).hexdigest() == entry["sha256"]
    assert sorted(e["file"].removeprefix("blobs/") for e in manifest["blobs"]["files"]) == (
        blob_ids(settings)
    )
    assert manifest["blobs"]["count"] == len(documents[DESTROYED]) + len(documents[KEPT])
    assert manifest["database"]["kind"] == settings.database_url.split(":")[0].split("+")[0]
    assert manifest["schema_revision"] == database_state_revision(settings)
    assert manifest["audit"]["head_seq"] > 0
    auditor = build_runtime(settings).auditor
    assert manifest["audit"]["signing_key_fingerprint"] == auditor.log.public_key.fingerprint

    contents = {name: path.read_bytes() for name, path in files.items()}
    needles = key_material(settings.key_dir)
    assert any(name.startswith("vault/reviews/") for name, _ in needles)  # review keys exist
    for name, needle in needles:
        for file_name, content in contents.items():
            assert needle not in content, f"{name} found in {file_name}"


def database_state_revision(settings: Settings) -> str:
    from portal.migrate import current_revision

    engine = make_engine(settings.database_url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    assert revision is not None
    return revision


# -- hostile -----------------------------------------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("settings", ["sqlite+folder"], indirect=True)
@pytest.mark.parametrize("altered", ["a blob", "the database", "the manifest and a blob"])
def test_a_tampered_backup_is_refused_and_restores_nothing(
    backed_up: Path, fresh: dict[str, str], altered: str
) -> None:
    manifest_file = backed_up / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    blob = backed_up / manifest["blobs"]["files"][0]["file"]
    if altered == "the database":
        _flip_a_byte(backed_up / manifest["database"]["file"])
    else:
        _flip_a_byte(blob)
    if altered == "the manifest and a blob":
        # Someone who can write to the backup, but not sign: the hashes alone would pass.
        manifest["blobs"]["files"][0]["sha256"] = hashlib.sha256(blob.read_bytes()).hexdigest()
        manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    refused = portal(fresh, "restore", str(backed_up))
    assert refused.exit_code == 1, refused.output
    assert "Traceback" not in refused.output
    assert "altered" in refused.output and "Nothing was restored" in refused.output
    if altered != "the manifest and a blob":
        assert (
            manifest["database"]["file"] if altered == "the database" else blob.name
        ) in refused.output
    restored = Settings.from_environ(fresh)
    assert not restored.home.exists()  # no database, no blob folder, nothing
    assert database_state(restored.database_url) == {}


@pytest.mark.parametrize("target", ["database", "blob store"])
def test_a_restore_into_an_installation_that_holds_anything_is_refused_and_changes_nothing(
    backed_up: Path,
    fresh: dict[str, str],
    exchange: Exchange,
    request: pytest.FixtureRequest,
    target: str,
) -> None:
    source = exchange.world.settings
    env = dict(fresh)
    if target == "database":
        env["PORTAL_DATABASE_URL"] = source.database_url  # the live installation's own
    elif source.storage.kind == "s3":
        env["PORTAL_STORAGE"] = str(source.storage)
    else:
        env["PORTAL_STORAGE"] = f"file://{source.storage.path}"
    settings = Settings.from_environ(env)
    before = (database_state(settings.database_url), blob_ids(settings))

    refused = portal(env, "restore", str(backed_up))
    assert refused.exit_code == 2, refused.output
    assert "is not empty" in refused.output and "Nothing was changed" in refused.output
    assert "Traceback" not in refused.output
    assert (database_state(settings.database_url), blob_ids(settings)) == before


@pytest.mark.parametrize("settings", ["sqlite+folder"], indirect=True)
def test_a_backup_refuses_a_folder_that_is_not_empty(exchange: Exchange, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "older-backup.txt").write_bytes(b"kept as it is")
    refused = portal(_env(exchange.world.settings), "backup", str(folder))
    assert refused.exit_code == 2, refused.output
    assert "is not empty" in refused.output
    assert [p.name for p in folder.iterdir()] == ["older-backup.txt"]
    assert (folder / "older-backup.txt").read_bytes() == b"kept as it is"


@pytest.mark.parametrize("settings", ["sqlite+folder"], indirect=True)
def test_a_restore_with_another_key_service_is_refused(
    backed_up: Path, fresh: dict[str, str], tmp_path: Path
) -> None:
    other = Settings.from_environ({"PORTAL_HOME": str(tmp_path / "other")})
    list(initialise(other))  # another installation's keys
    env = {**fresh, "PORTAL_KEY_DIR": str(other.key_dir)}
    refused = portal(env, "restore", str(backed_up))
    assert refused.exit_code == 1, refused.output
    assert "PORTAL_KEY_DIR" in refused.output and "fingerprint" in refused.output
    assert not Settings.from_environ(env).home.exists()


# -- a database from before a review's destruction ---------------------------------------------


@pytest.mark.parametrize("settings", ["sqlite+folder"], indirect=True)
def test_a_document_whose_review_key_was_destroyed_answers_410_not_500(
    exchange: Exchange,
) -> None:
    """The rows of a restored database from before the destruction, and the key service after it:
    the download says "destroyed" (as after a destruction run), never 500, never a byte."""
    body = b"Chronology of the case.\n" * 30
    uploaded = _upload(exchange, DESTROYED, body, "chronology.txt")
    inspector = exchange.tokens["inspector"]
    path = f"/api/v1/documents/{uploaded.reference}"
    assert exchange.client.get(f"{path}/content", headers=inspector).content == body
    open_vault(exchange.world.settings).keystore.destroy_review_key(DESTROYED)

    answer = exchange.client.get(f"{path}/content", headers=inspector)
    assert answer.status_code == 410, answer.text
    assert answer.json()["error"]["code"] == "destroyed"
    assert uploaded.reference in answer.json()["error"]["message"]
    listed = exchange.client.get(f"/api/v1/reviews/{DESTROYED}/documents", headers=inspector)
    assert listed.status_code == 200 and listed.json()["items"][0]["filename"] is None

"""The restore drill: back up, destroy a review, restore the older backup into a new installation.

SPEC §4: destroying a review's key inside the key service puts every copy of its content beyond
use, database and blob backups included, while those backups still restore every live review.
Found by testing: a database + key-folder backup taken before a review's destruction still
decrypted all its documents afterwards, the documented backup wrote a plaintext key tarball and a
0644 dump, and no test restored one. This is exactly the procedure in docs/operations.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, inspect, select, table
from starlette.testclient import TestClient

from portal.app import create_app
from portal.cli import main
from portal.db import make_engine
from portal.runtime import build_runtime
from portal.settings import Settings
from portal.worker import Worker
from tests.portal.conftest import Exchange, World, api_token, cheap_hasher

KEPT = b"Child's plan, kept review.\n" * 200
GONE = b"Case file of a destroyed review.\n" * 200


def portal(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in settings.sources.items()}
    env["PORTAL_HOME"] = str(settings.home)
    env["PORTAL_DATABASE_URL"] = settings.database_url
    env["PORTAL_KEY_DIR"] = str(settings.key_dir)
    return env


def _upload(exchange: Exchange, review: str, body: bytes) -> str:
    answer = exchange.client.post(
        f"/api/v1/reviews/{review}/documents",
        content=body,
        headers={
            **exchange.tokens["uploader"],
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote('notes.txt')}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["reference"])


def _second_review(exchange: Exchange) -> None:
    lead = exchange.tokens["lead"]
    created = exchange.client.post(
        "/api/v1/reviews",
        json={
            "code": "KEEP25",
            "title": "Transitions review",
            "legal_basis": "Public Services Reform (Scotland) Act 2010, section 53",
            "opens_on": "2026-11-01",
            "closes_on": "2028-01-31",
            "retention_days": 365,
            "organisations": ["aberdeen-city"],
        },
        headers=lead,
    )
    assert created.status_code == 201, created.text
    inspector = exchange.world.people["inspector"].email
    assert (
        exchange.client.post(
            "/api/v1/reviews/KEEP25/members", json={"email": inspector}, headers=lead
        ).status_code
        == 200
    )
    opened = exchange.client.post("/api/v1/reviews/KEEP25/open", headers=lead, json={})
    assert opened.status_code == 200


@pytest.fixture
def target(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> dict[str, str]:
    """A new, empty installation on the same key service: PostgreSQL + S3, or SQLite + folder."""
    env = {
        "PORTAL_HOME": str(tmp_path / "restored"),
        "PORTAL_KEY_DIR": str(world.settings.key_dir),
        "PORTAL_CLAMD": str(world.settings.clamd),
    }
    if world.settings.database_url.startswith("sqlite"):
        return env
    s3: Any = request.getfixturevalue("s3_server")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "portal-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "portal-test-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    bucket = request.getfixturevalue("s3_bucket")
    env["PORTAL_DATABASE_URL"] = request.getfixturevalue("empty_pg_database_url")
    env["PORTAL_STORAGE"] = f"s3://{bucket}/restored-{secrets.token_hex(4)}"
    env["PORTAL_S3_ENDPOINT_URL"] = s3.endpoint_url
    return env


def test_a_backup_from_before_destruction_restores_the_rest_and_not_the_destroyed(
    exchange: Exchange, target: dict[str, str], tmp_path: Path
) -> None:
    world = exchange.world
    _second_review(exchange)
    kept = _upload(exchange, "KEEP25", KEPT)
    gone = _upload(exchange, "SWG24", GONE)
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    worker.run_round(force=True)

    # 1. The backup: the database and every blob, each file 0600 in a 0700 folder, no key.
    backup = tmp_path / "backup"
    made = portal(_env(world.settings), "backup", str(backup))
    assert made.exit_code == 0, made.output
    assert backup.stat().st_mode & 0o777 == 0o700
    files = [p for p in backup.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    held = b"".join(p.read_bytes() for p in files)
    assert b"PRIVATE KEY" not in held
    for key_file in world.settings.key_dir.rglob("*"):
        material = key_file.read_bytes() if key_file.is_file() else b""
        if len(material) >= 16 and key_file.name != "installation.json":
            assert material not in held, key_file.name
            for line in material.split():
                assert len(line) < 16 or line not in held, key_file.name
    assert portal(_env(world.settings), "backup", str(backup)).exit_code == 2  # not empty

    # 2. The review SWG24 is destroyed the ordinary way: closed, its date comes, the worker runs.
    closed = exchange.client.post(
        "/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={}
    )
    assert closed.status_code == 200, closed.text
    world.clock.advance(days=91)
    assert worker.run_round().destruction.report.destroyed == 1

    # 3. The pre-destruction backup, into a new installation on the same key service.
    restored = portal(target, "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    assert "SWG24" in restored.output and "beyond use" in restored.output
    verified = portal(target, "audit", "verify")
    assert verified.exit_code == 0, verified.output

    settings = Settings.from_environ(target)
    there = dataclasses.replace(world, settings=settings)
    app = create_app(settings, clock=world.clock, password_hasher=cheap_hasher())
    with TestClient(app) as client:
        inspector = api_token(there, "inspector")
        content = client.get(f"/api/v1/documents/{kept}/content", headers=inspector)
        assert content.status_code == 200, content.text
        assert hashlib.sha256(content.content).digest() == hashlib.sha256(KEPT).digest()
        refused = client.get(f"/api/v1/documents/{gone}/content", headers=inspector)
        assert refused.status_code == 410, refused.text
        assert refused.json()["error"]["code"] == "destroyed"
        assert b"destroyed review" not in refused.content


def test_a_tampered_backup_restores_nothing(
    exchange: Exchange, target: dict[str, str], tmp_path: Path
) -> None:
    _upload(exchange, "SWG24", GONE)
    backup = tmp_path / "backup"
    assert portal(_env(exchange.world.settings), "backup", str(backup)).exit_code == 0
    blob = next(p for p in (backup / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    refused = portal(target, "restore", str(backup))
    assert refused.exit_code == 1, refused.output
    assert "does not match the manifest" in refused.output and "Traceback" not in refused.output
    url = target.get("PORTAL_DATABASE_URL") or Settings.from_environ(target).database_url
    engine = make_engine(url)
    try:
        assert inspect(engine).get_table_names() == []  # nothing was loaded
    finally:
        engine.dispose()


def test_a_restore_into_an_installation_that_holds_anything_is_refused(
    exchange: Exchange, tmp_path: Path
) -> None:
    reference = _upload(exchange, "SWG24", GONE)
    env = _env(exchange.world.settings)
    backup = tmp_path / "backup"
    assert portal(env, "backup", str(backup)).exit_code == 0
    before = _tables_and_rows(exchange.world.settings.database_url)
    refused = portal(env, "restore", str(backup))
    assert refused.exit_code == 2 and "not empty" in refused.output, refused.output
    assert _tables_and_rows(exchange.world.settings.database_url) == before  # nothing changed
    content = exchange.client.get(
        f"/api/v1/documents/{reference}", headers=exchange.tokens["inspector"]
    )
    assert content.status_code == 200


def _tables_and_rows(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(select(func.count()).select_from(table(name))).scalar_one()
                for name in inspect(connection).get_table_names()
            }
    finally:
        engine.dispose()

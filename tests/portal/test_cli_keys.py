"""``portal keys``: rotation re-wraps keys, rewrites no blob, and everything still opens."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlmodel import Session, select

from portal.blobs import open_vault
from portal.cli import main
from portal.db import make_engine
from portal.exchange.models import Document
from storage import DocumentKey, IntegrityError, KeyNotFound
from tests.portal.conftest import Exchange

TEXT = b"Chronology of significant events.\n" * 30


def _cli(exchange: Exchange, *args: str) -> tuple[int, str]:
    settings = exchange.world.settings
    env = {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_OPERATOR": exchange.world.people["admin"].email,
    }
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def _blob_files(exchange: Exchange) -> dict[str, int]:
    folder = exchange.world.settings.storage.path
    assert folder is not None
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_master_key_rotation_keeps_everything_readable(exchange: Exchange) -> None:
    reference = exchange.upload("uploader", TEXT).json()["reference"]
    code, output = _cli(exchange, "keys", "status", "--json")
    assert code == 0
    before = json.loads(output)
    assert len(before["master_keys"]) == 1 and before["reviews_with_a_key"] == 1
    assert before["key_service"].startswith("key folder ") and before["installation"]
    blobs = _blob_files(exchange)
    code, output = _cli(exchange, "keys", "rotate", "--remove-old")
    assert code == 0, output
    after = json.loads(_cli(exchange, "keys", "status", "--json")[1])
    assert after["master_keys"] == [after["primary"]] and after["primary"] != before["primary"]
    assert _blob_files(exchange) == blobs  # no blob rewritten
    content = exchange.client.get(
        f"/api/v1/documents/{reference}/content", headers=exchange.tokens["inspector"]
    )
    assert content.status_code == 200 and content.content == TEXT


def test_review_key_rotation_retires_the_old_wrapped_keys(exchange: Exchange) -> None:
    references = [
        exchange.upload("uploader", TEXT + str(i).encode()).json()["reference"] for i in range(3)
    ]
    settings = exchange.world.settings
    engine = make_engine(settings.database_url)
    with Session(engine) as db:
        old = {d.reference: (d.wrapped_key, d.blob_id) for d in db.exec(select(Document)).all()}
    blobs = _blob_files(exchange)
    code, output = _cli(exchange, "keys", "rotate", "--review", "swg24")
    assert code == 0 and "3 document key(s) re-wrapped" in output, output
    assert _blob_files(exchange) == blobs
    for reference in references:
        content = exchange.client.get(
            f"/api/v1/documents/{reference}/content", headers=exchange.tokens["inspector"]
        )
        assert content.status_code == 200
    # A database backup taken before the rotation no longer opens anything.
    vault = open_vault(settings)
    wrapped, blob_id = old[references[0]]
    assert wrapped is not None and blob_id is not None
    stale = DocumentKey(review="SWG24", document_id=references[0], wrapped=wrapped)
    try:
        list(vault.read(stale, blob_id))
        raise AssertionError("a key wrapped under the retired review key still opened the blob")
    except (IntegrityError, KeyNotFound):
        pass
    engine.dispose()
    assert _cli(exchange, "keys", "rotate", "--review", "NOPE")[0] == 2

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


def test_review_key_rotation_keeps_sealed_texts_readable(exchange: Exchange) -> None:
    """The review's title and legal basis, request titles and hold orders are sealed under the
    review key: a rotation that re-wrapped only the documents' keys would erase the old version
    and with it every sealed text."""
    from portal.destruction.models import Hold
    from portal.exchange.models import Request as RecordsRequest
    from portal.sealing import text_place

    client, tokens = exchange.client, exchange.tokens
    held = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "reason": "legal", "order_reference": "CO/2027/0142"},
        headers=tokens["dpo"],
    )
    assert held.status_code == 201, held.text
    settings = exchange.world.settings
    engine = make_engine(settings.database_url)
    with Session(engine) as db:
        row = db.get(RecordsRequest, exchange.request_id)
        assert row is not None and row.title_sealed is not None
        stale = row.title_sealed
    code, output = _cli(exchange, "keys", "rotate", "--review", "SWG24")
    # The review's title and legal basis, the request's title and instructions, the hold order.
    assert code == 0 and "5 sealed text key(s) re-wrapped" in output, output
    assert "1 old review key version(s) erased" in output
    review = client.get("/api/v1/reviews/SWG24", headers=tokens["lead"]).json()
    assert review["title"] == "Children's services thematic review"
    assert review["legal_basis"] == "Public Services Reform (Scotland) Act 2010, section 53"
    listed = client.get("/api/v1/reviews/SWG24/requests", headers=tokens["lead"]).json()["items"]
    assert listed[0]["title"] == "Records of the 5 selected young people"
    assert listed[0]["instructions"] == "Case files for the last 12 months."
    holds = client.get("/api/v1/holds", headers=tokens["dpo"]).json()["items"]
    assert holds[0]["order_reference"] == "CO/2027/0142"
    with Session(engine) as db:
        hold = db.get(Hold, held.json()["id"])
        row = db.get(RecordsRequest, exchange.request_id)
        assert hold is not None and row is not None and row.title_sealed != stale
    engine.dispose()
    # A backup from before the rotation holds the text under the erased version: it is gone.
    place = text_place("SWG24", "records_request", "title_sealed", exchange.request_id)
    try:
        open_vault(settings).open_text(place, stale)
        raise AssertionError("a text sealed under the retired review key still opened")
    except IntegrityError:
        pass

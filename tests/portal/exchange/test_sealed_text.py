"""Free texts about a review are sealed under its key and gone with it (issue 16).

The tester's finding: a request titled "Records for Callum ..." kept its title and instructions in
plain text in ``records_request`` after the review was destroyed, and the API and the review page
still served them; the uploader's home page still listed the request as outstanding, and the
review page showed the old schedule. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select
from sqlmodel import Session
from starlette.testclient import TestClient

from portal.blobs import open_vault
from portal.db import make_engine
from portal.destruction.models import Hold
from portal.exchange.models import Request as RecordsRequest
from portal.exchange.models import Review
from portal.runtime import build_runtime
from portal.sealing import text_place
from portal.settings import Settings
from portal.worker import Worker
from storage import KeyDestroyed
from tests.portal.conftest import (
    LEGAL_BASIS,
    REVIEW_TITLE,
    Exchange,
    api_token,
    cheap_hasher,
    sign_in,
)

NAME = "Callum"
# The review's title without its apostrophe (which pages escape).
THEME = REVIEW_TITLE.split("'s ", 1)[1]
TITLE = f"Records for {NAME} MacLeod (b. 2012)"
INSTRUCTIONS = f"{NAME}'s child's plan, the last two reviews and the 2025 assessment."
ORDER = "CO/2027/0142"


def rows_holding(settings: Settings, needle: str) -> list[str]:
    """Every table and column whose stored value contains ``needle``, as text or bytes."""
    engine = make_engine(settings.database_url)
    found = []
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    for column, value in row._mapping.items():
                        if isinstance(value, bytes | memoryview):
                            value = bytes(value).decode("utf-8", "replace")
                        if needle in str(value):
                            found.append(f"{table.name}.{column}")
    finally:
        engine.dispose()
    return found


def database_files_holding(settings: Settings, needle: str) -> list[str]:
    """SQLite only: the database file and its write-ahead log, byte for byte."""
    url = settings.database_url
    if not url.startswith("sqlite"):
        return []
    path = Path(url.split("///", 1)[1])
    return [
        p.name
        for p in (path, path.with_name(path.name + "-wal"))
        if p.exists() and needle.encode() in p.read_bytes()
    ]


def ask_for_callum(exchange: Exchange) -> int:
    answer = exchange.client.post(
        "/api/v1/reviews/SWG24/requests",
        json={
            "organisation": "aberdeen-city",
            "title": TITLE,
            "instructions": INSTRUCTIONS,
            "due_on": "2026-12-20",
            "expected": 15,
        },
        headers=exchange.tokens["lead"],
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["title"] == TITLE and answer.json()["instructions"] == INSTRUCTIONS
    assert answer.json()["closed_by_destruction"] is False
    return int(answer.json()["id"])


def destroy_review(exchange: Exchange) -> tuple[Worker, dict[str, dict[str, str]]]:
    world, client = exchange.world, exchange.client
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    closed = client.post("/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={})
    assert closed.status_code == 200, closed.text
    world.clock.advance(days=91)
    report = worker.run_round(force=True).destruction.report
    assert report.ok and len(report.certificates) == 1, report
    tokens = {who: api_token(world, who) for who in world.people}
    assert client.get("/api/v1/reviews/SWG24", headers=tokens["lead"]).json()["state"] == (
        "destroyed"
    )
    return worker, tokens


def test_request_texts_never_reach_the_database_and_die_with_the_key(
    exchange: Exchange,
) -> None:
    """The tester's finding, as a test: it fails on the code that kept the texts readable."""
    settings, client = exchange.world.settings, exchange.client
    asked = ask_for_callum(exchange)
    held = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "reason": "legal", "order_reference": ORDER},
        headers=exchange.tokens["dpo"],
    )
    assert held.status_code == 201 and held.json()["order_reference"] == ORDER, held.text
    listed = client.get("/api/v1/reviews/SWG24/requests", headers=exchange.tokens["uploader"])
    assert [(r["title"], r["instructions"]) for r in listed.json()["items"]][-1] == (
        TITLE,
        INSTRUCTIONS,
    )
    # Sealed from the first write: no table, no column, no byte of the file holds the name.
    for needle in (NAME, ORDER):
        assert rows_holding(settings, needle) == []
        assert database_files_holding(settings, needle) == []

    lifted = client.post(
        f"/api/v1/holds/{held.json()['id']}/lift",
        json={"reason": "proceedings_concluded"},
        headers=exchange.tokens["dpo"],
    )
    assert lifted.status_code == 200, lifted.text
    _, tokens = destroy_review(exchange)

    for who in ("lead", "inspector", "uploader"):
        answer = client.get("/api/v1/reviews/SWG24/requests", headers=tokens[who])
        assert answer.status_code == 200, answer.text
        for item in answer.json()["items"]:
            assert item["title"] is None and item["instructions"] is None
            assert item["closed_by_destruction"] is True
        assert NAME not in answer.text
    holds = client.get("/api/v1/holds?include_lifted=1", headers=tokens["dpo"])
    assert holds.status_code == 200 and holds.json()["items"][0]["order_reference"] is None

    # The sealed bytes are still in the database (and in its backups), beyond use for good.
    vault = open_vault(settings)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            row = db.get(RecordsRequest, asked)
            hold = db.get(Hold, held.json()["id"])
            assert row is not None and row.title_sealed and hold is not None
            sealed = [
                (text_place("SWG24", "records_request", "title_sealed", asked), row.title_sealed),
                (
                    text_place("SWG24", "destruction_hold", "order_reference_sealed", hold.id),
                    hold.order_reference_sealed,
                ),
            ]
            for place, value in sealed:
                assert value is not None
                with pytest.raises(KeyDestroyed):
                    vault.open_text(place, value)
    finally:
        engine.dispose()


def test_pages_after_destruction_close_the_requests_and_the_schedule(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world = exchange.world
    ask_for_callum(exchange)
    uploader = second_client()
    sign_in(uploader, world.people["uploader"], world.clock)
    before = uploader.get("/")
    assert TITLE in before.text and "0 of 15" in before.text
    page = uploader.get("/reviews/SWG24")
    assert TITLE in page.text and "Everything destroyed on" in page.text
    assert THEME in page.text and LEGAL_BASIS in page.text

    destroy_review(exchange)
    sign_in(uploader, world.people["uploader"], world.clock)  # the session has timed out
    home = uploader.get("/")
    assert home.status_code == 200
    assert NAME not in home.text and "0 of 15" not in home.text and "0 of 5" not in home.text
    assert "No requests are addressed to" in home.text
    page = uploader.get("/reviews/SWG24")
    assert page.status_code == 200, page.text
    assert NAME not in page.text
    assert "closed by destruction" in page.text
    # The review's own title and legal basis are erased with its key too (sealed, issue 16).
    assert THEME not in page.text and LEGAL_BASIS not in page.text
    assert "SWG24: closed by destruction" in page.text
    assert THEME not in home.text
    assert "Everything destroyed on" not in page.text and "Open for uploads" not in page.text
    assert 'id="destroyed-notice"' in page.text
    engine = make_engine(world.settings.database_url)
    try:
        with Session(engine) as db:
            from sqlmodel import select as sql_select

            from portal.destruction.models import Certificate

            reference = db.exec(sql_select(Certificate.reference)).one()
            assert db.exec(sql_select(Review)).one().destroyed_at is not None
    finally:
        engine.dispose()
    assert reference in page.text
    lead = second_client()
    sign_in(lead, world.people["lead"], world.clock)
    manage = lead.get("/reviews/SWG24/manage")
    assert manage.status_code in (200, 404)
    assert NAME not in manage.text and THEME not in manage.text
    shown = exchange.client.get("/api/v1/reviews/SWG24", headers=api_token(world, "lead"))
    assert shown.status_code == 200, shown.text
    assert shown.json()["closed_by_destruction"] is True
    assert (shown.json()["title"], shown.json()["legal_basis"]) == (None, None)


@pytest.mark.parametrize(
    ("title", "instructions", "status"),
    [
        ("", "", 400),  # a title is required
        ("x" * 201, "", 400),
        ("Records", "y" * 4001, 400),
        ("Records\x00 for Callum", "", 400),  # NUL is refused before anything is sealed
        ("Records for \u202eCallum\u202c", "", 400),  # bidi controls: refused as control text
        ("Records for Calum \U0001f600 Mac\u0301Leod", "l\u00e9on\nd\u00e9j\u00e0", 201),
        ("x" * 200, "y" * 4000, 201),
    ],
)
def test_hostile_request_texts_are_refused_or_round_trip(
    exchange: Exchange, title: str, instructions: str, status: int
) -> None:
    answer = exchange.client.post(
        "/api/v1/reviews/SWG24/requests",
        json={
            "organisation": "aberdeen-city",
            "title": title,
            "instructions": instructions,
            "due_on": "2026-12-20",
        },
        headers=exchange.tokens["lead"],
    )
    assert answer.status_code == status, answer.text
    listed = exchange.client.get("/api/v1/reviews/SWG24/requests", headers=exchange.tokens["lead"])
    items: list[dict[str, Any]] = listed.json()["items"]
    if status == 201:
        typed = (unicodedata.normalize("NFC", title), unicodedata.normalize("NFC", instructions))
        assert (items[-1]["title"], items[-1]["instructions"]) == typed  # NFC, as all text is
        assert rows_holding(exchange.world.settings, title[:50]) == []
    else:
        assert len(items) == 1  # the fixture's request only: nothing half-made


def test_a_database_restored_from_before_the_destruction_shows_no_text(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    """The rows say the review is open, the key service says its key was destroyed: what a
    database backup restored after the destruction looks like. Nothing errors, nothing shows."""
    world = exchange.world
    ask_for_callum(exchange)
    open_vault(world.settings).destroy_review("SWG24")
    answer = exchange.client.get(
        "/api/v1/reviews/SWG24/requests", headers=exchange.tokens["uploader"]
    )
    assert answer.status_code == 200, answer.text
    assert all(i["closed_by_destruction"] and i["title"] is None for i in answer.json()["items"])
    uploader = second_client()
    sign_in(uploader, world.people["uploader"], world.clock)
    home = uploader.get("/")
    assert home.status_code == 200 and NAME not in home.text and "0 of 15" not in home.text
    page = uploader.get("/reviews/SWG24")
    assert page.status_code == 200 and NAME not in page.text
    assert "closed by destruction" in page.text
    assert THEME not in page.text and LEGAL_BASIS not in page.text
    shown = exchange.client.get("/api/v1/reviews/SWG24", headers=exchange.tokens["lead"]).json()
    assert shown["title"] is None and shown["closed_by_destruction"] is True

"""The ingest service (portal.exchange.ingest) without HTTP: what the API, the form and tus call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlmodel import Session, select

import audit
from portal.accounts.models import Role, User
from portal.audit_vocabulary import Action
from portal.auditing import Origin
from portal.exchange.acting import Acting
from portal.exchange.errors import ReviewNotOpen, TooLarge
from portal.exchange.ingest import Ingest
from portal.exchange.models import Document, DocumentState
from portal.runtime import build_runtime
from tests.portal.conftest import Exchange

MINUTES = b"Minutes of the meeting of 3 November.\n"


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def ingest_and_uploader(exchange: Exchange) -> Iterator[tuple[Ingest, Acting]]:
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock)
    ingest = Ingest(
        engine=runtime.engine,
        vault=runtime.vault,
        auditor=runtime.auditor,
        scanner=runtime.scanner,
        clock=runtime.clock,
        max_bytes=runtime.settings.max_upload_bytes,
    )
    with Session(runtime.engine) as db:
        user = db.get(User, world.people["uploader"].user_id)
        assert user is not None and user.id is not None
        acting = Acting.of(
            user_id=user.id,
            role=Role.uploader,
            organisation_id=user.organisation_id,
            now=world.clock(),
            origin=Origin(),
            refusals=runtime.auditor,
        )
    try:
        yield ingest, acting
    finally:
        runtime.engine.dispose()


def test_a_document_is_made_without_http_and_the_api_shows_it(
    exchange: Exchange, ingest_and_uploader: tuple[Ingest, Acting]
) -> None:
    ingest, acting = ingest_and_uploader
    target = ingest.prepare(acting, review_code="SWG24", request_id=str(exchange.request_id))
    document = asyncio.run(
        ingest.receive(
            acting,
            target,
            _chunks(MINUTES[:10], MINUTES[10:]),
            filename="m.txt",
            expected_sha256=None,
        )
    )
    assert document.reference == target.reference
    assert document.state is DocumentState.pending_scan
    assert document.size == len(MINUTES)
    shown = exchange.client.get(
        f"/api/v1/documents/{document.reference}", headers=exchange.tokens["uploader"]
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["filename"] == "m.txt"


def test_a_refused_content_is_audited_and_nothing_is_kept(
    exchange: Exchange, ingest_and_uploader: tuple[Ingest, Acting]
) -> None:
    ingest, acting = ingest_and_uploader
    target = ingest.prepare(acting, review_code="SWG24")
    with pytest.raises(TooLarge):
        asyncio.run(
            ingest.receive(
                acting,
                target,
                _chunks(MINUTES),
                filename="m.txt",
                expected_sha256=None,
                declared_length=ingest.max_bytes + 1,
            )
        )
    with Session(ingest.engine) as db:
        assert (
            db.exec(select(Document).where(Document.reference == target.reference)).first() is None
        )
    with ingest.engine.connect() as connection:
        page = audit.search(
            connection,
            audit.EventFilter(action=Action.DOCUMENT_REJECTED.value, review="SWG24"),
            limit=10,
        )
    assert [dict(record.details) for record in page.records] == [{"reason": "too_large"}]


def test_a_review_that_is_not_open_refuses_before_a_byte_is_read(
    exchange: Exchange, ingest_and_uploader: tuple[Ingest, Acting]
) -> None:
    ingest, acting = ingest_and_uploader
    closed = exchange.client.post(
        "/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={}
    )
    assert closed.status_code == 200, closed.text
    with pytest.raises(ReviewNotOpen):
        ingest.prepare(acting, review_code="SWG24")

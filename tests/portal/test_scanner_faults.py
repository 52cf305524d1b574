"""The scanner fails closed on every answer that is not a clear verdict (issue 18, item 7).

The real clamd of the test suite only answers ``stream: OK`` or ``… FOUND``; a client that took an
``ERROR`` line, garbled bytes or silence for "clean" passed every other test. These tests put a fake
clamd (tests/harness/fake_clamd.py: a socket server speaking INSTREAM as clamd does) in its place
and check, for each bad answer, that the client refuses to give a verdict and that the document it
was scanning stays unavailable, to be scanned again.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, timedelta

import pytest
from sqlmodel import Session, select

from portal.db import make_engine
from portal.exchange import scans
from portal.exchange.models import Document, DocumentState
from portal.runtime import build_runtime
from portal.scanning import CHUNK, Scanner, ScannerUnavailable
from tests.harness.fake_clamd import BAD_ANSWERS, fake_clamd
from tests.portal.conftest import Exchange
from tests.portal.uploads.test_recovery import pending_document

# Short enough that the hanging scanner costs half a second; long enough for a loopback answer.
TIMEOUT = 0.5
BODY = bytes(range(256)) * (CHUNK // 256 + 1000)  # a little over one chunk: two INSTREAM chunks


def test_the_fake_speaks_clamds_protocol_and_clear_answers_are_verdicts() -> None:
    with fake_clamd("ok") as clamd:
        scanner = Scanner(clamd.address, timeout=TIMEOUT)
        assert scanner.ping() is True
        verdict = scanner.scan([BODY[:1000], BODY[1000:]])
        assert verdict.clean and verdict.signature is None
        clamd.answer = "found"
        infected = scanner.scan([BODY])
        assert not infected.clean and infected.signature == "Eicar-Test-Signature"
    # Every byte arrived, in order, through the length-prefixed chunks.
    assert [hashlib.sha256(s).hexdigest() for s in clamd.streams] == [
        hashlib.sha256(BODY).hexdigest()
    ] * 2
    assert clamd.commands == [b"PING", b"INSTREAM", b"INSTREAM"]


@pytest.mark.parametrize("answer", BAD_ANSWERS)
def test_an_answer_that_is_not_a_clear_verdict_gives_no_verdict(answer: str) -> None:
    with fake_clamd(answer) as clamd:
        scanner = Scanner(clamd.address, timeout=TIMEOUT)
        with pytest.raises(ScannerUnavailable):
            scanner.scan([b"Home visit notes.\n" * 100])
    assert len(clamd.streams) == 1  # the stream was sent whole: the answer alone decided


@pytest.mark.parametrize("answer", ["garbled", "bare_error", "closed_without_answer", "hang"])
def test_a_ping_answered_badly_is_not_a_pong(answer: str) -> None:
    with fake_clamd(answer) as clamd:
        clamd.ping_answers_badly = True
        scanner = Scanner(clamd.address, timeout=TIMEOUT)
        try:
            alive = scanner.ping()
        except ScannerUnavailable:
            alive = False
    assert alive is False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_document_scanned_by_a_scanner_answering_badly_stays_unavailable(
    exchange: Exchange,
) -> None:
    """Each bad answer in turn, on one document: it stays pending, is retried, then flagged."""
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock)
    reference = pending_document(exchange)  # one failed scan already (the scanner was down)
    inspector = exchange.tokens["inspector"]
    policy = scans.ScanPolicy(flag_after=3)
    moment = world.clock() + timedelta(hours=1)
    with fake_clamd() as clamd:
        scanner = Scanner(clamd.address, timeout=TIMEOUT)
        for number, answer in enumerate(BAD_ANSWERS, start=2):
            clamd.answer = answer
            moment += timedelta(hours=1)  # past the retry's back-off
            outcome = scans.scan_one(
                runtime.engine,
                runtime.vault,
                scanner,
                runtime.auditor,
                now=moment,
                reference=reference,
                policy=policy,
            )
            assert outcome == scans.ScanOutcome(reference, DocumentState.pending_scan), answer
            row = _document(exchange, reference)
            assert row.state is DocumentState.pending_scan and row.scan_verdict is None, answer
            assert row.scan_attempts == number, answer
            assert row.next_scan_at is not None, answer
            assert row.next_scan_at.replace(tzinfo=UTC) > moment, answer
            content = exchange.client.get(
                f"/api/v1/documents/{reference}/content", headers=inspector
            )
            assert content.status_code == 400, answer
            assert content.json()["error"]["code"] == "not_available", answer
        assert _document(exchange, reference).scan_flagged_at is not None
        # Once the scanner answers clearly, the document is released: the fake was in use.
        clamd.answer = "ok"
        released = scans.scan_one(
            runtime.engine,
            runtime.vault,
            scanner,
            runtime.auditor,
            now=moment + timedelta(hours=1),
            reference=reference,
            policy=policy,
        )
    assert released == scans.ScanOutcome(reference, DocumentState.available)
    assert len(clamd.streams) == len(BAD_ANSWERS) + 1


def _document(exchange: Exchange, reference: str) -> Document:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with Session(engine) as db:
            return db.exec(select(Document).where(Document.reference == reference)).one()
    finally:
        engine.dispose()

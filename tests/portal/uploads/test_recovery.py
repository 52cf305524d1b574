"""Work left by a process that died is taken over: an upload's completion, a document's scan.

Killing a process at exactly the right moment is not something a test can time, so most tests put
the database where a killed process leaves it: a function that stands for SIGKILL raises at the
point the process would have died, and nothing after that point runs (no clean-up, no lease
renewal). Then another process (a real ``portal worker --once``, or ``portal upload`` run again)
must finish the work. One test does kill a real ``portal serve`` with SIGKILL in the middle of a
scan, using a scanner that hangs (the one fake: the real clamd cannot be made to hang).

The clock starts five minutes ago, so that leases taken "by the process that died" have run out
for the real processes started here, which read the real clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlmodel import Session, col, select
from starlette.testclient import TestClient

import audit
from portal.accounts.models import User
from portal.auditing import Origin
from portal.cli import main
from portal.db import make_engine
from portal.exchange import documents, scans
from portal.exchange.acting import Acting
from portal.exchange.models import Document, DocumentState
from portal.leases import moving_clock
from portal.runtime import build_runtime
from portal.scanning import Scanner
from portal.settings import ClamdAddress, Settings
from portal.uploads import sessions
from portal.uploads.errors import OffsetConflict
from portal.uploads.models import UploadSession, UploadState
from portal.uploads.recovery import abandoned_completions, finish_abandoned_uploads
from portal.web.app import create_app
from tests.harness.ports import free_port
from tests.harness.serving import serving
from tests.harness.waiting import PATIENCE, wait_until
from tests.portal.conftest import Exchange, SettableClock, World, cheap_hasher
from tests.portal.uploads.test_tus import RECORD, blob_ids, head, part_rows, patch, start

PORTAL = str(Path(sys.executable).parent / "portal")


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(now=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5))


class ProcessKilled(Exception):
    """Stands for SIGKILL: raised where the process dies; nothing after it runs."""


def killed(*args: Any, **kwargs: Any) -> Any:
    raise ProcessKilled()


def leave_completing(exchange: Exchange, monkeypatch: pytest.MonkeyPatch, body: bytes) -> str:
    """An upload whose last PATCH was received by a process that died before the document was
    made: its last part is sealed and committed, the session is ``completing`` under that
    process's lease, and the completion never ran (or never finished: the database holds the
    same either way)."""
    url = start(exchange, body)
    half = len(body) // 2
    assert patch(exchange, url, 0, body[:half]).status_code == 204
    with monkeypatch.context() as patched:
        patched.setattr(sessions, "complete_upload", killed)
        with pytest.raises(ProcessKilled):
            patch(exchange, url, half, body[half:])
    return url


def the_session(settings: Settings) -> UploadSession:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            (upload,) = db.exec(select(UploadSession)).all()
            return upload
    finally:
        engine.dispose()


def documents_of(settings: Settings) -> list[Document]:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            return list(db.exec(select(Document).order_by(col(Document.id))).all())
    finally:
        engine.dispose()


def portal_env(settings: Settings, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_STORAGE": str(settings.storage),
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
        **overrides,
    }


def portal_worker_once(settings: Settings) -> str:
    done = subprocess.run(
        [PORTAL, "worker", "--once"],
        env=portal_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# --- An upload's completion -------------------------------------------------------------------


@pytest.mark.slow
def test_a_completion_whose_process_died_is_finished_by_portal_worker(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = exchange.world.settings
    url = leave_completing(exchange, monkeypatch, RECORD)
    left = the_session(settings)
    assert left.state is UploadState.completing and left.lease_owner is not None
    parts = {row.blob_id for row in part_rows(exchange)}
    assert len(parts) == 2 and parts <= blob_ids(exchange)  # every byte is still there
    assert documents_of(settings) == []

    said = portal_worker_once(settings)  # a real process, on the real clock: the lease ran out
    assert "uploads finished: 1;" in said and "scanned: 1 available" in said, said

    (document,) = documents_of(settings)
    assert document.state is DocumentState.available
    assert document.sha256 == hashlib.sha256(RECORD).hexdigest()
    assert document.uploaded_by == exchange.world.people["uploader"].user_id
    done = the_session(settings)
    assert done.state is UploadState.complete and done.document_id == document.id
    assert done.lease_owner is None and done.lease_until is None
    assert part_rows(exchange) == [] and not parts & blob_ids(exchange)
    # The client asking afterwards learns where its file went.
    status = head(exchange, url)
    assert status.headers["upload-offset"] == str(len(RECORD))
    assert status.headers["upload-document-reference"] == document.reference
    # Nothing left to take over: a second round finishes nothing.
    assert "uploads finished: 0;" in portal_worker_once(settings)


def test_portal_upload_run_again_takes_the_completion_over_once_the_lease_ran_out(
    exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = exchange.world
    source = tmp_path / "case notes.txt"
    source.write_bytes(RECORD)
    token = exchange.tokens["uploader"]["Authorization"].removeprefix("Bearer ")
    app = create_app(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    with serving(app) as url:
        env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PORTAL_URL": url, "PORTAL_TOKEN": token}
        args = ["upload", "--review", "SWG24", "--chunk-size", str(64 * 1024), str(source)]

        def portal_upload() -> Any:
            return CliRunner().invoke(main, args, env=env, catch_exceptions=False)

        with monkeypatch.context() as patched:
            patched.setattr(sessions, "complete_upload", killed)
            died = portal_upload()  # the server "dies" making the document: a 500 here
        assert died.exit_code == 1 and "Run the same command again" in died.stderr
        assert the_session(world.settings).state is UploadState.completing

        world.clock.advance(seconds=10)  # the dying process's lease has not run out yet
        early = portal_upload()
        assert early.exit_code == 1, early.stderr
        assert "being turned into a document" in early.stderr
        assert documents_of(world.settings) == []

        world.clock.advance(seconds=40)  # now it has: this request takes the completion over
        again = portal_upload()
        assert again.exit_code == 0, again.stderr
    (document,) = documents_of(world.settings)
    assert again.stdout.split()[0] == document.reference
    assert document.sha256 == hashlib.sha256(RECORD).hexdigest()
    assert the_session(world.settings).state is UploadState.complete
    assert part_rows(exchange) == []


def _acting_for(world: World, who: str) -> Acting:
    engine = make_engine(world.settings.database_url)
    try:
        with Session(engine) as db:
            user = db.get(User, world.people[who].user_id)
            assert user is not None and user.id is not None
            return Acting.of(
                user_id=user.id,
                role=user.role,
                organisation_id=user.organisation_id,
                now=world.clock(),
                origin=Origin(),
            )
    finally:
        engine.dispose()


def test_of_two_attempts_at_one_completion_exactly_one_makes_the_document(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt is still alive but stalled past its lease (a paused VM, say); the worker
    takes over and finishes first; the first attempt, once it resumes, records nothing."""
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock)
    url = start(exchange, RECORD)
    assert patch(exchange, url, 0, RECORD[:1000]).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    # The first attempt: its last part lands, then it claims the completion and starts.
    acting = _acting_for(world, "uploader")
    with Session(runtime.engine) as db:
        plan = sessions.plan_part(db, runtime.vault, acting, upload_id, offset=1000)
    assert plan.key is not None
    blob = runtime.vault.write(plan.key, iter([RECORD[1000:]]))
    with Session(runtime.engine) as db:
        sessions.commit_part(db, acting, plan, blob)
        db.commit()
    real_store_upload = documents.store_upload
    stalled: list[bool] = []
    taken_over: list[list[str]] = []

    def stalls_past_its_lease(*args: Any, **kwargs: Any) -> Any:
        if not stalled:  # the first attempt stalls here, while the worker takes over
            stalled.append(True)
            world.clock.advance(seconds=60)
            taken_over.append(
                finish_abandoned_uploads(
                    runtime.engine,
                    runtime.vault,
                    runtime.auditor,
                    clock=world.clock,
                    max_bytes=world.settings.max_upload_bytes,
                ).documents
            )
        return real_store_upload(*args, **kwargs)

    monkeypatch.setattr(documents, "store_upload", stalls_past_its_lease)
    with pytest.raises(OffsetConflict):
        sessions.complete_upload(
            runtime.engine,
            runtime.vault,
            runtime.auditor,
            acting,
            upload_id,
            max_bytes=world.settings.max_upload_bytes,
            owner=plan.owner,
            clock=world.clock,
        )
    (document,) = documents_of(world.settings)
    assert taken_over == [[document.reference]]
    assert the_session(world.settings).document_id == document.id
    # The first attempt's sealed copy is gone too: the store holds the one document's blob.
    assert blob_ids(exchange) == {document.blob_id}
    with runtime.engine.connect() as connection:
        uploaded = audit.search(connection, audit.EventFilter(action="document.uploaded")).records
    assert [event.document for event in uploaded] == [document.reference]


def test_a_long_completion_keeps_its_lease(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock)
    monkeypatch.setattr(sessions, "COMPLETION_LEASE", timedelta(seconds=1))
    real_store_upload = documents.store_upload

    def slow_disk(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)  # three lease lengths
        return real_store_upload(*args, **kwargs)

    url = start(exchange, RECORD)
    upload_id = url.rsplit("/", 1)[1]
    acting = _acting_for(world, "uploader")
    with Session(runtime.engine) as db:
        plan = sessions.plan_part(db, runtime.vault, acting, upload_id, offset=0)
    assert plan.key is not None
    blob = runtime.vault.write(plan.key, iter([RECORD]))
    # Real time from here: the lease is renewed against it.
    now = moving_clock(world.clock())
    acting = dataclasses.replace(acting, now=now())
    with Session(runtime.engine) as db:
        sessions.commit_part(db, acting, plan, blob)
        db.commit()
    monkeypatch.setattr(documents, "store_upload", slow_disk)
    made: list[str] = []
    completion = threading.Thread(
        target=lambda: made.append(
            sessions.complete_upload(
                runtime.engine,
                runtime.vault,
                runtime.auditor,
                acting,
                upload_id,
                max_bytes=world.settings.max_upload_bytes,
                owner=plan.owner,
                clock=now,
            )
        )
    )
    completion.start()
    looked_at = []
    try:
        while completion.is_alive():
            # Another attempt (the worker, or the client again), all along: it never gets it.
            other = dataclasses.replace(acting, now=now())
            looked_at.append(other.now)
            with Session(runtime.engine) as db:
                assert abandoned_completions(db, now=other.now, limit=10) == []
                assert not sessions.claim_completion(db, other, upload_id, owner="another")
                db.commit()
            time.sleep(0.1)
    finally:
        completion.join()
    assert looked_at[-1] - acting.now > timedelta(seconds=2)  # well past the first lease
    assert len(made) == 1
    (document,) = documents_of(world.settings)
    assert document.reference == made[0]


# --- A document's scan ------------------------------------------------------------------------


class FakeClamd(socketserver.ThreadingTCPServer):
    """clamd's INSTREAM, as far as taking the whole stream; then it answers OK after ``delay``
    seconds, or never (``delay=None``): a scanner that hangs, which the real one cannot be made."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, delay: float | None) -> None:
        super().__init__(("127.0.0.1", 0), _FakeClamdHandler)
        self.delay = delay
        self.streams = 0
        self.streamed = threading.Event()
        self.release = threading.Event()
        self.answer_on_release = False  # with delay=None: answer OK once released

    @property
    def address(self) -> ClamdAddress:
        return ClamdAddress(kind="tcp", host="127.0.0.1", port=self.server_address[1])


class _FakeClamdHandler(socketserver.BaseRequestHandler):
    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = self.request.recv(size - len(data))
            if not part:
                raise ConnectionError("the scanning process went away")
            data += part
        return data

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, FakeClamd)
        command = b""
        while not command.endswith(b"\0"):
            command += self._exactly(1)
        if command != b"zINSTREAM\0":
            self.request.sendall(b"PONG\0" if command == b"zPING\0" else b"UNKNOWN COMMAND\0")
            return
        try:
            while size := struct.unpack("!L", self._exactly(4))[0]:
                self._exactly(size)
        except ConnectionError:
            return
        server.streams += 1
        server.streamed.set()
        if server.delay is None:
            server.release.wait()
            if server.answer_on_release:
                self.request.sendall(b"stream: OK\0")
            return
        time.sleep(server.delay)
        self.request.sendall(b"stream: OK\0")


@contextmanager
def fake_clamd(delay: float | None, *, answer_on_release: bool = False) -> Iterator[FakeClamd]:
    server = FakeClamd(delay)
    server.answer_on_release = answer_on_release
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def pending_document(exchange: Exchange) -> str:
    """A document uploaded while the scanner did not answer: it waits in ``pending_scan``."""
    world = exchange.world
    nowhere = ClamdAddress(kind="unix", path="/nonexistent/clamd.sock")
    app = create_app(
        dataclasses.replace(world.settings, clamd=nowhere),
        clock=world.clock,
        password_hasher=cheap_hasher(),
    )
    with TestClient(app) as client:
        local = dataclasses.replace(exchange, client=client)
        answer = local.upload("uploader", RECORD)
    assert answer.status_code == 201, answer.text
    (document,) = documents_of(world.settings)
    assert document.state is DocumentState.pending_scan
    reference: str = answer.json()["reference"]
    return reference


def test_a_long_scan_keeps_its_lease(exchange: Exchange) -> None:
    world = exchange.world
    runtime = build_runtime(world.settings, clock=world.clock)
    reference = pending_document(exchange)
    lease = timedelta(seconds=1)
    policy = scans.ScanPolicy(lease=lease)
    base = world.clock() + timedelta(hours=1)  # the failed scan's retry is due by then
    # clamd holds the scan until the test lets it answer: the scan lasts as long as the test needs,
    # however slow the machine, and nothing here depends on how fast a thread is scheduled.
    with fake_clamd(delay=None, answer_on_release=True) as clamd:
        scanner = Scanner(clamd.address, timeout=PATIENCE)
        outcomes: list[scans.ScanOutcome | None] = []
        scanning = threading.Thread(
            target=lambda: outcomes.append(
                scans.scan_one(
                    runtime.engine,
                    runtime.vault,
                    scanner,
                    runtime.auditor,
                    now=base,
                    policy=policy,
                )
            )
        )
        scanning.start()
        try:
            assert clamd.streamed.wait(timeout=PATIENCE)
            # The lease taken at ``base`` ran to base + 1 s; renewals carry it past base + 3 s.
            renewed_until = wait_until(
                lambda: _scan_due_at(world.settings, reference, beyond=base + 3 * lease),
                what="the lease renewed past three lease lengths",
            )
            # Another worker, at any moment before the renewed end, finds nothing due.
            for moment in (base + lease, base + 2 * lease, renewed_until - timedelta(seconds=0.05)):
                other = scans.scan_one(
                    runtime.engine,
                    runtime.vault,
                    scanner,
                    runtime.auditor,
                    now=moment,
                    policy=policy,
                )
                assert other is None
        finally:
            clamd.release.set()
            scanning.join()
    assert clamd.streams == 1  # the other worker never took the document to scan it again
    assert outcomes == [scans.ScanOutcome(reference, DocumentState.available)]


def _scan_due_at(settings: Settings, reference: str, *, beyond: datetime) -> datetime | None:
    """The document's lease end (``next_scan_at``), once it lies beyond ``beyond``."""
    (document,) = [d for d in documents_of(settings) if d.reference == reference]
    due = document.next_scan_at
    if due is None:
        return None
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    return due if due > beyond else None


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, "portal serve stopped"
            assert time.monotonic() < deadline, "portal serve did not start"
            time.sleep(0.1)


WORKER_AHEAD = """
import sys
from datetime import UTC, datetime, timedelta
from portal.runtime import build_runtime
from portal.settings import Settings
from portal.worker import Worker

ahead = timedelta(seconds=float(sys.argv[1]))
runtime = build_runtime(Settings.from_environ(), clock=lambda: datetime.now(UTC) + ahead)
print(Worker(runtime).run_round(force=True).summary())
"""


@pytest.mark.slow
def test_kill_9_of_portal_serve_mid_scan_leaves_the_document_to_the_worker(
    exchange: Exchange,
) -> None:
    settings = exchange.world.settings
    port = free_port()
    with fake_clamd(delay=None) as hanging:
        server = subprocess.Popen(
            [PORTAL, "serve", "--port", str(port)],
            env=portal_env(settings, PORTAL_CLAMD=str(hanging.address)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, server)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/reviews/SWG24/documents",
                content=RECORD,
                headers={
                    **exchange.tokens["uploader"],
                    "Content-Disposition": "attachment; filename=notes.txt",
                },
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            # The scan behind the response has sent the whole file and waits for the verdict.
            assert hanging.streamed.wait(timeout=PATIENCE), "the scan did not start"
            server.send_signal(signal.SIGKILL)
            assert server.wait(timeout=10) == -signal.SIGKILL
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    (left,) = documents_of(settings)
    assert left.state is DocumentState.pending_scan and left.next_scan_at is not None
    lease = left.next_scan_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(0) < lease <= timedelta(minutes=1)  # taken over within a minute

    # The lease is respected while it lasts: the worker leaves the document alone ...
    assert "scanned: none;" in portal_worker_once(settings)
    # ... and once it has run out (the worker's clock 50 s ahead), the worker scans it.
    ahead = subprocess.run(
        [sys.executable, "-c", WORKER_AHEAD, "50"],
        env=portal_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr
    assert "scanned: 1 available" in ahead.stdout, ahead.stdout
    (document,) = documents_of(settings)
    assert document.state is DocumentState.available
    assert hanging.streams == 1

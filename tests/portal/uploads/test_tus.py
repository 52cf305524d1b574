"""The resumable upload endpoint (tus 1.0: core, creation, termination, checksum).

Protocol semantics run in-process through the test client; resuming is shown with ``tuspy``, a
client the portal's developers did not write, against a live server. Every test runs on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from portal.blobs import open_vault
from portal.clamd_local import EICAR
from portal.db import make_engine
from portal.exchange.sweep import sweep_orphan_blobs
from portal.uploads.models import UploadPart, UploadSession
from portal.uploads.sweep import expire_uploads, part_blob_ids
from portal.web.app import create_app
from tests.harness.serving import serving
from tests.harness.waiting import PATIENCE
from tests.portal.conftest import Exchange, cheap_hasher, sign_in

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
LOCATION = re.compile(r"^/api/v1/uploads/([A-Za-z0-9_-]{32})$")
MARKER = b"ASSESSMENT-OF-CHILD-7731 "
RECORD = (MARKER + b"Home visit notes: the family was seen at home; plan agreed.\n") * 4000
NAME = "Jordan Example assessment.txt"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 300


def metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def create(
    exchange: Exchange,
    body: bytes,
    *,
    who: str = "uploader",
    name: str = NAME,
    length: int | None = None,
    **extra: str,
) -> httpx2.Response:
    values = {"filename": name, "filetype": "text/plain", "review": "SWG24", **extra}
    return exchange.client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **exchange.tokens[who],
            "Upload-Length": str(len(body) if length is None else length),
            "Upload-Metadata": metadata(**values),
        },
    )


def start(exchange: Exchange, body: bytes, *, name: str = NAME, **extra: str) -> str:
    # ``extra`` is upload metadata only: the uploader and the announced length are the defaults.
    created = create(exchange, body, name=name, who="uploader", length=None, **extra)
    assert created.status_code == 201, created.text
    found = LOCATION.match(created.headers["location"])
    assert found, created.headers["location"]
    return created.headers["location"]


def patch(
    exchange: Exchange, url: str, offset: int, data: bytes, who: str = "uploader", **headers: str
) -> Any:
    return exchange.client.patch(
        url,
        content=data,
        headers={**TUS, **OCTETS, **exchange.tokens[who], "Upload-Offset": str(offset), **headers},
    )


def head(exchange: Exchange, url: str, who: str = "uploader") -> Any:
    return exchange.client.head(url, headers={**TUS, **exchange.tokens[who]})


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def blob_ids(exchange: Exchange) -> set[str]:
    return {info.blob_id for info in open_vault(exchange.world.settings).store.list_blobs()}


def part_rows(exchange: Exchange) -> list[UploadPart]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with Session(engine) as db:
            return list(db.exec(select(UploadPart)).all())
    finally:
        engine.dispose()


def session_rows(exchange: Exchange) -> list[UploadSession]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with Session(engine) as db:
            return list(db.exec(select(UploadSession)).all())
    finally:
        engine.dispose()


def test_discovery_answers_what_the_server_supports(exchange: Exchange) -> None:
    answer = exchange.client.options("/api/v1/uploads", headers=exchange.tokens["uploader"])
    assert answer.status_code == 204
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert answer.headers["tus-version"] == "1.0.0"
    assert answer.headers["tus-extension"] == "creation,termination,checksum"
    assert answer.headers["tus-max-size"] == str(exchange.world.settings.max_upload_bytes)
    assert answer.headers["tus-checksum-algorithm"] == "sha1,sha256"
    assert exchange.client.options("/api/v1/uploads").status_code == 401


def test_an_upload_in_parts_becomes_a_scanned_document(exchange: Exchange) -> None:
    sha = hashlib.sha256(RECORD).hexdigest()
    url = start(exchange, RECORD, request=str(exchange.request_id), sha256=sha)
    status = head(exchange, url)
    assert status.status_code == 200
    assert status.headers["upload-offset"] == "0"
    assert status.headers["upload-length"] == str(len(RECORD))
    assert status.headers["cache-control"] == "no-store"
    assert status.headers["tus-resumable"] == "1.0.0"

    half = len(RECORD) // 2
    first = patch(
        exchange, url, 0, RECORD[:half], **{"Upload-Checksum": checksum("sha1", RECORD[:half])}
    )
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == str(half)
    assert "upload-document-reference" not in first.headers
    progress = exchange.client.get(url, headers=exchange.tokens["uploader"]).json()
    assert progress == {
        "offset": half,
        "length": len(RECORD),
        "state": "receiving",
        "document": None,
    }
    assert len(part_rows(exchange)) == 1

    last = patch(
        exchange, url, half, RECORD[half:], **{"Upload-Checksum": checksum("sha256", RECORD[half:])}
    )
    assert last.status_code == 204, last.text
    assert last.headers["upload-offset"] == str(len(RECORD))
    reference = last.headers["upload-document-reference"]
    done = exchange.client.get(url, headers=exchange.tokens["uploader"]).json()
    assert done["state"] == "complete" and done["offset"] == len(RECORD)
    document = done["document"]
    assert document["reference"] == reference
    assert document["sha256"] == sha and document["size"] == len(RECORD)
    assert document["filename"] == NAME and document["request"] == exchange.request_id
    assert document["state"] == "available"  # the scan ran behind the response
    assert part_rows(exchange) == []  # the parts are gone once the document exists
    # And the session's wrapped key and sealed name (issue 16: they stayed for a day, so a key
    # store from before destruction recovered every file name from the live database).
    (session,) = session_rows(exchange)
    assert session.wrapped_key == b"" and session.filename_sealed == b""
    content = exchange.client.get(
        f"/api/v1/documents/{reference}/content", headers=exchange.tokens["inspector"]
    )
    assert content.status_code == 200 and content.content == RECORD
    # Asking again at the end is answered with the same document, and changes nothing.
    again = patch(exchange, url, len(RECORD), b"")
    assert again.status_code == 204 and again.headers["upload-document-reference"] == reference
    assert head(exchange, url).headers["upload-document-reference"] == reference


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_upload_page_script_uploads_with_its_session_and_csrf_header(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    """What upload.js does: tus with the session cookie and X-CSRF-Token from the page. The
    token is the session's (issue 18, item 6): another session's is refused. A PATCH larger than
    the 1 MiB an API route otherwise reads is taken (upload routes count against their own limit).
    """
    world = exchange.world
    browser, other = second_client(), second_client()
    sign_in(browser, world.people["uploader"], world.clock)
    sign_in(other, world.people["uploader"], world.clock)
    token = re.search(r'data-csrf-token="([^"]+)"', browser.get("/reviews/SWG24/upload").text)
    assert token
    theirs = re.search(r'data-csrf-token="([^"]+)"', other.get("/reviews/SWG24/upload").text)
    assert theirs and theirs.group(1) != token.group(1)
    body = RECORD * 4  # about 1.3 MiB
    values = {"filename": NAME, "filetype": "text/plain", "review": "SWG24"}
    creation = {**TUS, "Upload-Length": str(len(body)), "Upload-Metadata": metadata(**values)}
    refused = browser.post("/api/v1/uploads", headers={**creation, "X-CSRF-Token": theirs.group(1)})
    assert refused.status_code == 403, refused.text
    created = browser.post("/api/v1/uploads", headers={**creation, "X-CSRF-Token": token.group(1)})
    assert created.status_code == 201, created.text
    sent = browser.patch(
        created.headers["location"],
        content=body,
        headers={**TUS, **OCTETS, "Upload-Offset": "0", "X-CSRF-Token": token.group(1)},
    )
    assert sent.status_code == 204, sent.text
    assert sent.headers["upload-offset"] == str(len(body))


def test_creation_is_checked_before_a_byte_is_sent(exchange: Exchange) -> None:
    def error(answer: Any, status: int, code: str | None = None) -> None:
        assert answer.status_code == status, answer.text
        assert answer.headers["tus-resumable"] == "1.0.0"
        if code is not None:
            assert answer.json()["error"]["code"] == code

    no_version = exchange.client.post(
        "/api/v1/uploads",
        headers={
            **exchange.tokens["uploader"],
            "Upload-Length": "10",
            "Upload-Metadata": metadata(filename="a.txt", review="SWG24"),
        },
    )
    error(no_version, 412, "tus_version_unsupported")
    assert no_version.headers["tus-version"] == "1.0.0"
    deferred = exchange.client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **exchange.tokens["uploader"],
            "Upload-Defer-Length": "1",
            "Upload-Metadata": metadata(filename="a.txt", review="SWG24"),
        },
    )
    error(deferred, 400, "invalid_upload_request")
    no_length = exchange.client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **exchange.tokens["uploader"],
            "Upload-Metadata": metadata(filename="a.txt", review="SWG24"),
        },
    )
    error(no_length, 400, "invalid_upload_request")
    limit = exchange.world.settings.max_upload_bytes
    error(create(exchange, b"", length=limit + 1), 413, "too_large")
    error(create(exchange, b"", length=0), 415, "type_not_allowed")
    error(create(exchange, RECORD, review="NOPE1"), 404, "not_found")
    error(create(exchange, RECORD, case="7KQ2-M9XD-3TPX"), 400, "invalid_reference")
    # Dundee may not upload into Aberdeen's request; the DPO may not upload at all.
    error(create(exchange, RECORD, who="other_uploader", request=str(exchange.request_id)), 404)
    error(create(exchange, RECORD, who="dpo"), 404)
    error(create(exchange, RECORD, sha256="abc"), 400, "invalid_upload_request")
    bad_metadata = exchange.client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **exchange.tokens["uploader"],
            "Upload-Length": "10",
            "Upload-Metadata": "filename not-base64!,review U1dHMjQ=",
        },
    )
    error(bad_metadata, 400, "invalid_upload_request")
    anonymous = exchange.client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "10"})
    error(anonymous, 401)
    assert session_rows(exchange) == []
    # A closed review accepts no new uploads.
    closed = exchange.client.post(
        "/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"], json={}
    )
    assert closed.status_code == 200, closed.text
    error(create(exchange, RECORD), 409, "review_not_open")


def test_patch_errors_change_nothing(exchange: Exchange) -> None:
    url = start(exchange, RECORD)
    blobs_before = blob_ids(exchange)

    def unchanged(answer: Any, status: int, code: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.headers["tus-resumable"] == "1.0.0"
        assert answer.json()["error"]["code"] == code
        assert head(exchange, url).headers["upload-offset"] == "0"
        assert blob_ids(exchange) == blobs_before

    no_version = exchange.client.patch(
        url, content=b"abc", headers={**OCTETS, **exchange.tokens["uploader"], "Upload-Offset": "0"}
    )
    unchanged(no_version, 412, "tus_version_unsupported")
    wrong_type = exchange.client.patch(
        url,
        content=b"abc",
        headers={
            **TUS,
            **exchange.tokens["uploader"],
            "Upload-Offset": "0",
            "Content-Type": "application/octet-stream",
        },
    )
    unchanged(wrong_type, 415, "invalid_content_type")
    unchanged(patch(exchange, url, 5, RECORD[5:100]), 409, "offset_mismatch")
    unchanged(
        patch(exchange, url, 0, b"x" * 10, **{"Upload-Offset": "minus one"}),
        400,
        "invalid_upload_request",
    )
    mismatch = patch(
        exchange, url, 0, RECORD[:1000], **{"Upload-Checksum": checksum("sha1", b"other bytes")}
    )
    unchanged(mismatch, 460, "checksum_mismatch")
    md5 = patch(
        exchange, url, 0, RECORD[:1000], **{"Upload-Checksum": checksum("md5", RECORD[:1000])}
    )
    unchanged(md5, 400, "invalid_upload_request")
    unchanged(patch(exchange, url, 0, RECORD + b"more"), 413, "too_large")
    # Somebody else's upload does not exist for them, whatever they try.
    for who in ("other_uploader", "inspector", "lead"):
        assert head(exchange, url, who).status_code == 404
        assert patch(exchange, url, 0, RECORD[:10], who).status_code == 404
        assert exchange.client.get(url, headers=exchange.tokens[who]).status_code == 404
        assert (
            exchange.client.delete(url, headers={**TUS, **exchange.tokens[who]}).status_code == 404
        )
    assert exchange.client.head(url, headers=TUS).status_code == 401
    made_up = "/api/v1/uploads/" + "B" * 32
    assert head(exchange, made_up).status_code == 404
    assert head(exchange, "/api/v1/uploads/short").status_code == 404
    # After all that, the right bytes at the right offset are accepted.
    accepted = patch(
        exchange, url, 0, RECORD[:1000], **{"Upload-Checksum": checksum("sha1", RECORD[:1000])}
    )
    assert accepted.status_code == 204 and accepted.headers["upload-offset"] == "1000"


def test_termination_removes_every_part(exchange: Exchange) -> None:
    blobs_before = blob_ids(exchange)
    url = start(exchange, RECORD)
    assert patch(exchange, url, 0, RECORD[:5000]).status_code == 204
    assert patch(exchange, url, 5000, RECORD[5000:9000]).status_code == 204
    assert len(blob_ids(exchange) - blobs_before) == 2
    gone = exchange.client.delete(url, headers={**TUS, **exchange.tokens["uploader"]})
    assert gone.status_code == 204 and gone.headers["tus-resumable"] == "1.0.0"
    assert head(exchange, url).status_code == 404
    assert blob_ids(exchange) == blobs_before
    assert part_rows(exchange) == [] and session_rows(exchange) == []


def test_sessions_expire_a_day_after_the_last_patch_and_are_swept(exchange: Exchange) -> None:
    clock = exchange.world.clock
    blobs_before = blob_ids(exchange)
    kept = start(exchange, RECORD)
    dropped = start(exchange, RECORD)
    assert patch(exchange, dropped, 0, RECORD[:100]).status_code == 204
    clock.advance(hours=23)
    assert patch(exchange, kept, 0, RECORD[:100]).status_code == 204  # this one is still alive
    clock.advance(hours=2)
    assert head(exchange, dropped).status_code == 410
    assert patch(exchange, dropped, 100, RECORD[100:200]).status_code == 410
    assert head(exchange, kept).headers["upload-offset"] == "100"
    settings = exchange.world.settings
    engine = make_engine(settings.database_url)
    vault = open_vault(settings)
    try:
        assert expire_uploads(engine, vault, now=clock()) == 1
        assert expire_uploads(engine, vault, now=clock()) == 0
        # The parts of the live upload are in use: the orphan sweep leaves them alone.
        with Session(engine) as db:
            in_use = part_blob_ids(db)
        assert len(in_use) == 1 and in_use <= blob_ids(exchange)
        sweep_orphan_blobs(
            engine, vault, now=clock(), grace=timedelta(0), also_in_use=part_blob_ids
        )
        assert blob_ids(exchange) - blobs_before == in_use
    finally:
        engine.dispose()
    assert head(exchange, dropped).status_code == 404
    assert patch(exchange, kept, 100, RECORD[100:]).status_code == 204


def _files_under(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


def test_parts_and_names_are_ciphertext_at_rest(exchange: Exchange, tmp_path: Path) -> None:
    url = start(exchange, RECORD)
    for start_at in range(0, 60_000, 20_000):
        assert (
            patch(exchange, url, start_at, RECORD[start_at : start_at + 20_000]).status_code == 204
        )
    # Everything the portal wrote: blobs, keys, and the SQLite database where it is one.
    written = list(_files_under(tmp_path))
    parts = part_rows(exchange)
    assert len(parts) == 3
    names = {path.name for path in written}
    assert {part.blob_id for part in parts} <= names, "the part blobs are not where we look"
    for path in written:
        data = path.read_bytes()
        assert MARKER not in data, f"plaintext in {path}"
        assert NAME.encode() not in data and b"Jordan Example" not in data, f"file name in {path}"
    finished = patch(exchange, url, 60_000, RECORD[60_000:])
    assert finished.status_code == 204
    for path in _files_under(tmp_path):
        assert MARKER not in path.read_bytes(), f"plaintext in {path}"


@pytest.mark.parametrize(
    ("content", "sha256", "status", "code"),
    [
        (ELF, None, 415, "type_not_allowed"),
        (
            b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>" * 50,
            None,
            415,
            "type_not_allowed",
        ),
        (RECORD, "0" * 64, 400, "checksum_mismatch"),
    ],
    ids=["elf", "html", "sha256"],
)
def test_refused_at_completion_leaves_nothing(
    exchange: Exchange, content: bytes, sha256: str | None, status: int, code: str
) -> None:
    blobs_before = blob_ids(exchange)
    extra = {"sha256": sha256} if sha256 else {}
    url = start(exchange, content, name="tool.txt", **extra)
    half = len(content) // 2
    assert patch(exchange, url, 0, content[:half]).status_code == 204
    refused = patch(exchange, url, half, content[half:])
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["code"] == code
    assert refused.headers["tus-resumable"] == "1.0.0"
    assert head(exchange, url).status_code == 404
    assert part_rows(exchange) == [] and session_rows(exchange) == []
    assert blob_ids(exchange) == blobs_before
    listed = exchange.client.get(
        "/api/v1/reviews/SWG24/documents", headers=exchange.tokens["uploader"]
    )
    assert listed.json()["items"] == []


def test_eicar_through_tus_is_rejected_by_the_scan(exchange: Exchange) -> None:
    url = start(exchange, EICAR, name="notes.txt")
    assert patch(exchange, url, 0, EICAR[:30]).status_code == 204
    last = patch(exchange, url, 30, EICAR[30:])
    assert last.status_code == 204, last.text
    document = exchange.client.get(url, headers=exchange.tokens["uploader"]).json()["document"]
    assert document["state"] == "rejected"
    assert document["scan"]["signature"].startswith("Eicar-Test-Signature")
    content = exchange.client.get(
        f"/api/v1/documents/{document['reference']}/content", headers=exchange.tokens["inspector"]
    )
    assert content.status_code == 400


def test_a_smaller_limit_is_enforced_at_creation(exchange: Exchange) -> None:
    import dataclasses

    settings = dataclasses.replace(exchange.world.settings, max_upload_bytes=1000)
    app = create_app(settings, clock=exchange.world.clock, password_hasher=cheap_hasher())
    with TestClient(app) as client:
        options = client.options("/api/v1/uploads", headers=exchange.tokens["uploader"])
        assert options.headers["tus-max-size"] == "1000"
        over = client.post(
            "/api/v1/uploads",
            headers={
                **TUS,
                **exchange.tokens["uploader"],
                "Upload-Length": "1001",
                "Upload-Metadata": metadata(filename="a.txt", review="SWG24"),
            },
        )
        assert over.status_code == 413 and over.json()["error"]["code"] == "too_large"


# --- Against a live server, with tuspy ----------------------------------------------------------


@pytest.fixture
def live(exchange: Exchange) -> Iterator[str]:
    world = exchange.world
    with serving(
        create_app(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    ) as url:
        yield url


def wait_until_scanned(base: str, reference: str, headers: dict[str, str]) -> dict[str, Any]:
    import requests

    deadline = time.monotonic() + PATIENCE
    while True:
        document: dict[str, Any] = requests.get(
            f"{base}/api/v1/documents/{reference}", headers=headers, timeout=10
        ).json()
        if document["state"] != "pending_scan" or time.monotonic() > deadline:
            return document
        time.sleep(0.1)


def test_tuspy_resumes_from_a_new_client_after_an_interruption(
    exchange: Exchange, live: str, tmp_path: Path
) -> None:
    from tusclient.client import TusClient
    from tusclient.storage.filestorage import FileStorage

    source = tmp_path / "upload" / "case file.txt"
    source.parent.mkdir()
    content = RECORD * 2  # about 650 KiB, sent in 64 KiB chunks
    source.write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    store = str(tmp_path / "tus-urls.json")
    values = {"filename": source.name, "filetype": "text/plain", "review": "SWG24", "sha256": sha}

    def uploader() -> Any:
        client = TusClient(f"{live}/api/v1/uploads", headers=exchange.tokens["uploader"])
        return client.uploader(
            file_path=str(source),
            chunk_size=64 * 1024,
            metadata=values,
            store_url=True,
            url_storage=FileStorage(store),  # type: ignore[no-untyped-call]  # tuspy is untyped
            upload_checksum=True,
        )

    first = uploader()
    first.upload(stop_at=5 * 64 * 1024)  # the client stops after five chunks
    assert first.offset == 5 * 64 * 1024
    assert "upload-document-reference" not in first.request.response_headers

    second = uploader()  # a new client: it finds the stored URL and asks the server where it stands
    assert second.url == first.url and second.offset == 5 * 64 * 1024
    second.upload()
    reference = second.request.response_headers["upload-document-reference"]
    document = wait_until_scanned(live, reference, exchange.tokens["inspector"])
    assert document["sha256"] == sha and document["state"] == "available"
    assert document["filename"] == "case file.txt"
    import requests

    downloaded = requests.get(
        f"{live}/api/v1/documents/{reference}/content",
        headers=exchange.tokens["inspector"],
        timeout=10,
    )
    assert hashlib.sha256(downloaded.content).hexdigest() == sha


def test_a_patch_cut_short_keeps_what_arrived(exchange: Exchange, live: str) -> None:
    url = start(exchange, RECORD)
    host, port = live.removeprefix("http://").split(":")
    token = exchange.tokens["uploader"]["Authorization"]
    sent = 200_000
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            (
                f"PATCH {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
                "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Upload-Offset: 0\r\nContent-Length: {len(RECORD)}\r\n\r\n"
            ).encode()
            + RECORD[:sent]
        )
        time.sleep(0.5)  # let the server take in what was sent, then the line drops
    import requests

    headers = {**TUS, **exchange.tokens["uploader"]}
    deadline = time.monotonic() + PATIENCE
    while True:
        offset = int(
            requests.head(f"{live}{url}", headers=headers, timeout=10).headers["upload-offset"]
        )
        if offset or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 0 < offset <= sent
    finished = requests.patch(
        f"{live}{url}",
        data=RECORD[offset:],
        headers={**headers, **OCTETS, "Upload-Offset": str(offset)},
        timeout=30,
    )
    assert finished.status_code == 204, finished.text
    document = wait_until_scanned(
        live, finished.headers["upload-document-reference"], exchange.tokens["uploader"]
    )
    assert document["sha256"] == hashlib.sha256(RECORD).hexdigest()


def test_a_completion_that_failed_is_tried_again_by_an_empty_patch(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portal.exchange import documents
    from storage import StorageUnavailable

    real_store_upload = documents.store_upload

    def store_unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("the blob store is down")

    url = start(exchange, RECORD)
    monkeypatch.setattr(documents, "store_upload", store_unavailable)
    with pytest.raises(StorageUnavailable):  # the test client re-raises what became a 500
        patch(exchange, url, 0, RECORD)
    monkeypatch.setattr(documents, "store_upload", real_store_upload)
    # Every byte is kept; no document yet.
    assert head(exchange, url).headers["upload-offset"] == str(len(RECORD))
    assert exchange.client.get(url, headers=exchange.tokens["uploader"]).json()["state"] == (
        "receiving"
    )
    assert len(part_rows(exchange)) == 1
    retried = patch(exchange, url, len(RECORD), b"")
    assert retried.status_code == 204, retried.text
    reference = retried.headers["upload-document-reference"]
    document = exchange.client.get(url, headers=exchange.tokens["uploader"]).json()["document"]
    assert document["reference"] == reference and document["state"] == "available"
    assert part_rows(exchange) == []

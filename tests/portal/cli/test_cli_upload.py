"""``portal upload`` end to end: the command against a live portal, through tuspy, resuming."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from portal.cli import main
from portal.web.app import create_app
from tests.harness.ports import free_port
from tests.harness.serving import serving
from tests.portal.conftest import Exchange, cheap_hasher
from tests.portal.uploads.test_tus import ELF, RECORD

CHUNK = 64 * 1024


@pytest.fixture
def portal_url(exchange: Exchange) -> Iterator[str]:
    world = exchange.world
    app = create_app(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    with serving(app) as url:
        yield url


@pytest.fixture
def token_file(exchange: Exchange, tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(exchange.tokens["uploader"]["Authorization"].removeprefix("Bearer ") + "\n")
    return path


def run(tmp_path: Path, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
    environment = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PORTAL_TOKEN": "", **(env or {})}
    return CliRunner().invoke(main, ["upload", *args], env=environment, catch_exceptions=False)


def document(base: str, exchange: Exchange, reference: str) -> dict[str, Any]:
    answer = requests.get(
        f"{base}/api/v1/documents/{reference}", headers=exchange.tokens["uploader"], timeout=10
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_files_are_uploaded_and_their_documents_printed_as_json(
    exchange: Exchange, portal_url: str, token_file: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "minutes.txt", tmp_path / "plan.csv"
    first.write_bytes(RECORD)
    second.write_bytes(b"date,action\n2026-11-02,home visit\n" * 100)
    result = run(
        tmp_path,
        "--review",
        "swg24",
        "--request",
        str(exchange.request_id),
        "--url",
        portal_url,
        "--token-file",
        str(token_file),
        "--json",
        "--chunk-size",
        str(CHUNK),
        str(first),
        str(second),
    )
    assert result.exit_code == 0, result.output + result.stderr
    documents = json.loads(result.stdout)
    assert [d["sha256"] for d in documents] == [
        hashlib.sha256(first.read_bytes()).hexdigest(),
        hashlib.sha256(second.read_bytes()).hexdigest(),
    ]
    assert [d["filename"] for d in documents] == ["minutes.txt", "plan.csv"]
    assert {d["request"] for d in documents} == {exchange.request_id}
    # Nothing is left to resume, and the resume file holds no file name.
    stored = (tmp_path / "cache" / "portal" / "uploads.json").read_text()
    assert "minutes" not in stored and "/api/v1/uploads/" not in stored


def test_an_interrupted_upload_resumes_when_run_again(
    exchange: Exchange,
    portal_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tusclient.exceptions import TusUploadFailed
    from tusclient.uploader.uploader import Uploader

    source = tmp_path / "case notes.txt"
    source.write_bytes(RECORD)  # about 330 KiB: six chunks
    real_upload_chunk = Uploader.upload_chunk
    sent: list[int] = []

    def drops_after_three_chunks(self: Any) -> None:
        if len(sent) == 3:
            error = ConnectionResetError("connection reset by peer")
            raise TusUploadFailed(error)  # type: ignore[no-untyped-call]  # tuspy is untyped
        sent.append(self.offset)
        real_upload_chunk(self)  # type: ignore[no-untyped-call]  # tuspy is untyped

    monkeypatch.setattr(Uploader, "upload_chunk", drops_after_three_chunks)
    token = exchange.tokens["uploader"]["Authorization"].removeprefix("Bearer ")
    env = {"PORTAL_URL": portal_url, "PORTAL_TOKEN": token}
    args = ("--review", "SWG24", "--chunk-size", str(CHUNK), str(source))
    interrupted = run(tmp_path, *args, env=env)
    assert interrupted.exit_code == 1
    assert "Run the same command again" in interrupted.stderr
    assert "connection reset" in interrupted.stderr

    monkeypatch.undo()
    resumed = run(tmp_path, *args, env=env)
    assert resumed.exit_code == 0, resumed.stderr
    assert f"resuming at byte {3 * CHUNK:,}" in resumed.stderr
    reference = resumed.stdout.split()[0]
    body = document(portal_url, exchange, reference)
    assert body["sha256"] == hashlib.sha256(RECORD).hexdigest()
    assert body["size"] == len(RECORD)


def test_a_refused_file_is_reported_and_the_others_still_go(
    exchange: Exchange, portal_url: str, token_file: Path, tmp_path: Path
) -> None:
    """The installed ``portal`` program itself, as a user runs it."""
    program, notes = tmp_path / "report.txt", tmp_path / "notes.txt"
    program.write_bytes(ELF)
    notes.write_bytes(RECORD)

    def portal_upload(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "portal"), "upload", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PORTAL_URL": portal_url},
        )

    both = portal_upload(
        "--review", "SWG24", "--token-file", str(token_file), str(program), str(notes)
    )
    assert both.returncode == 1, both.stderr
    assert "report.txt: refused:" in both.stderr and "(type_not_allowed)" in both.stderr
    reference = both.stdout.split()[0]
    assert document(portal_url, exchange, reference)["sha256"] == (
        hashlib.sha256(RECORD).hexdigest()
    )
    # Refused before a byte is sent: a review that does not exist.
    missing = portal_upload("--review", "NOPE1", "--token-file", str(token_file), str(notes))
    assert missing.returncode == 1 and "(not_found)" in missing.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_usage_errors_exit_2(exchange: Exchange, token_file: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(RECORD)
    url = ("--url", "http://127.0.0.1:9")
    no_token = run(tmp_path, "--review", "SWG24", *url, str(notes))
    assert no_token.exit_code == 2 and "PORTAL_TOKEN" in no_token.stderr
    no_file = run(
        tmp_path, "--review", "SWG24", *url, "--token-file", str(token_file), str(tmp_path / "x")
    )
    assert no_file.exit_code == 2
    no_review = run(tmp_path, *url, "--token-file", str(token_file), str(notes))
    assert no_review.exit_code == 2
    bad_url = run(tmp_path, "--review", "SWG24", "--url", "ftp://x", str(notes))
    assert bad_url.exit_code == 2


# --- Refusals are final, interruptions are worth running again (issue 18, item 8) ----------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_closed_review_is_a_refusal_not_an_interruption(
    exchange: Exchange, portal_url: str, token_file: Path, tmp_path: Path
) -> None:
    closed = exchange.client.post("/api/v1/reviews/SWG24/close", headers=exchange.tokens["lead"])
    assert closed.status_code == 200, closed.text
    notes = tmp_path / "notes.txt"
    notes.write_bytes(RECORD)
    args = ("--review", "SWG24", "--url", portal_url, "--token-file", str(token_file), str(notes))
    result = run(tmp_path, *args)
    assert result.exit_code == 1
    assert f"{notes}: refused: " in result.stderr and "(review_not_open)" in result.stderr
    assert "interrupted" not in result.stderr and "again" not in result.stderr
    # Nothing is kept to resume: the next run asks the server afresh.
    stored = tmp_path / "cache" / "portal" / "uploads.json"
    assert not stored.exists() or "uploads" not in stored.read_text()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("given", ["--url", "PORTAL_PUBLIC_URL"])
def test_an_unreachable_portal_is_named_with_where_its_address_came_from(
    exchange: Exchange, token_file: Path, tmp_path: Path, given: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    notes = tmp_path / "notes.txt"
    notes.write_bytes(RECORD)
    args = ["--review", "SWG24", "--token-file", str(token_file), str(notes)]
    env: dict[str, str | None] = {"PORTAL_URL": None, "PORTAL_PUBLIC_URL": None}
    if given == "--url":
        args = ["--url", nowhere, *args]
    else:
        env["PORTAL_PUBLIC_URL"] = nowhere
    result = run(tmp_path, *args, env=env)
    assert result.exit_code == 1
    assert f"interrupted: cannot reach the portal at {nowhere}" in result.stderr
    origin = "given by --url" if given == "--url" else "PORTAL_PUBLIC_URL's"
    assert origin in result.stderr and "Connection refused" in result.stderr
    assert "Run the same command again" in result.stderr


def test_the_address_says_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.cli.client import address_origin

    monkeypatch.delenv("PORTAL_PUBLIC_URL", raising=False)
    assert "none of --url, PORTAL_URL or PORTAL_PUBLIC_URL is set" in address_origin(None)
    assert address_origin("http://portal.example") == "given by --url or PORTAL_URL"


@pytest.mark.parametrize(
    ("status", "code", "worth_running_again"),
    [
        (None, None, True),  # no answer: the network
        (500, "internal_error", True),
        (502, None, True),
        (503, "unavailable", True),
        (409, "offset_mismatch", True),  # tus: another run moved the offset on
        (460, "checksum_mismatch", True),  # tus: the part arrived damaged
        (409, "review_not_open", False),
        (400, "invalid_upload_request", False),
        (401, "unauthenticated", False),
        (404, "not_found", False),
        (413, "too_large", False),
        (415, "type_not_allowed", False),
        (429, "too_many_uploads", False),
        (410, "upload_expired", False),
    ],
)
def test_only_the_network_and_5xx_are_interruptions(
    status: int | None, code: str | None, worth_running_again: bool
) -> None:
    from portal.cli.upload import resumable

    assert resumable(status, code) is worth_running_again

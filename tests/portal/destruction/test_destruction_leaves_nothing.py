"""After destruction nothing typed into the review can be read back, anywhere (issue 16).

Found by a tester acting as a DPO: a records request's title and instructions naming a child
stayed in plain text in ``records_request`` after the review was destroyed, and were still served;
upload sessions kept sealed names and wrapped keys for a day. The promise (SPEC §4, §5,
docs/destruction.md) is checked the way the tester did it, by searching every byte the portal
holds: the database file and its journal or WAL, the blob store, the key service's folder, the
temporary folder, and everything logged, for every string a person typed into the review and
every file name. A backup taken before destruction is searched too, and restored with the key
service as it is after destruction: nothing of the review can be opened from it either.

The review's own title and legal basis are searched for too: a lead types them, so they are
sealed under the review's key like every other typed text (docs/destruction.md, "Free texts
sealed under the review's key"); after destruction the review is named by its code only.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql
from sqlalchemy import MetaData, select
from starlette.testclient import TestClient

from portal.cli import main
from portal.db import make_engine
from portal.runtime import build_runtime
from portal.settings import Settings
from portal.web.app import create_app
from portal.worker import Worker
from tests.harness.database import sqlalchemy_url
from tests.portal.conftest import (
    LEGAL_BASIS,
    REVIEW_TITLE,
    Exchange,
    World,
    api_token,
    cheap_hasher,
)
from tests.portal.uploads.test_tus import RECORD, patch, start

CONTENT = b"Chronology of involvement, 2019-2026. Home visits, case conferences.\n" * 40


def _portal(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


class Typed:
    """Everything a person types into the review in this test, each with a marker of its own."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.title = f"Records for Callum Mackenzie-{tag}, born 2014"
        self.instructions = f"Include the child protection plan for Callum-{tag} and his sister."
        self.names = [f"Callum-{tag}-chronology-{n}.txt" for n in range(3)]
        self.tus_name = f"Callum-{tag}-assessment.txt"
        self.unfinished_name = f"Callum-{tag}-half-sent.txt"
        self.withdrawn_name = f"Callum-{tag}-wrong-file.txt"
        self.order_reference = f"CO/2027/{tag.upper()}"
        # The review's own texts, typed by its lead when the exchange fixture made it.
        self.review_title = REVIEW_TITLE
        self.legal_basis = LEGAL_BASIS

    def strings(self) -> list[str]:
        return [
            self.review_title,
            self.legal_basis,
            self.title,
            self.instructions,
            *self.names,
            self.tus_name,
            self.unfinished_name,
            self.withdrawn_name,
            self.order_reference,
            # the distinctive parts alone, in case a column or a log keeps a fragment
            self.title.split(", ")[0].removeprefix("Records for "),
            self.instructions.split(" for ")[1].split(" and ")[0],
        ]


def _forms(text: str) -> list[bytes]:
    """The forms a string could be stored in: UTF-8, UTF-16 (either order), and lower case."""
    return [
        text.encode(),
        text.lower().encode(),
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
        quote(text, safe="").encode(),  # as a Content-Disposition or a URL would carry it
    ]


def _found_in_files(folders: list[Path], typed: Typed) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            data = path.read_bytes()
            for text in typed.strings():
                if any(form in data for form in _forms(text)):
                    found.append(f"{text!r} in {path}")
    return found


def _found_in_rows(database_url: str, typed: Typed) -> list[str]:
    """Every column of every row, as the database gives it back (PostgreSQL's files are not ours
    to read; its rows are)."""
    engine = make_engine(database_url)
    found = []
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            for name, table in sorted(tables.tables.items()):
                for row in connection.execute(select(table)):
                    for value in row:
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        for text in typed.strings():
                            if any(form in raw for form in _forms(text)):
                                found.append(f"{text!r} in {name}")
    finally:
        engine.dispose()
    return found


@pytest.fixture
def restore_database(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str | None]:
    """An empty database of the same kind to restore into (None: SQLite, a file in the home)."""
    if not settings.database_url.startswith("postgresql"):
        yield None
        return
    admin: str = request.getfixturevalue("pg_admin_url")
    name = f"portal_restore_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield sqlalchemy_url(admin.rsplit("/", 1)[0] + "/" + name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temporary folder the portal uses during the test (spooled uploads, exports)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def _fill_the_review(exchange: Exchange, typed: Typed) -> None:
    client, tokens = exchange.client, exchange.tokens
    asked = client.post(
        "/api/v1/reviews/SWG24/requests",
        json={
            "organisation": "aberdeen-city",
            "title": typed.title,
            "instructions": typed.instructions,
            "due_on": "2026-12-20",
            "expected": 3,
        },
        headers=tokens["lead"],
    )
    assert asked.status_code == 201, asked.text
    case = client.post("/api/v1/reviews/SWG24/cases", headers=tokens["uploader"])
    assert case.status_code == 201, case.text
    sent = [
        exchange.upload("uploader", CONTENT + name.encode(), name, case=case.json()["reference"])
        for name in typed.names
    ]
    assert all(answer.status_code == 201 for answer in sent), [a.text for a in sent]
    # Resumable uploads: one finished, one left half-way (its session and parts stay until
    # destruction at the latest).
    url = start(exchange, RECORD, name=typed.tus_name)
    assert patch(exchange, url, 0, RECORD).status_code == 204
    unfinished = start(exchange, RECORD, name=typed.unfinished_name)
    assert patch(exchange, unfinished, 0, RECORD[: len(RECORD) // 2]).status_code == 204
    wrong = exchange.upload("uploader", CONTENT, typed.withdrawn_name)
    assert wrong.status_code == 201, wrong.text
    withdrawn = client.post(
        f"/api/v1/documents/{wrong.json()['reference']}/withdraw",
        json={"reason": "wrong_file"},
        headers=tokens["uploader"],
    )
    assert withdrawn.status_code == 200, withdrawn.text
    # A hold with an order reference, placed and lifted before the review's end.
    held = client.post(
        "/api/v1/holds",
        json={
            "review": "SWG24",
            "document": sent[0].json()["reference"],
            "reason": "legal",
            "order_reference": typed.order_reference,
        },
        headers=tokens["dpo"],
    )
    assert held.status_code == 201, held.text
    # Everything scanned, and read once by the inspector, before the review ends.
    worker = Worker(
        build_runtime(
            exchange.world.settings, clock=exchange.world.clock, password_hasher=cheap_hasher()
        )
    )
    worker.run_round(force=True)
    for answer in sent:
        content = client.get(
            f"/api/v1/documents/{answer.json()['reference']}/content", headers=tokens["inspector"]
        )
        assert content.status_code == 200, content.text
    listed = client.get("/api/v1/reviews/SWG24/requests", headers=tokens["uploader"]).text
    assert typed.title in listed  # readable while the review is live
    review = client.get("/api/v1/reviews/SWG24", headers=tokens["lead"]).json()
    assert (review["title"], review["legal_basis"]) == (typed.review_title, typed.legal_basis)
    lifted = client.post(
        f"/api/v1/holds/{held.json()['id']}/lift",
        json={"reason": "proceedings_concluded"},
        headers=tokens["dpo"],
    )
    assert lifted.status_code == 200, lifted.text


def _destroy(exchange: Exchange) -> None:
    client, tokens = exchange.client, exchange.tokens
    closed = client.post("/api/v1/reviews/SWG24/close", headers=tokens["lead"], json={})
    assert closed.status_code == 200, closed.text
    early = "/api/v1/reviews/SWG24/destruction"
    assert client.post(f"{early}/request", headers=tokens["dpo"]).status_code == 201
    assert client.post(f"{early}/approve", headers=tokens["admin"]).status_code == 200
    env = dict(exchange.world.settings.sources)
    ran = _portal(
        env, "destroy", "run", "--review", "SWG24", "--by", exchange.world.people["dpo"].email
    )
    assert ran.exit_code == 0, ran.output


def _what_the_pages_show(client: TestClient, world: World, typed: Typed) -> list[str]:
    found = []
    tokens = {who: api_token(world, who) for who in ("uploader", "lead", "inspector", "dpo")}
    for who, token in tokens.items():
        for path in (
            "/api/v1/reviews",
            "/api/v1/reviews/SWG24",
            "/api/v1/reviews/SWG24/requests",
            "/api/v1/reviews/SWG24/documents",
        ):
            answer = client.get(path, headers=token)
            for text in typed.strings():
                if text in answer.text:
                    found.append(f"{text!r} served to the {who} by {path}")
    return found


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_after_destruction_no_typed_word_or_file_name_is_readable_anywhere(
    exchange: Exchange,
    private_tmp: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    restore_database: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    world = exchange.world
    settings = world.settings
    typed = Typed()
    _fill_the_review(exchange, typed)

    backup = tmp_path / "backup"
    made = _portal(dict(settings.sources), "backup", str(backup))
    assert made.exit_code == 0, made.output

    _destroy(exchange)
    exchange.client.close()

    # The test's folder holds it all: the SQLite file and its WAL or journal, the home with its
    # blob store and key folder, the temporary folder, and the backup.
    assert private_tmp.parent == tmp_path and settings.key_dir.is_relative_to(tmp_path)
    found = _found_in_files([tmp_path], typed) + _found_in_rows(settings.database_url, typed)
    found += [f"{text!r} in the log" for text in typed.strings() if text in caplog.text]
    app = create_app(settings, clock=world.clock, password_hasher=cheap_hasher())
    with TestClient(app, follow_redirects=False) as client:
        found += _what_the_pages_show(client, world, typed)
    assert found == [], "\n".join(found)

    # The backup from before destruction, read raw, then restored with today's key service.
    assert _found_in_files([backup], typed) == []
    fresh = {
        "PORTAL_HOME": str(tmp_path / "restored"),
        "PORTAL_KEY_DIR": str(settings.key_dir),
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
        "PORTAL_OPERATOR": world.people["admin"].email,
    }
    if restore_database is not None:
        fresh["PORTAL_DATABASE_URL"] = restore_database
    restored = _portal(fresh, "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    restored_settings = Settings.from_environ(fresh)
    assert _found_in_rows(restored_settings.database_url, typed) == []
    app = create_app(restored_settings, clock=world.clock, password_hasher=cheap_hasher())
    with TestClient(app, follow_redirects=False) as client:
        assert _what_the_pages_show(client, world, typed) == []
        requests = client.get("/api/v1/reviews/SWG24/requests", headers=exchange.tokens["lead"])
        assert requests.status_code == 200, requests.text
        ours = [r for r in requests.json()["items"] if r.get("expected") == 3]
        assert ours and all(r["closed_by_destruction"] for r in ours), requests.text
        review = client.get("/api/v1/reviews/SWG24", headers=exchange.tokens["lead"]).json()
        assert review["closed_by_destruction"] and review["title"] is None, review

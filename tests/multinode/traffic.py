"""What the tests send to the nodes: tus requests, uploads, sign-in, and what they read back
(document states, audit events) — over HTTP with httpx, or from the shared database."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import func, literal_column, select, union_all
from sqlalchemy.engine import Engine

from audit import Outcome
from audit.tables import event_table, pending_table
from portal.audit_vocabulary import Action
from tests.portal.conftest import Person

from .topology import wait_for

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
UPLOAD_PATH = re.compile(r"^/api/v1/uploads/[A-Za-z0-9_-]{32}$")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def record(label: str, size: int) -> bytes:
    """A plain-text record of about ``size`` bytes, unlike any other (clamd caches by content)."""
    line = f"{label} {secrets.token_hex(8)}: home visit notes, the plan was agreed.\n".encode()
    return (line * (size // len(line) + 1))[:size]


def metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def tus_create(client: httpx.Client, token: dict[str, str], review: str, body: bytes) -> str:
    """A new resumable upload of ``body``'s length; returns its path (same on every node)."""
    created = client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **token,
            "Upload-Length": str(len(body)),
            "Upload-Metadata": metadata(
                filename="case notes.txt",
                filetype="text/plain",
                review=review,
                sha256=hashlib.sha256(body).hexdigest(),
            ),
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert UPLOAD_PATH.match(location), location
    return location


def tus_patch(
    client: httpx.Client, token: dict[str, str], path: str, offset: int, data: bytes
) -> httpx.Response:
    return client.patch(
        path, content=data, headers={**TUS, **OCTETS, **token, "Upload-Offset": str(offset)}
    )


def tus_offset(client: httpx.Client, token: dict[str, str], path: str) -> int:
    status = client.head(path, headers={**TUS, **token})
    assert status.status_code == 200, status.text
    return int(status.headers["upload-offset"])


def post_document(
    client: httpx.Client, token: dict[str, str], review: str, body: bytes
) -> httpx.Response:
    """A whole document in one streamed request (the non-resumable API)."""
    return client.post(
        f"/api/v1/reviews/{review}/documents",
        params={"sha256": hashlib.sha256(body).hexdigest()},
        content=body,
        headers={
            **token,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote('minutes.txt')}",
            "Content-Type": "application/octet-stream",
        },
    )


def document(client: httpx.Client, token: dict[str, str], reference: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/documents/{reference}", headers=token)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wait_until_scanned(
    client: httpx.Client, token: dict[str, str], reference: str
) -> dict[str, Any]:
    """The document once it has left ``pending_scan`` (bounded: 30 s)."""

    def scanned() -> dict[str, Any] | None:
        found = document(client, token, reference)
        return found if found["state"] != "pending_scan" else None

    return wait_for(f"document {reference} scanned", scanned)


def content_sha256(client: httpx.Client, token: dict[str, str], reference: str) -> str:
    answer = client.get(f"/api/v1/documents/{reference}/content", headers=token)
    assert answer.status_code == 200, answer.text
    return hashlib.sha256(answer.content).hexdigest()


def events(engine: Engine, action: Action, *, outcome: Outcome | None = None) -> dict[str, int]:
    """How many events of ``action`` each document has: chained or still waiting to be chained
    (``audit_pending``), counted in one statement so that an event moving between the two tables
    is counted once."""
    parts = []
    for table in (event_table, pending_table):
        query = select(table.c.document.label("document")).where(table.c.action == action.value)
        if outcome is not None:
            query = query.where(table.c.outcome == outcome.value)
        parts.append(query)
    both = union_all(*parts).subquery()
    counted = select(both.c.document, func.count(literal_column("*"))).group_by(both.c.document)
    with engine.connect() as connection:
        return {str(doc): int(n) for doc, n in connection.execute(counted).all()}


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: httpx.Client, person: Person, code: str) -> None:
    """Password, then the authenticator's ``code``, through the pages as a browser does."""
    page = client.get("/sign-in")
    answer = client.post(
        "/sign-in",
        data={
            "email": person.email,
            "password": person.password,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/sign-in/code"
    page = client.get("/sign-in/code")
    answer = client.post("/sign-in/code", data={"code": code, "csrf_token": csrf_from(page.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"

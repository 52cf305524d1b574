"""No route reads more body than its limit, and nothing large is parsed before authentication.

Found as an attacker (issue 18, item 3): ``POST /sign-in`` with a 900 MB urlencoded body made the
server hold about 1 GB (the CSRF check parsed the form with Starlette's defaults). Memory is not
measured here (bench/hostile_bodies.py does that against a real server): these tests call the app
at the ASGI level with a ``receive`` that counts the bytes it hands out, and check that the 413
comes back having consumed at most the limit and one chunk, or nothing at all when the
Content-Length says too much.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from portal.web.bodies import FORM_MAX_BYTES, FORM_MAX_FIELDS, JSON_MAX_BYTES, JSON_MAX_DEPTH
from tests.portal.conftest import SettableClock, World, api_token, csrf_from, sign_in

CHUNK = 64 * 1024
# Larger than every limit that applies here (the old code read all of it): 4 MiB, not 900 MB,
# so that the old code fails these tests quickly rather than slowly.
HOSTILE = 4 * 1024 * 1024
URLENCODED = b"application/x-www-form-urlencoded"
# Reading a body does not depend on the database: one run, not one per database.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Hostile:
    """A body of ``total`` bytes handed out ``CHUNK`` at a time, counted."""

    total: int = HOSTILE
    handed_out: int = 0
    sent: list[Message] = field(default_factory=list)

    async def receive(self) -> Message:
        if self.handed_out >= self.total:
            return {"type": "http.disconnect"}
        piece = min(CHUNK, self.total - self.handed_out)
        self.handed_out += piece
        return {
            "type": "http.request",
            "body": b"a=" + b"b" * (piece - 2),
            "more_body": self.handed_out < self.total,
        }

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(next(m for m in self.sent if m["type"] == "http.response.start")["status"])

    @property
    def answer(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def post_hostile(
    client: TestClient,
    path: str,
    *,
    content_type: bytes,
    headers: dict[str, str] | None = None,
    content_length: int | None = None,
    cookies: bool = True,
) -> Hostile:
    """POST a hostile body to the app itself, with this client's cookies (a signed-in browser)."""
    raw = [(b"content-type", content_type), (b"host", b"testserver")]
    if content_length is not None:
        raw.append((b"content-length", str(content_length).encode()))
    if cookies and client.cookies:
        jar = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        raw.append((b"cookie", jar.encode()))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": client.app_state.copy(),  # the lifespan's runtime, as the server passes it
    }
    hostile = Hostile()

    async def call() -> None:
        await client.app(scope, hostile.receive, hostile.send)

    # On the client's own event loop thread (its lifespan's): this thread may already run a loop
    # (Playwright's sync API leaves one in a worker that ran the browser tests).
    assert client.portal is not None, "use the client inside its with block"
    client.portal.call(call)
    return hostile


def refused_at(hostile: Hostile, limit: int) -> None:
    assert hostile.status == 413, hostile.answer[:300]
    assert b"body_too_large" in hostile.answer or b"too large" in hostile.answer
    assert hostile.handed_out <= limit + CHUNK, f"read {hostile.handed_out:,} of {HOSTILE:,}"


# --- Before authentication ----------------------------------------------------------------------


def test_a_small_sign_in_form_is_read(client: TestClient, world: World) -> None:
    """The happy path: a form near the bound is read as usual (here: a wrong password)."""
    page = client.get("/sign-in")
    padding = "x" * (FORM_MAX_BYTES - 2000)
    answer = client.post(
        "/sign-in",
        data={"email": "nobody@example.org", "password": "wrong", "pad": padding}
        | {"csrf_token": csrf_from(page.text)},
    )
    assert answer.status_code == 400 and "sign" in answer.text.lower()


def test_a_huge_sign_in_body_is_refused_at_the_form_bound(client: TestClient) -> None:
    client.get("/sign-in")  # a CSRF cookie, as a browser has
    refused_at(post_hostile(client, "/sign-in", content_type=URLENCODED), FORM_MAX_BYTES)


def test_a_huge_content_length_is_refused_before_a_byte_is_read(client: TestClient) -> None:
    for path, kind in (("/sign-in", URLENCODED), ("/api/v1/reviews", b"application/json")):
        hostile = post_hostile(client, path, content_type=kind, content_length=900_000_000)
        assert hostile.status == 413 and hostile.handed_out == 0, path


def test_an_api_route_reads_nothing_before_authentication(client: TestClient) -> None:
    """No token: 401 with nothing read; a wrong token the same (the body is the handler's)."""
    for headers in ({}, {"Authorization": "Bearer nope"}):
        hostile = post_hostile(
            client, "/api/v1/reviews", content_type=b"application/json", headers=headers
        )
        assert hostile.status == 401 and hostile.handed_out == 0


def test_an_upload_route_reads_nothing_before_authentication(client: TestClient) -> None:
    """The upload routes take large bodies, and only from someone signed in."""
    for path, kind in (
        ("/reviews/SWG24/upload", b"multipart/form-data; boundary=x"),
        ("/reviews/SWG24/upload", URLENCODED),
        ("/api/v1/reviews/SWG24/documents", b"application/octet-stream"),
        ("/api/v1/uploads", b"application/offset+octet-stream"),
    ):
        hostile = post_hostile(client, path, content_type=kind)
        assert hostile.status in (303, 401) and hostile.handed_out == 0, path


def test_too_many_fields_is_a_400_and_the_bound_itself_is_fine(client: TestClient) -> None:
    page = client.get("/sign-in")
    token = csrf_from(page.text)
    fields = [("email", "nobody@example.org"), ("password", "wrong"), ("csrf_token", token)]
    padding = [(f"f{i}", "") for i in range(FORM_MAX_FIELDS - len(fields))]
    form = {"Content-Type": URLENCODED.decode()}
    at_bound = client.post("/sign-in", content=urlencode(fields + padding), headers=form)
    assert at_bound.status_code == 400 and "more than" not in at_bound.text, at_bound.text
    over = client.post(
        "/sign-in", content=urlencode([*fields, *padding, ("one", "")]), headers=form
    )
    assert over.status_code == 400 and "more than 100 fields" in over.text


def test_the_413_is_a_page_for_a_browser(client: TestClient) -> None:
    page = client.get("/sign-in")
    answer = client.post(
        "/sign-in",
        data={"csrf_token": csrf_from(page.text), "pad": "x" * (FORM_MAX_BYTES + 1)},
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert "This request is too large" in answer.text and "64 KiB" in answer.text


# --- Signed in -----------------------------------------------------------------------------------


def test_a_signed_in_form_route_stops_reading_at_the_form_bound(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    sign_in(client, world.people["lead"], clock)
    for path in ("/reviews/new", "/sign-out"):
        refused_at(post_hostile(client, path, content_type=URLENCODED), FORM_MAX_BYTES)
    assert client.get("/").status_code == 200  # still signed in: nothing happened


def test_a_form_to_an_upload_route_is_bounded_like_any_form(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    """The upload page takes a large multipart body; a urlencoded one is still a small form."""
    sign_in(client, world.people["uploader"], clock)
    hostile = post_hostile(client, "/reviews/SWG24/upload", content_type=URLENCODED)
    refused_at(hostile, FORM_MAX_BYTES)


def test_a_json_api_route_stops_reading_at_one_mib(client: TestClient, world: World) -> None:
    lead = api_token(world, "lead")
    hostile = post_hostile(
        client, "/api/v1/reviews", content_type=b"application/json", headers=lead
    )
    refused_at(hostile, JSON_MAX_BYTES)
    assert json.loads(hostile.answer)["error"]["code"] == "body_too_large"


def test_json_nested_to_the_bound_is_read_and_one_deeper_is_a_400(
    client: TestClient, world: World
) -> None:
    lead = api_token(world, "lead")

    def nested(levels: int) -> str:
        # {"title": [[…"x"…]]}: the object itself is the first level
        return '{"title": ' + "[" * (levels - 1) + '"x"' + "]" * (levels - 1) + "}"

    post: Callable[[str], Any] = lambda body: client.post(  # noqa: E731
        "/api/v1/reviews",
        content=body,
        headers={**lead, "Content-Type": "application/json"},
    )
    at_bound = post(nested(JSON_MAX_DEPTH))
    assert at_bound.status_code == 400 and "nested" not in at_bound.text, at_bound.text
    deeper = post(nested(JSON_MAX_DEPTH + 1))
    assert deeper.status_code == 400 and "nested more than 32" in deeper.text

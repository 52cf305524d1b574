"""Hostile headers, bodies and content types on every route: a clear 4xx, never a 500 (issue 18).

Schemathesis (tests/portal/web/test_openapi.py) explores what the OpenAPI document describes. This test
sends what it does not describe: broken JSON and forms, wrong and malformed content types,
multipart without a boundary, invalid UTF-8, numbers too large for any column, absurd ranges, tus
headers out of range, forged cookies and tokens. The routes come from the access table, which a test
holds equal to the routes served, so a new route is fuzzed the day it is added.

Each hostile request goes to every route as an anonymous caller and as a signed-in lead (their
session with a valid CSRF token for pages, their bearer token for the API), so the handlers' own
parsing runs and not only the gates in front of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from starlette.testclient import TestClient

from tests.portal.conftest import Exchange, SettableClock, World, csrf_from, sign_in
from tests.portal.web.route_rules import SIGNED_IN
from tests.portal.web.test_routes import TABLE, _victims


@dataclass(frozen=True)
class Hostile:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # sent on methods that take a body; None: no body
    query: str = ""
    form_token: bool = False  # append the caller's CSRF token, so the route's parser runs


JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}

BODIES = [
    Hostile("json cut short", JSON, b'{"title": "a", "items": [1, 2'),
    Hostile("json invalid utf-8", JSON, b'{"title": "\xff\xfe\xfd", "note": "\xc3"}'),
    Hostile("json top-level array", JSON, b"[1, 2, 3]"),
    Hostile("json top-level string", JSON, b'"hello"'),
    Hostile(
        "json number too large", JSON, b'{"days": 1e999999, "n": 123456789012345678901234567890}'
    ),
    Hostile("json NaN and Infinity", JSON, b'{"days": NaN, "n": -Infinity}'),
    Hostile("json nested deep", JSON, b"[" * 5000),
    Hostile("json duplicate keys", JSON, b'{"title": "a", "title": {"b": null}}'),
    Hostile("json with nul", JSON, b'{"title": "a\\u0000b", "reason": "\\ud800"}'),
    Hostile("json in utf-32", {"content-type": "application/json; charset=utf-32"}, b"{}"),
    Hostile("form bad percent", FORM, b"a=%zz&b=%%%&=&&c=%", form_token=True),
    Hostile("form invalid utf-8", FORM, b"title=%ff%fe&note=%c3", form_token=True),
    Hostile("form many empty fields", FORM, b"&" * 5000 + b"x=1", form_token=True),
    Hostile("form repeated fields", FORM, b"email=a&email=b&days=1&days=x", form_token=True),
    Hostile("multipart without boundary", {"content-type": "multipart/form-data"}, b"--x\r\n"),
    Hostile(
        "multipart cut short",
        {"content-type": "multipart/form-data; boundary=xyz"},
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="\x00a.txt"\r\n\r\nabc',
    ),
    Hostile(
        "multipart header garbage",
        {"content-type": "multipart/form-data; boundary=xyz"},
        b"--xyz\r\n\xff\xfe: \x00\r\n\r\nabc\r\n--xyz--\r\n",
    ),
    Hostile("content type garbage", {"content-type": ";;;==;"}, b"x=1"),
    Hostile("content type text", {"content-type": "text/plain; charset=bogus"}, b"x=1"),
    Hostile("octet stream", {"content-type": "application/octet-stream"}, b"\x00\xff" * 64),
    Hostile(
        "xml", {"content-type": "application/xml"}, b"<!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>"
    ),
]

HEADERS = [
    Hostile("range not a number", {"range": "bytes=abc-def"}),
    Hostile("range beyond any file", {"range": "bytes=99999999999999999999999-"}),
    Hostile("range many parts", {"range": "bytes=" + ",".join(f"{i}-{i}" for i in range(500))}),
    Hostile("accept garbage", {"accept": "*/*;q=abc, text/html;level=\xff"}),
    Hostile("bearer junk", {"authorization": "Bearer " + "x" * 4000}),
    Hostile("authorization basic", {"authorization": "Basic !!!not-base64"}),
    Hostile("authorization empty scheme", {"authorization": " "}),
    Hostile("forged session cookie", {"cookie": 'portal_session="\\"; portal_csrf=%ff%00'}),
    Hostile("csrf header junk", {"x-csrf-token": "x" * 5000}),
    Hostile(
        "tus headers out of range",
        {
            "tus-resumable": "0.0.1",
            "upload-offset": "-1",
            "upload-length": "1e99",
            "upload-metadata": "filename !!!, review",
        },
    ),
    Hostile("conditional junk", {"if-none-match": '"', "if-modified-since": "yesterday"}),
    Hostile("forwarded junk", {"x-forwarded-for": "999.1.1.1, ::::, <script>"}),
    Hostile(
        "query out of range",
        query="page=-1&limit=99999999999999999999&offset=%ff&organisation=%00&q=%27%22&sort=;",
    ),
    Hostile("query repeated", query="page=1&page=x&status=a&status=&before=2026-13-45"),
]


# The whole cross product is about 4,600 requests (20 s a caller); the suite sends a fixed share of
# it, rotating through the list so that every hostile request reaches many routes and every route
# gets many hostile requests. PORTAL_FUZZ_ALL=1 sends all of it.
SHARE = {"GET": 4, "body": 10, "anonymous": 5}


def _hostile_for(method: str, who: str, index: int) -> list[Hostile]:
    takes_body = method in ("POST", "PATCH", "PUT", "DELETE")
    every = HEADERS + (BODIES if takes_body else [])
    if os.environ.get("PORTAL_FUZZ_ALL"):
        return every
    if who == "anonymous":
        return _rotate(every, index, SHARE["anonymous"])
    if takes_body:
        return _rotate(BODIES, index, SHARE["body"]) + _rotate(HEADERS, index, 2)
    return _rotate(HEADERS, index, SHARE["GET"])


def _rotate(items: list[Hostile], index: int, count: int) -> list[Hostile]:
    start = index * count
    return [items[(start + offset) % len(items)] for offset in range(count)]


@pytest.fixture
def browsers(client: TestClient) -> Iterator[Callable[[], TestClient]]:
    """Browsers whose server errors come back as responses, so every one is counted."""
    opened: list[TestClient] = []

    def open_browser() -> TestClient:
        other = TestClient(client.app, follow_redirects=False, raise_server_exceptions=False)
        other.__enter__()
        opened.append(other)
        return other

    yield open_browser
    for other in opened:
        other.__exit__(None, None, None)


def _send(
    caller: TestClient, method: str, path: str, hostile: Hostile, base: dict[str, str], token: str
) -> int:
    # Headers as bytes: a hostile client sends any octets, not only ASCII.
    headers: dict[bytes, bytes] = {
        **{k.encode("latin-1"): v.encode("latin-1") for k, v in base.items()},
        **{k.encode("latin-1"): v.encode("latin-1") for k, v in hostile.headers.items()},
    }
    body = hostile.body
    if body is not None and hostile.form_token and token:
        body += b"&csrf_token=" + token.encode()
    if body is None and method != "GET":
        headers.setdefault(b"x-csrf-token", token.encode())
    target = f"{path}?{hostile.query}" if hostile.query else path
    response = caller.request(method, target, headers=headers, content=body)
    status = response.status_code
    if status < 500 and status >= 400 and path.startswith("/api/"):
        # An API refusal is a JSON problem the client can read, never an HTML page.
        assert "json" in response.headers.get("content-type", ""), (
            f"{method} {path} {hostile.name}: {status} {response.headers.get('content-type')}"
        )
    return status


# One database: what is fuzzed here is parsing, in front of the database (the schemathesis test runs
# on PostgreSQL).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("who", ["anonymous", "signed in"])
def test_hostile_requests_to_every_route_get_a_clear_answer_never_a_500(
    who: str,
    exchange: Exchange,
    world: World,
    clock: SettableClock,
    browsers: Callable[[], TestClient],
) -> None:
    case = exchange.client.post("/api/v1/reviews/SWG24/cases", headers=exchange.tokens["uploader"])
    assert case.status_code == 201, case.text
    document = exchange.upload("uploader", b"Minutes.\n" * 10, case=case.json()["reference"])
    assert document.status_code == 201, document.text
    places = {
        "review": "SWG24",
        "document": document.json()["reference"],
        "case": case.json()["reference"],
        **_victims(world),
    }
    # Each route is fuzzed by a caller the access table lets in (so the handler parses the body),
    # the lead where they may: their session and CSRF token for pages, their token for the API.
    callers: dict[str, tuple[TestClient, str, dict[str, str]]] = {}
    for role in ("anonymous",) if who == "anonymous" else ("lead", *SIGNED_IN):
        if role in callers:
            continue
        browser = browsers()
        if role == "anonymous":
            callers[role] = (browser, csrf_from(browser.get("/sign-in").text), {})
        else:
            sign_in(browser, world.people[role], clock)
            callers[role] = (
                browser,
                csrf_from(browser.get("/account").text),
                exchange.tokens[role],
            )
    errors: list[str] = []
    sent = 0
    statuses: dict[int, int] = {}
    # Sign-out last: it ends the session the other rows rely on.
    ordered = sorted(TABLE, key=lambda route: (route[1] == "/sign-out", route))
    for index, (method, routed) in enumerate(ordered):
        path, expected = TABLE[(method, routed)]
        if "{" in path:
            path = path.format(**places)
        role = next(
            (role for role in callers if expected.get(role) not in (303, 401, 403, 404)), "lead"
        )
        role = role if role in callers else "anonymous"
        browser, token, bearer = callers[role]
        base = bearer if routed.startswith("/api/") else {}
        for hostile in _hostile_for(method, who, index):
            status = _send(browser, method, path, hostile, base, token)
            sent += 1
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 500:
                errors.append(f"{method} {routed} as {role} [{hostile.name}] → {status}")
    assert not errors, f"{len(errors)} server errors of {sent}:\n" + "\n".join(errors[:40])
    # It reached the handlers: some hostile requests were still served, most were refused.
    assert sent > 400 and any(400 <= status < 500 for status in statuses), statuses

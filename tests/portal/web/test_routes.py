"""Every route by every role (and anonymous) against a table of expected answers.

The table is the access policy written down. A route the app serves that is missing from the table,
or a table row for a route that no longer exists, fails the suite: nobody can add a route without
deciding who may use it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.routing import Mount
from starlette.testclient import TestClient

from portal.web.access import RuledRoute
from portal.web.app import routes
from tests.portal.conftest import Exchange, SettableClock, World, csrf_from, sign_in
from tests.portal.web.route_rules import SIGNED_IN, WHO, api_for, everyone, page_for

# (method, path as routed) → (path to request, expected status for each caller)
TABLE: dict[tuple[str, str], tuple[str, dict[str, int]]] = {
    ("GET", "/healthz"): ("/healthz", everyone(200)),
    ("GET", "/readyz"): ("/readyz", everyone(200)),
    ("GET", "/api/v1/openapi.json"): ("/api/v1/openapi.json", everyone(200)),
    ("GET", "/docs/api"): ("/docs/api", everyone(200)),
    ("GET", "/sign-in"): ("/sign-in", {**everyone(303), "anonymous": 200}),
    # An empty form: the public route answers everyone with "enter your email".
    ("POST", "/sign-in"): ("/sign-in", everyone(400)),
    # The code step is for half signed-in sessions only: the others are sent on.
    ("GET", "/sign-in/code"): ("/sign-in/code", everyone(303)),
    ("POST", "/sign-in/code"): ("/sign-in/code", everyone(303)),
    ("POST", "/sign-out"): ("/sign-out", page_for(*SIGNED_IN)),
    # A made-up enrolment link: public, and not found for everybody.
    ("GET", "/enrol/{token}"): ("/enrol/not-a-real-link", everyone(404)),
    ("POST", "/enrol/{token}"): ("/enrol/not-a-real-link", everyone(404)),
    ("GET", "/enrol/{token}/app"): ("/enrol/not-a-real-link/app", everyone(404)),
    ("POST", "/enrol/{token}/app"): ("/enrol/not-a-real-link/app", everyone(404)),
    ("GET", "/account"): ("/account", page_for(*SIGNED_IN)),
    # An empty form: signed-in users get "enter a name", the rest never reach it.
    ("POST", "/account/tokens"): ("/account/tokens", page_for(*SIGNED_IN, ok=400)),
    # Somebody else's token: not found for everyone (admins revoke on /admin/tokens).
    ("POST", "/account/tokens/{token_id}/revoke"): (
        "/account/tokens/{victim_token}/revoke",
        page_for(ok=404),
    ),
    ("GET", "/admin/users"): ("/admin/users", page_for("admin")),
    ("POST", "/admin/users/{user_id}/disable"): (
        "/admin/users/{victim_user}/disable",
        page_for("admin", ok=303),
    ),
    ("POST", "/admin/users/{user_id}/unlock"): (
        "/admin/users/{victim_user}/unlock",
        page_for("admin", ok=303),
    ),
    ("POST", "/admin/tokens/{token_id}/revoke"): (
        "/admin/tokens/{victim_token}/revoke",
        page_for("admin", ok=303),
    ),
    ("GET", "/api/v1/me"): ("/api/v1/me", api_for(*SIGNED_IN)),
    ("GET", "/api/v1/tokens"): ("/api/v1/tokens", api_for(*SIGNED_IN)),
    ("DELETE", "/api/v1/tokens/{token_id}"): (
        "/api/v1/tokens/{victim_token}",
        api_for("admin", ok=204),
    ),
}

# Rows of the other areas, each kept beside its own tests.
from tests.portal.web.routes_console import ROWS as CONSOLE_ROWS  # noqa: E402
from tests.portal.web.routes_destruction import ROWS as DESTRUCTION_ROWS  # noqa: E402
from tests.portal.web.routes_exchange_api import ROWS as EXCHANGE_API_ROWS  # noqa: E402
from tests.portal.web.routes_exchange_pages import ROWS as EXCHANGE_PAGE_ROWS  # noqa: E402
from tests.portal.web.routes_uploads import ROWS as UPLOAD_ROWS  # noqa: E402

for _rows in (EXCHANGE_API_ROWS, EXCHANGE_PAGE_ROWS, UPLOAD_ROWS, DESTRUCTION_ROWS, CONSOLE_ROWS):
    assert not set(_rows) & set(TABLE), "a route has two rows"
    TABLE.update(_rows)

# Mounted apps are not routes with rules: only these may exist, and they are public.
PUBLIC_MOUNTS = {"/static"}


def served_routes() -> set[tuple[str, str]]:
    served = set()
    for item in routes():
        if isinstance(item, Mount):
            assert item.path in PUBLIC_MOUNTS, f"unexpected mount {item.path}"
            continue
        assert isinstance(item, RuledRoute), f"{item} was built without an access rule"
        for method in item.methods or ():
            if method != "HEAD":
                served.add((method, item.path))
    return served


def test_the_table_covers_exactly_the_routes_served() -> None:
    served = served_routes()
    missing = sorted(served - TABLE.keys())
    stale = sorted(TABLE.keys() - served)
    assert not missing, f"routes with no row in the access table: {missing}"
    assert not stale, f"rows for routes that no longer exist: {stale}"


def _victims(world: World) -> dict[str, str]:
    """A user to disable and a token to revoke, fresh for each caller."""
    from sqlmodel import Session

    from portal.accounts import tokens
    from portal.accounts.models import Role, User

    victim = world.add_person(
        f"victim{len(world.people)}@aberdeen.example", Role.uploader, "aberdeen-city"
    )
    world.people[victim.email] = victim
    try:
        with Session(world.engine) as db:
            owner = db.get(User, victim.user_id)
            assert owner is not None
            row, _ = tokens.create_token(db, owner, name="victim", days=5, now=world.clock())
            db.commit()
            token_id = row.id
    finally:
        world.release()
    return {"victim_user": str(victim.user_id), "victim_token": str(token_id)}


@pytest.mark.parametrize("who", WHO)
def test_every_route_answers_each_caller_as_the_table_says(
    who: str,
    exchange: Exchange,
    world: World,
    clock: SettableClock,
    second_client: Callable[[], TestClient],
) -> None:
    case = exchange.client.post("/api/v1/reviews/SWG24/cases", headers=exchange.tokens["uploader"])
    assert case.status_code == 201, case.text
    document = exchange.upload(
        "uploader", b"Minutes of the meeting.\n" * 10, case=case.json()["reference"]
    )
    assert document.status_code == 201, document.text
    places = {
        "review": "SWG24",
        "document": document.json()["reference"],
        "case": case.json()["reference"],
    }
    caller = second_client()
    bearer: dict[str, str] = {}
    if who == "anonymous":
        token = csrf_from(caller.get("/sign-in").text)
    else:
        sign_in(caller, world.people[who], clock)
        token = csrf_from(caller.get("/account").text)
        bearer = exchange.tokens[who]
    answers = {}
    # Sign-out last: it ends the session the other rows rely on.
    for (method, routed), (path, expected) in sorted(
        TABLE.items(), key=lambda kv: kv[0][1] == "/sign-out"
    ):
        if "{" in path:
            path = path.format(**places, **_victims(world))
        headers = bearer if routed.startswith("/api/") else {}
        if method == "GET":
            response = caller.get(path, headers=headers)
        elif method in ("DELETE", "PATCH", "OPTIONS"):
            response = caller.request(method, path, headers=headers)
        else:
            response = caller.post(path, data={"csrf_token": token}, headers=headers)
        answers[(method, routed)] = (response.status_code, expected[who])
    wrong = {route: got for route, got in answers.items() if got[0] != got[1]}
    assert not wrong, f"{who}: (got, expected) {wrong}"

"""Signing in: password + TOTP, lock-out, replay, recovery codes, sessions, CSRF, headers."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.testclient import TestClient

from audit import Outcome
from audit.tables import event_table
from portal.accounts import users
from portal.accounts.models import RecoveryCode, User, WebSession
from portal.accounts.secrets import SecretBox, digest
from portal.accounts.signin import SignIn, SignInRefused
from portal.audit_vocabulary import Action
from portal.auditing import Auditor, Origin
from portal.db import make_engine
from portal.web.app import create_app
from tests.portal.conftest import (
    PASSWORD,
    SettableClock,
    World,
    cheap_hasher,
    csrf_from,
    sign_in,
)


def _events(world: World, action: Action) -> list[dict[str, object]]:
    engine = make_engine(world.settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa_select(event_table).where(event_table.c.action == action.value)
            ).mappings()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


def _post_password(client: TestClient, email: str, password: str) -> tuple[int, str]:
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)}
    )
    return response.status_code, response.text


def _signin_service(world: World) -> tuple[SignIn, Engine]:
    engine = make_engine(world.settings.database_url)
    service = SignIn(
        hasher=cheap_hasher(),
        secret_box=SecretBox.from_key_dir(world.settings.key_dir),
        auditor=Auditor.from_key_dir(world.settings.key_dir),
    )
    return service, engine


# --- The password step -------------------------------------------------------------------------


def test_unknown_user_and_wrong_password_get_identical_answers(
    client: TestClient, world: World
) -> None:
    unknown = _post_password(client, "nobody@aberdeen.example", "some password here")
    wrong = _post_password(client, world.people["uploader"].email, "some password here")
    assert unknown == wrong
    assert unknown[0] == 400
    assert "Enter a correct email address and password" in unknown[1]


def test_unknown_user_costs_one_password_verification_like_a_real_one(world: World) -> None:
    """No timing oracle: both answers spend one Argon2 verification (a decoy for unknown users)."""
    service, engine = _signin_service(world)
    calls: list[str | None] = []
    real_verify = service.hasher.verify

    def counting(password_hash: str | None, password: str) -> bool:
        calls.append(password_hash)
        return real_verify(password_hash, password)

    object.__setattr__(service.hasher, "verify", counting)
    with Session(engine) as db:
        for email in ("nobody@aberdeen.example", world.people["uploader"].email):
            with pytest.raises(SignInRefused):
                service.check_password(
                    db, email=email, password="wrong password!", origin=Origin(), now=world.clock()
                )
    assert len(calls) == 2
    assert calls[0] is None and calls[1] is not None  # the decoy, then the real hash


def test_failed_sign_ins_are_audited_without_the_email(client: TestClient, world: World) -> None:
    _post_password(client, world.people["uploader"].email, "not the password at all")
    events = _events(world, Action.SIGN_IN_FAILED)
    assert len(events) == 1
    assert events[0]["user_id"] == world.people["uploader"].user_id
    assert events[0]["outcome"] == Outcome.FAILURE.value
    assert "aberdeen.example" not in repr(events[0])


def test_lockout_after_repeated_wrong_passwords_also_for_unknown_accounts(
    client: TestClient, world: World
) -> None:
    for email in (world.people["uploader"].email, "nobody@aberdeen.example"):
        answers = [_post_password(client, email, f"wrong password {i}")[1] for i in range(6)]
        assert "too many failed attempts" in answers[-1]
    # Now even the right password is refused while the lock lasts.
    status, text = _post_password(client, world.people["uploader"].email, PASSWORD)
    assert status == 400 and "too many failed attempts" in text
    assert len(_events(world, Action.LOCKED_OUT)) == 2


def test_lock_expires(client: TestClient, world: World, clock: SettableClock) -> None:
    person = world.people["inspector"]
    for i in range(5):
        _post_password(client, person.email, f"wrong password {i}")
    clock.advance(minutes=16)
    sign_in(client, person, clock)
    assert client.get("/").status_code == 200


# --- The code step ----------------------------------------------------------------------------


def test_a_thousand_wrong_codes_lock_the_account_and_none_succeeds(world: World) -> None:
    person = world.people["uploader"]
    service, engine = _signin_service(world)
    totp = pyotp.TOTP(person.secret)
    successes = 0
    refusals_locked = 0
    with Session(engine) as db:
        user = db.exec(select(User).where(User.email == person.email)).one()
        for attempt in range(1000):
            now = world.clock() + timedelta(seconds=attempt)
            # Every 50th attempt is the right code: once locked, even that must fail.
            code = totp.at(now) if attempt % 50 == 49 else f"{(attempt * 7919) % 1_000_000:06d}"
            if code == totp.at(now) and attempt % 50 != 49:
                continue
            try:
                service.check_second_factor(db, user=user, code=code, origin=Origin(), now=now)
                successes += 1
            except SignInRefused as refused:
                refusals_locked += refused.locked_until is not None or "too many" in refused.message
            db.expire_all()
    assert successes == 0
    assert refusals_locked > 900
    assert len(_events(world, Action.LOCKED_OUT)) >= 1
    assert len(_events(world, Action.MFA_FAILED)) >= 990


def test_a_code_is_never_accepted_twice(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    person = world.people["lead"]
    sign_in(client, person, clock)
    code = person.code(clock())
    page = client.get("/")
    client.post("/sign-out", data={"csrf_token": csrf_from(page.text)})
    page = client.get("/sign-in")
    client.post(
        "/sign-in",
        data={"email": person.email, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    page = client.get("/sign-in/code")
    replay = client.post("/sign-in/code", data={"code": code, "csrf_token": csrf_from(page.text)})
    assert replay.status_code == 400
    assert "Enter the 6-digit code" in replay.text
    # An older code (the previous step, still inside the window) is refused as well.
    older = person.code(clock() - timedelta(seconds=30))
    again = client.post("/sign-in/code", data={"code": older, "csrf_token": csrf_from(page.text)})
    assert again.status_code == 400


def _try_code(
    database_url: str, key_dir: str, email: str, code: str, at: float, start: float
) -> bool:
    from datetime import UTC, datetime
    from pathlib import Path

    service = SignIn(
        hasher=cheap_hasher(),
        secret_box=SecretBox.from_key_dir(Path(key_dir)),
        auditor=Auditor.from_key_dir(Path(key_dir)),
    )
    engine = make_engine(database_url)
    with Session(engine) as db:
        user = db.exec(select(User).where(User.email == email)).one()
        while time.time() < start:
            time.sleep(0.001)
        try:
            service.check_second_factor(
                db, user=user, code=code, origin=Origin(), now=datetime.fromtimestamp(at, UTC)
            )
            db.commit()
            return True
        except SignInRefused:
            return False
        finally:
            engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_code_sent_twice_at_once_from_two_processes_succeeds_once(world: World) -> None:
    person = world.people["dpo"]
    at = (world.clock() + timedelta(seconds=60)).timestamp()
    code = pyotp.TOTP(person.secret).at(at)
    start = time.time() + 1.5
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        args = (
            world.settings.database_url,
            str(world.settings.key_dir),
            person.email,
            code,
            at,
            start,
        )
        results = pool.starmap(_try_code, [args, args])
    assert sorted(results) == [False, True]


def test_a_recovery_code_works_once(client: TestClient, world: World, clock: SettableClock) -> None:
    person = world.people["inspector"]
    engine = make_engine(world.settings.database_url)
    with Session(engine) as db:
        user = db.exec(select(User).where(User.email == person.email)).one()
        codes = users.replace_recovery_codes(db, user)
        db.commit()
        stored = db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
        assert {row.code_hash for row in stored} == {digest(c) for c in codes}  # hashes only
    engine.dispose()
    for attempt in range(2):
        page = client.get("/sign-in")
        client.post(
            "/sign-in",
            data={"email": person.email, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        )
        page = client.get("/sign-in/code")
        # Typed loosely: lower case, spaces instead of hyphens.
        typed = codes[3].lower().replace("-", " ")
        answer = client.post(
            "/sign-in/code", data={"code": typed, "csrf_token": csrf_from(page.text)}
        )
        if attempt == 0:
            assert answer.status_code == 303 and answer.headers["location"] == "/"
            client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/").text)})
        else:
            assert answer.status_code == 400
    assert len(_events(world, Action.RECOVERY_CODE_USED)) == 1


# --- Sessions ---------------------------------------------------------------------------------


def test_the_session_id_changes_at_sign_in(
    client: TestClient, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    person = world.people["uploader"]
    client.cookies.set("portal_session", "s_planted-by-an-attacker", domain="testserver.local")
    page = client.get("/sign-in")
    client.post(
        "/sign-in",
        data={"email": person.email, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    pending = client.cookies.get("portal_session")
    assert pending and pending != "s_planted-by-an-attacker"
    clock.advance(seconds=30)
    page = client.get("/sign-in/code")
    client.post(
        "/sign-in/code", data={"code": person.code(clock()), "csrf_token": csrf_from(page.text)}
    )
    signed_in = client.cookies.get("portal_session")
    assert signed_in and signed_in != pending
    # The half-signed-in id is dead: presenting it again gets nowhere.
    other = second_client()
    other.cookies.set("portal_session", pending)
    assert other.get("/").status_code == 303


def test_the_database_holds_only_hashes_of_session_ids(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    sign_in(client, world.people["uploader"], clock)
    raw = client.cookies.get("portal_session")
    engine = make_engine(world.settings.database_url)
    with Session(engine) as db:
        rows = db.exec(select(WebSession)).all()
    engine.dispose()
    assert raw and all(row.id_hash != raw for row in rows)
    assert any(row.id_hash == digest(raw) for row in rows)


def test_sign_out_ends_the_session(
    client: TestClient, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    sign_in(client, world.people["uploader"], clock)
    raw = client.cookies.get("portal_session")
    signed_out = client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/").text)})
    assert signed_out.status_code == 200 and "You have signed out" in signed_out.text
    replay = second_client()
    replay.cookies.set("portal_session", raw or "")
    assert replay.get("/").status_code == 303


def test_idle_sessions_expire(client: TestClient, world: World, clock: SettableClock) -> None:
    sign_in(client, world.people["uploader"], clock)
    clock.advance(minutes=29)
    assert client.get("/").status_code == 200
    clock.advance(minutes=31)
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"


def test_sessions_end_after_twelve_hours_however_busy(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    sign_in(client, world.people["uploader"], clock)
    for _ in range(35):  # 35 x 20 minutes = 11 h 40 min, never idle
        clock.advance(minutes=20)
        assert client.get("/").status_code == 200
    clock.advance(minutes=25)
    assert client.get("/").status_code == 303


def test_disabling_a_user_ends_their_session_and_tokens_at_once(
    client: TestClient, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    person = world.people["uploader"]
    sign_in(client, person, clock)
    page = client.get("/account")
    clock.advance(seconds=30)
    created = client.post(
        "/account/tokens",
        data={
            "name": "script",
            "days": "30",
            "code": person.code(clock()),
            "csrf_token": csrf_from(page.text),
        },
    )
    token = _token_from(created.text)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    admin = second_client()
    clock.advance(seconds=30)
    sign_in(admin, world.people["admin"], clock)
    admin_page = admin.get("/admin/users")
    disabled = admin.post(
        f"/admin/users/{person.user_id}/disable", data={"csrf_token": csrf_from(admin_page.text)}
    )
    assert disabled.status_code == 303
    assert client.get("/").status_code == 303
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert len(_events(world, Action.USER_DISABLED)) == 1


# --- CSRF and headers -------------------------------------------------------------------------


def test_a_post_without_a_valid_csrf_token_is_refused(
    client: TestClient, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    sign_in(client, world.people["uploader"], clock)
    missing = client.post("/sign-out", data={})
    forged = client.post("/sign-out", data={"csrf_token": "0" * 64})
    assert missing.status_code == forged.status_code == 403
    assert "did not come from the portal" in missing.text
    assert client.get("/").status_code == 200  # still signed in: nothing happened
    # A token from another browser (another cookie) does not work here either.
    stranger = second_client()
    their_token = csrf_from(stranger.get("/sign-in").text)
    assert client.post("/sign-out", data={"csrf_token": their_token}).status_code == 403


def _csrf_cookie(browser: TestClient) -> str:
    return next(value for name, value in browser.cookies.items() if name == "portal_csrf")


def _plant_csrf_cookie(browser: TestClient, value: str) -> None:
    """What a sibling sub-domain (or anyone who can set a cookie for the host) could do."""
    for cookie in list(browser.cookies.jar):
        if cookie.name == "portal_csrf":
            browser.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    browser.cookies.set("portal_csrf", value, domain="testserver.local", path="/")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("whose", ["same_user", "other_user"])
def test_a_csrf_token_works_only_in_the_session_it_was_made_for(
    client: TestClient,
    world: World,
    clock: SettableClock,
    second_client: Callable[[], TestClient],
    whose: str,
) -> None:
    """Issue 18, item 6: the token was bound to the CSRF cookie alone, so one taken from a session
    (the attacker's own) was good in any other session that carried the same cookie value."""
    attacker = client
    sign_in(attacker, world.people["uploader"], clock)
    their_token = csrf_from(attacker.get("/account").text)
    victim = second_client()
    sign_in(victim, world.people["uploader" if whose == "same_user" else "other_uploader"], clock)
    own_token = csrf_from(victim.get("/account").text)
    _plant_csrf_cookie(victim, _csrf_cookie(attacker))
    refused = victim.post("/sign-out", data={"csrf_token": their_token})
    assert refused.status_code == 403, refused.text
    assert victim.get("/account").status_code == 200  # still signed in: nothing happened
    # The header (the upload page's script) is bound the same way.
    assert victim.post("/sign-out", headers={"X-CSRF-Token": their_token}).status_code == 403
    # The victim's own page, with the planted cookie, makes a token that works: pages still do.
    fresh = csrf_from(victim.get("/account").text)
    assert fresh != own_token
    assert victim.post("/sign-out", data={"csrf_token": fresh}).status_code == 200
    assert victim.get("/account").status_code == 303  # signed out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_token_from_before_sign_in_or_an_ended_session_is_refused(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    """The anonymous pre-session's token (bound to the cookie) is not a session's, even with the
    cookie kept across the sign-in; and signing out makes the session's tokens worthless."""
    anonymous = csrf_from(client.get("/sign-in").text)
    cookie = _csrf_cookie(client)
    sign_in(client, world.people["uploader"], clock)
    _plant_csrf_cookie(client, cookie)  # as if sign-in had not renewed it
    assert client.post("/sign-out", data={"csrf_token": anonymous}).status_code == 403
    signed_in = csrf_from(client.get("/account").text)
    signed_out = client.post("/sign-out", data={"csrf_token": signed_in})
    assert signed_out.status_code == 200 and client.get("/account").status_code == 303
    _plant_csrf_cookie(client, cookie)
    # Signed out: that session's token does not work for the sign-in form either.
    stale = client.post(
        "/sign-in",
        data={"email": "x@example.org", "password": "wrong", "csrf_token": signed_in},
    )
    assert stale.status_code == 403


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/sign-in", "/healthz", "/no-such-page", "/api/v1/me"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in headers  # not over plain HTTP


def test_behind_tls_cookies_are_host_prefixed_secure_httponly_and_hsts_is_sent(
    world: World, clock: SettableClock
) -> None:
    import dataclasses

    settings = dataclasses.replace(world.settings, public_url="https://portal.example.gov.uk")
    app = create_app(settings, clock=clock, password_hasher=cheap_hasher())
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        page = client.get("/sign-in")
        assert page.headers["strict-transport-security"].startswith("max-age=")
        csrf_cookie = page.headers["set-cookie"]
        assert csrf_cookie.startswith("__Host-portal_csrf=")
        response = client.post(
            "/sign-in",
            data={
                "email": world.people["uploader"].email,
                "password": PASSWORD,
                "csrf_token": csrf_from(page.text),
            },
        )
        cookies = response.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("__Host-portal_session="))
        for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
            assert flag.lower() in session_cookie.lower()
        assert "domain=" not in session_cookie.lower()


# --- Tokens -----------------------------------------------------------------------------------


def _token_from(html: str) -> str:
    import re

    found = re.search(r'id="new-token">(pat_[A-Za-z0-9_-]+)<', html)
    assert found, "the new token is not on the page"
    return found.group(1)


def test_api_tokens_need_a_fresh_code_are_shown_once_and_can_be_revoked(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    person = world.people["inspector"]
    sign_in(client, person, clock)
    page = client.get("/account")
    no_code = client.post(
        "/account/tokens",
        data={"name": "script", "days": "30", "code": "", "csrf_token": csrf_from(page.text)},
    )
    assert no_code.status_code == 400 and "pat_" not in no_code.text
    wrong_code = client.post(
        "/account/tokens",
        data={"name": "script", "days": "30", "code": "000000", "csrf_token": csrf_from(page.text)},
    )
    assert wrong_code.status_code == 400 and "pat_" not in wrong_code.text
    clock.advance(seconds=30)
    created = client.post(
        "/account/tokens",
        data={
            "name": "script",
            "days": "7",
            "code": person.code(clock()),
            "csrf_token": csrf_from(page.text),
        },
    )
    token = _token_from(created.text)
    assert token not in client.get("/account").text  # shown once
    bearer = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["email"] == person.email and me.json()["role"] == "inspector"
    listed = client.get("/api/v1/tokens", headers=bearer).json()["items"]
    assert [t["name"] for t in listed] == ["script"] and token not in repr(listed)
    # Expiry: a week later the token no longer works.
    clock.advance(days=7, seconds=1)
    expired = client.get("/api/v1/me", headers=bearer)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "unauthenticated"
    assert len(_events(world, Action.TOKEN_CREATED)) == 1


def test_a_revoked_token_stops_working(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    person = world.people["uploader"]
    sign_in(client, person, clock)
    clock.advance(seconds=30)
    page = client.get("/account")
    token = _token_from(
        client.post(
            "/account/tokens",
            data={
                "name": "a",
                "days": "30",
                "code": person.code(clock()),
                "csrf_token": csrf_from(page.text),
            },
        ).text
    )
    bearer = {"Authorization": f"Bearer {token}"}
    token_id = client.get("/api/v1/tokens", headers=bearer).json()["items"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=bearer).status_code == 204
    assert client.get("/api/v1/me", headers=bearer).status_code == 401


def test_api_errors_have_the_documented_shape(client: TestClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer pat_not-a-real-token"},
        {"Authorization": "Basic x"},
    ):
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"code", "message"}
        assert response.headers["www-authenticate"] == "Bearer"
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

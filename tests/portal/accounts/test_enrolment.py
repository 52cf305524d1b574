"""Enrolment from the one-time link, and the administrators' commands that issue it."""

from __future__ import annotations

import json
import re

import pyotp
from click.testing import CliRunner
from sqlalchemy import select as sa_select
from starlette.testclient import TestClient

from audit.tables import event_table
from portal.accounts.passwords import password_problem
from portal.audit_vocabulary import Action
from portal.cli import main
from portal.db import make_engine
from tests.portal.conftest import SettableClock, World, csrf_from

GOOD = "mackerel lighthouse tangerine"


def _cli(world: World, *args: str) -> tuple[int, str]:
    env = {
        "PORTAL_HOME": str(world.settings.home),
        "PORTAL_DATABASE_URL": world.settings.database_url,
        "PORTAL_CLAMD": str(world.settings.clamd),
        "PORTAL_OPERATOR": world.people["admin"].email,  # the operator's configured identity
    }
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def _new_user_link(world: World, email: str = "new.person@aberdeen.example") -> str:
    code, output = _cli(
        world, "user", "add", email, "--role", "uploader", "--org", "aberdeen-city", "--json"
    )
    assert code == 0, output
    link: str = json.loads(output)["enrolment_link"]
    assert link.startswith(world.settings.public_url + "/enrol/")
    return link.removeprefix(world.settings.public_url)


def _secret_from(html: str) -> str:
    found = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert found, "the key for manual entry is not on the page"
    return found.group(1).replace(" ", "")


def test_enrol_from_the_link_then_sign_in(
    client: TestClient, world: World, clock: SettableClock
) -> None:
    path = _new_user_link(world)
    page = client.get(path)
    assert page.status_code == 200 and "new.person@aberdeen.example" in page.text
    weak = client.post(
        path,
        data={
            "password": "password1234",
            "confirm": "password1234",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert weak.status_code == 400 and "common password" in weak.text
    short = client.post(
        path, data={"password": "short", "confirm": "short", "csrf_token": csrf_from(page.text)}
    )
    assert short.status_code == 400 and "at least 12 characters" in short.text
    mismatch = client.post(
        path, data={"password": GOOD, "confirm": GOOD + "x", "csrf_token": csrf_from(page.text)}
    )
    assert mismatch.status_code == 400 and "different" in mismatch.text
    chosen = client.post(
        path, data={"password": GOOD, "confirm": GOOD, "csrf_token": csrf_from(page.text)}
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == f"{path}/app"
    app_page = client.get(f"{path}/app")
    assert "<svg" in app_page.text  # the QR code, inline
    secret = _secret_from(app_page.text)
    assert len(secret) == 32  # 160 bits
    wrong = client.post(
        f"{path}/app", data={"code": "123456", "csrf_token": csrf_from(app_page.text)}
    )
    assert wrong.status_code == 400 and "not right" in wrong.text
    done = client.post(
        f"{path}/app",
        data={"code": pyotp.TOTP(secret).at(clock()), "csrf_token": csrf_from(app_page.text)},
    )
    assert done.status_code == 200
    codes = re.findall(r"<li>([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})</li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    # The link is spent.
    assert client.get(path).status_code == 404
    # And the new account signs in with its password and app.
    page = client.get("/sign-in")
    client.post(
        "/sign-in",
        data={
            "email": "New.Person@aberdeen.example",
            "password": GOOD,
            "csrf_token": csrf_from(page.text),
        },
    )
    clock.advance(seconds=30)
    page = client.get("/sign-in/code")
    signed_in = client.post(
        "/sign-in/code",
        data={"code": pyotp.TOTP(secret).at(clock()), "csrf_token": csrf_from(page.text)},
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"


def test_an_enrolment_link_expires(client: TestClient, world: World, clock: SettableClock) -> None:
    path = _new_user_link(world)
    # The CLI stamps links with the real time; the app's clock jumps well past their expiry.
    clock.now = clock.now.replace(year=clock.now.year + 2)
    response = client.get(path)
    assert response.status_code == 404 and "expired" in response.text


def test_a_new_link_replaces_the_old_one(client: TestClient, world: World) -> None:
    first = _new_user_link(world)
    code, output = _cli(world, "user", "link", "new.person@aberdeen.example")
    assert code == 0
    second = output.strip().removeprefix(world.settings.public_url)
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


def test_a_half_enrolled_account_cannot_sign_in(client: TestClient, world: World) -> None:
    path = _new_user_link(world)
    page = client.get(path)
    client.post(path, data={"password": GOOD, "confirm": GOOD, "csrf_token": csrf_from(page.text)})
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "email": "new.person@aberdeen.example",
            "password": GOOD,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.status_code == 400


def test_password_rules() -> None:
    assert password_problem("aberdeen-lighthouse-kettle", email="x@aberdeen.example") is None
    assert password_problem("qwertyuiop123", email="x@example.org")
    assert password_problem("jane.smith2024!!", email="jane.smith@example.org")
    assert password_problem("a" * 300, email="x@example.org")


def test_a_short_password_must_reach_the_top_score_and_the_message_says_so() -> None:
    """Issue 18: ``Summer2026!!`` (zxcvbn 3, 12 characters) was accepted."""
    for weak in ("Summer2026!!", "Password2026!!", "correcthorse12"):
        problem = password_problem(weak, email="x@example.org")
        assert problem and "passphrase of at least 15 characters" in problem, weak
    # A passphrase of 15 or more characters may score 3; a guessable one is still refused.
    assert password_problem("Liverpool2026!!", email="x@example.org") is None
    assert password_problem("jane.smith2024!!", email="x@example.org") is None
    long_but_weak = password_problem("summersummer2026", email="x@example.org")
    assert long_but_weak and "harder to guess" in long_but_weak


# --- The administrators' commands ---------------------------------------------------------------


def test_org_and_user_commands_validate_their_input(world: World) -> None:
    assert _cli(world, "org", "add", "Bad Code!", "--name", "X", "--kind", "authority")[0] == 2
    assert _cli(world, "org", "add", "aberdeen-city", "--name", "X", "--kind", "authority")[0] == 2
    assert _cli(world, "org", "add", "x", "--name", "X", "--kind", "council")[0] == 2
    code, output = _cli(
        world,
        "org",
        "add",
        "dumfries-galloway",
        "--name",
        "Dumfries and Galloway Council",
        "--kind",
        "authority",
    )
    assert code == 0 and "dumfries-galloway" in output
    # An authority's staff are uploaders; they cannot be made inspectors or admins.
    code, output = _cli(
        world, "user", "add", "x@dg.example", "--role", "admin", "--org", "dumfries-galloway"
    )
    assert code == 2 and "cannot have the role admin" in output
    assert (
        _cli(
            world, "user", "add", "not-an-email", "--role", "uploader", "--org", "dumfries-galloway"
        )[0]
        == 2
    )
    assert (
        _cli(world, "user", "add", "x@dg.example", "--role", "uploader", "--org", "nowhere")[0] == 2
    )
    assert (
        _cli(
            world,
            "user",
            "add",
            world.people["uploader"].email,
            "--role",
            "uploader",
            "--org",
            "aberdeen-city",
        )[0]
        == 2
    )
    assert _cli(world, "user", "disable", "nobody@nowhere.example")[0] == 2


def test_token_create_prints_the_token_alone(client: TestClient, world: World) -> None:
    code, output = _cli(
        world,
        "token",
        "create",
        world.people["inspector"].email,
        "--name",
        "service",
        "--expires-days",
        "3",
    )
    assert code == 0
    token = output.strip()
    assert re.fullmatch(r"pat_[A-Za-z0-9_-]{40,}", token)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["role"] == "inspector"
    assert (
        _cli(
            world,
            "token",
            "create",
            world.people["inspector"].email,
            "--name",
            "x",
            "--expires-days",
            "0",
        )[0]
        == 2
    )


def test_user_disable_from_the_command_line(client: TestClient, world: World) -> None:
    code, output = _cli(world, "token", "create", world.people["dpo"].email, "--name", "s")
    token = output.strip()
    code, output = _cli(world, "user", "disable", world.people["dpo"].email)
    assert code == 0 and "1 token(s) revoked" in output
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_administration_is_audited(world: World) -> None:
    _new_user_link(world)
    _cli(world, "org", "add", "dundee-hscp", "--name", "Dundee HSCP", "--kind", "authority")
    engine = make_engine(world.settings.database_url)
    with engine.connect() as connection:
        actions = [
            row.action
            for row in connection.execute(sa_select(event_table.c.action, event_table.c.role))
        ]
        actors = {
            (row.action, row.user_id, row.role)
            for row in connection.execute(
                sa_select(event_table.c.action, event_table.c.user_id, event_table.c.role)
            )
        }
    engine.dispose()
    assert Action.USER_CREATED.value in actions and Action.ORGANISATION_CREATED.value in actions
    # The administrator named by PORTAL_OPERATOR, never an anonymous ``cli`` (issue 16).
    admin = world.people["admin"].user_id
    for action in (Action.USER_CREATED, Action.ORGANISATION_CREATED):
        assert (action.value, admin, "admin") in actors
    assert all(role != "cli" for _, _, role in actors)

"""Fixtures for the web app: a migrated database, keys, a settable clock, users of every role."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2
import pyotp
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.testclient import TestClient

from portal.accounts import users
from portal.accounts.models import Role
from portal.accounts.passwords import PasswordHasher
from portal.blobs import open_keys
from portal.db import make_engine
from portal.keys import secret_box
from portal.models import OrganisationKind
from portal.settings import ClamdAddress, Settings
from portal.setup import initialise
from portal.web.app import create_app
from tests.harness.clamd import TEST_MAX_UPLOAD_BYTES
from tests.portal.web.openapi_shapes import ShapeCheck

PASSWORD = "correct horse battery staple"
# The exchange fixture's review: its title and legal basis, typed by its lead (sealed, issue 16).
REVIEW_TITLE = "Children's services thematic review"
LEGAL_BASIS = "Public Services Reform (Scotland) Act 2010, section 53"


@dataclass
class SettableClock:
    """Time for the app under test: it moves only when a test moves it."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 9, 0, 7, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Person:
    email: str
    role: Role
    organisation: str
    secret: str
    user_id: int
    password: str = PASSWORD
    name: str | None = None

    def code(self, at: datetime) -> str:
        return pyotp.TOTP(self.secret).at(at)


def cheap_hasher() -> PasswordHasher:
    # Argon2id all the same, with parameters that keep the suite fast (production uses RFC 9106's).
    return PasswordHasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, clamd_address: ClamdAddress) -> Settings:
    settings = Settings.from_environ(
        {
            "PORTAL_HOME": str(tmp_path / "home"),
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_CLAMD": str(clamd_address),
            # The harness's clamd is configured for this limit (tests/harness/clamd.py).
            "PORTAL_MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES),
        }
    )
    list(initialise(settings))
    return settings


@dataclass
class World:
    """Organisations and one enrolled person per role, made through the services."""

    settings: Settings
    clock: SettableClock
    people: dict[str, Person]
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """One engine for the world's own writes, so that its compiled statements are kept from
        one person to the next (each new engine compiled every query again: half of the fixture's
        time). Its connections are closed after each use (``release``), as with an engine each."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def release(self) -> None:
        """Close the world's connections: a test may replace or restore the database file."""
        if self._engine is not None:
            self._engine.dispose()

    def add_person(
        self, email: str, role: Role, organisation: str, name: str | None = None
    ) -> Person:
        # Any key service (a key folder or a PKCS#11 token), as the app itself opens it.
        box = secret_box(open_keys(self.settings))
        try:
            with Session(self.engine) as db:
                org = users.find_organisation(db, organisation)
                user, raw = users.add_user(
                    db, email=email, role=role, organisation=org, now=self.clock(), name=name
                )
                users.set_password(db, user, PASSWORD, PASSWORD, hasher=cheap_hasher())
                secret = users.start_totp(db, user, box=box)
                enrolment, _ = users.find_enrolment(db, raw, now=self.clock()) or (None, None)
                assert enrolment is not None
                code = pyotp.TOTP(secret).at(self.clock())
                users.confirm_totp(db, enrolment, user, code, box=box, now=self.clock())
                db.commit()
                assert user.id is not None
                person = Person(email, role, organisation, secret, user.id, name=name)
        finally:
            self.release()
        return person


@pytest.fixture
def world(settings: Settings, clock: SettableClock) -> World:
    world = World(settings=settings, clock=clock, people={})
    with Session(world.engine) as db:
        users.add_organisation(
            db,
            slug="inspectorate",
            name="Care Inspectorate",
            kind=OrganisationKind.inspectorate,
            now=clock(),
        )
        users.add_organisation(
            db,
            slug="aberdeen-city",
            name="Aberdeen City Council",
            kind=OrganisationKind.authority,
            now=clock(),
        )
        users.add_organisation(
            db,
            slug="dundee-city",
            name="Dundee City Council",
            kind=OrganisationKind.authority,
            now=clock(),
        )
        db.commit()
    world.release()
    for key, email, role, org, name in [
        ("uploader", "uploader@aberdeen.example", Role.uploader, "aberdeen-city", "Uma Reid"),
        ("other_uploader", "uploader@dundee.example", Role.uploader, "dundee-city", "Owen Dale"),
        ("inspector", "inspector@inspectorate.example", Role.inspector, "inspectorate", None),
        ("lead", "lead@inspectorate.example", Role.lead, "inspectorate", "Lena Ward"),
        ("dpo", "dpo@inspectorate.example", Role.dpo, "inspectorate", "Dara Quinn"),
        ("admin", "admin@inspectorate.example", Role.admin, "inspectorate", "Ada Moss"),
    ]:
        world.people[key] = world.add_person(email, role, org, name=name)
    return world


@pytest.fixture
def client(world: World, shapes: ShapeCheck) -> Iterator[TestClient]:
    """A browser or API client on the world's app; every JSON API answer it receives must
    match the OpenAPI document (its operation, a documented status, that status's schema)."""
    app = create_app(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    shapes.failures.clear()
    with TestClient(app, follow_redirects=False) as test_client:
        shapes.watch(test_client)
        yield test_client
    assert not shapes.failures, "answers that do not match the OpenAPI document:\n" + "\n".join(
        shapes.failures[:20]
    )


@pytest.fixture(scope="session")
def shapes() -> ShapeCheck:
    """One per worker: the document and its validators are built once."""
    return ShapeCheck()


@pytest.fixture
def second_client(client: TestClient) -> Iterator[Callable[[], TestClient]]:
    """Another browser (its own cookies) on the same app."""
    opened: list[TestClient] = []

    def open_browser() -> TestClient:
        other = TestClient(client.app, follow_redirects=False)
        other.__enter__()
        opened.append(other)
        return other

    yield open_browser
    for other in opened:
        other.__exit__(None, None, None)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, person: Person, clock: SettableClock) -> None:
    """Sign in through the pages, as a browser would; leaves the session cookie in ``client``."""
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "email": person.email,
            "password": person.password,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/sign-in/code", (
        response.text
    )
    clock.advance(seconds=30)  # a new time step: the enrolment code was used already
    page = client.get("/sign-in/code")
    response = client.post(
        "/sign-in/code",
        data={"code": person.code(clock()), "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303 and response.headers["location"] == "/", response.text


def api_token(world: World, who: str) -> dict[str, str]:
    """A bearer header for one of the world's people (made through the service, as the CLI does)."""
    from portal.accounts import tokens
    from portal.accounts.models import User

    try:
        with Session(world.engine) as db:
            user = db.get(User, world.people[who].user_id)
            assert user is not None
            _, raw = tokens.create_token(db, user, name=f"test-{who}", days=30, now=world.clock())
            db.commit()
    finally:
        world.release()
    return {"Authorization": f"Bearer {raw}"}


@dataclass
class Exchange:
    """An open review SWG24 asking Aberdeen and Dundee for records; the inspector on its team."""

    world: World
    client: TestClient
    tokens: dict[str, dict[str, str]]
    request_id: int

    def upload(self, who: str, body: bytes, name: str = "minutes.txt", **params: str) -> Any:
        from urllib.parse import quote

        return self.client.post(
            "/api/v1/reviews/SWG24/documents",
            params=params,
            content=body,
            headers={
                **self.tokens[who],
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
                "Content-Type": "application/octet-stream",
            },
        )


@pytest.fixture
def exchange(client: TestClient, world: World) -> Exchange:
    tokens = {who: api_token(world, who) for who in world.people}
    created = client.post(
        "/api/v1/reviews",
        json={
            "code": "SWG24",
            "title": REVIEW_TITLE,
            "legal_basis": LEGAL_BASIS,
            "opens_on": "2026-11-01",
            "closes_on": "2027-01-31",
            "retention_days": 90,
            "organisations": ["aberdeen-city", "dundee-city"],
        },
        headers=tokens["lead"],
    )
    assert created.status_code == 201, created.text
    member = client.post(
        "/api/v1/reviews/SWG24/members",
        json={"email": world.people["inspector"].email},
        headers=tokens["lead"],
    )
    assert member.status_code == 200, member.text
    assert (
        client.post("/api/v1/reviews/SWG24/open", headers=tokens["lead"], json={}).status_code
        == 200
    )
    request = client.post(
        "/api/v1/reviews/SWG24/requests",
        json={
            "organisation": "aberdeen-city",
            "title": "Records of the 5 selected young people",
            "instructions": "Case files for the last 12 months.",
            "due_on": "2026-12-15",
            "expected": 5,
        },
        headers=tokens["lead"],
    )
    assert request.status_code == 201, request.text
    return Exchange(world=world, client=client, tokens=tokens, request_id=request.json()["id"])

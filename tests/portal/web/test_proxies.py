"""Forwarded headers only from PORTAL_TRUSTED_PROXIES (issue 18, item 5).

`portal serve` trusted X-Forwarded-For from 127.0.0.1 (uvicorn's default), so any local caller
chose the client address the audit log recorded and the sign-in throttle counted against.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from starlette.testclient import TestClient

from audit.tables import event_table
from portal.accounts.models import Throttle
from portal.audit_vocabulary import Action
from portal.db import make_engine
from portal.settings import Settings, SettingsError
from portal.web.app import create_app
from tests.portal.conftest import World, cheap_hasher, csrf_from

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _wrong_password(world: World, settings: Settings, peer: str, forwarded: str) -> None:
    app = create_app(settings, clock=world.clock, password_hasher=cheap_hasher())
    with TestClient(app, follow_redirects=False, client=(peer, 41000)) as browser:
        page = browser.get("/sign-in")
        browser.post(
            "/sign-in",
            data={
                "email": world.people["uploader"].email,
                "password": "not the password, guessed",
                "csrf_token": csrf_from(page.text),
            },
            headers={"X-Forwarded-For": forwarded},
        )


def _seen(world: World) -> tuple[list[Any], list[str]]:
    """The client addresses of failed sign-ins in the audit log, and the throttle's address keys."""
    engine = make_engine(world.settings.database_url)
    try:
        with engine.connect() as connection:
            clients = list(
                connection.execute(
                    sa_select(event_table.c.client).where(
                        event_table.c.action == Action.SIGN_IN_FAILED.value
                    )
                ).scalars()
            )
        with Session(engine) as db:
            keys = list(
                db.exec(select(Throttle.key).where(col(Throttle.key).startswith("address:"))).all()
            )
    finally:
        engine.dispose()
    return clients, keys


@SQLITE
def test_a_forged_forwarded_header_from_an_untrusted_peer_is_ignored(world: World) -> None:
    assert world.settings.trusted_proxies == ()  # the default: nobody
    _wrong_password(world, world.settings, "127.0.0.1", "203.0.113.50")
    _wrong_password(world, world.settings, "198.51.100.7", "203.0.113.51")
    clients, keys = _seen(world)
    assert clients == ["127.0.0.1", "198.51.100.7"]
    assert sorted(keys) == ["address:127.0.0.1", "address:198.51.100.7"]


@SQLITE
def test_from_a_trusted_proxy_the_forwarded_client_is_used(world: World) -> None:
    settings = dataclasses.replace(world.settings, trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    # nginx appends the address it saw: what the client wrote before it is not believed.
    _wrong_password(world, settings, "127.0.0.1", "192.0.2.1, 203.0.113.50")
    _wrong_password(world, settings, "10.1.2.3", "203.0.113.51")
    _wrong_password(world, settings, "198.51.100.7", "203.0.113.52")  # not a proxy of ours
    clients, keys = _seen(world)
    assert clients == ["203.0.113.50", "203.0.113.51", "198.51.100.7"]
    assert sorted(keys) == ["address:198.51.100.7", "address:203.0.113.50", "address:203.0.113.51"]


def test_trusted_proxies_setting() -> None:
    base = {"PORTAL_HOME": "/tmp/portal-settings-test"}
    assert Settings.from_environ(base).trusted_proxies == ()
    listed = Settings.from_environ(
        {**base, "PORTAL_TRUSTED_PROXIES": "127.0.0.1, ::1 10.0.0.0/8,192.168.1.7/32"}
    )
    assert listed.trusted_proxies == ("127.0.0.1", "::1", "10.0.0.0/8", "192.168.1.7")
    for bad in ("*", "localhost", "10.0.0.0/33"):
        with pytest.raises(SettingsError, match="PORTAL_TRUSTED_PROXIES"):
            Settings.from_environ({**base, "PORTAL_TRUSTED_PROXIES": bad})


@SQLITE
def test_portal_serve_leaves_forwarded_headers_to_the_app(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's own proxy handling (which trusts 127.0.0.1 by default) stays off."""
    import uvicorn

    from portal.cli import server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    server._serve(settings, "127.0.0.1", 8000)
    assert seen["proxy_headers"] is False

"""Browser tests: Playwright driving Debian's Chromium (never a downloaded browser), headless,
against the portal served by uvicorn on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from portal.settings import ClamdAddress, Settings
from portal.setup import initialise
from portal.web.app import create_app
from tests.harness.serving import serving
from tests.portal.conftest import SettableClock, cheap_hasher

CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.path.exists(p)), None
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if CHROMIUM is None:
        pytest.fail(
            "Debian's Chromium is not installed: apt-get install chromium "
            "(scripts/test installs it)."
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@dataclass
class LiveServer:
    url: str
    settings: Settings


@pytest.fixture
def live_server(
    tmp_path: Path, sqlite_database_url: str, clamd_address: ClamdAddress
) -> Iterator[LiveServer]:
    settings = Settings.from_environ(
        {
            "PORTAL_HOME": str(tmp_path / "home"),
            "PORTAL_DATABASE_URL": sqlite_database_url,
            "PORTAL_CLAMD": str(clamd_address),
        }
    )
    list(initialise(settings))
    with serving(create_app(settings, password_hasher=cheap_hasher())) as url:
        yield LiveServer(url=url, settings=settings)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_accessible(page: Page, name: str) -> None:
    """axe-core (bundled in axe-playwright-python, offline): no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    assert not bad, f"accessibility violations on {name}:\n" + "\n".join(bad)


# The exchange's fixtures (tests/portal/conftest.py: world, exchange) on the live server's settings,
# with the real time: the browser's authenticator codes come from the real clock.
@pytest.fixture
def settings(live_server: LiveServer) -> Settings:
    return live_server.settings


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(now=datetime.now(UTC))

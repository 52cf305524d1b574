"""A person enrols from their link, signs in with a code from their app, and signs out."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from click.testing import CliRunner
from playwright.sync_api import Page, expect

from portal.cli import main
from tests.browser.conftest import LiveServer, assert_accessible, screenshot

pytestmark = pytest.mark.browser
PASSWORD = "heather puffin bagpipe"


def _enrolment_link(server: LiveServer) -> str:
    env = {
        "PORTAL_HOME": str(server.settings.home),
        "PORTAL_DATABASE_URL": server.settings.database_url,
        "PORTAL_PUBLIC_URL": server.url,
    }
    runner = CliRunner()
    assert (
        runner.invoke(
            main,
            [
                "org",
                "add",
                "aberdeen-city",
                "--name",
                "Aberdeen City Council",
                "--kind",
                "authority",
            ],
            env=env,
        ).exit_code
        == 0
    )
    result = runner.invoke(
        main,
        [
            "user",
            "add",
            "k.reid@aberdeen.example",
            "--role",
            "uploader",
            "--org",
            "aberdeen-city",
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    link: str = __import__("json").loads(result.output)["enrolment_link"]
    return link


def test_enrol_sign_in_and_sign_out(page: Page, live_server: LiveServer) -> None:
    page.goto(_enrolment_link(live_server))
    expect(page.get_by_role("heading", level=1)).to_contain_text("choose a password")
    assert_accessible(page, "enrol-password")
    screenshot(page, "01-enrol-password")

    # A password that is too common: the error summary takes focus and names the field.
    page.get_by_label("Password", exact=True).fill("password1234")
    page.get_by_label("Type the password again").fill("password1234")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary")).to_contain_text("common password")
    assert_accessible(page, "enrol-password-error")
    screenshot(page, "02-enrol-password-error")

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Type the password again").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("authenticator app")
    assert_accessible(page, "enrol-app")
    screenshot(page, "03-enrol-app")

    # Scan nothing: read the key for manual entry, as someone typing it into an app would.
    secret = re.sub(r"\s", "", page.locator("#totp-secret").inner_text())
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from your app").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("recovery codes")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    assert_accessible(page, "recovery-codes")
    screenshot(page, "04-recovery-codes")

    page.get_by_role("link", name="Continue to sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert_accessible(page, "sign-in")
    page.get_by_label("Email address").fill("k.reid@aberdeen.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("security code")
    assert_accessible(page, "sign-in-code")
    screenshot(page, "05-sign-in-code")

    # Enrolment spent this time step's code, and a code is never accepted twice: use the next
    # step's, which the portal accepts as early as an app running 30 seconds fast would show it.
    page.get_by_label("Security code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your home page")
    expect(page.get_by_text("k.reid@aberdeen.example")).to_be_visible()
    assert_accessible(page, "home")
    screenshot(page, "06-home")

    page.get_by_role("link", name="Your account").click()
    assert_accessible(page, "account")
    screenshot(page, "07-account")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
    assert_accessible(page, "signed-out")
    page.goto(live_server.url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

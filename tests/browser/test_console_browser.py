"""A DPO in the browser: signs in with TOTP, searches the audit log, opens one document's history,
downloads an export, verifies the chain and the export; axe-core checks every console page."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from starlette.testclient import TestClient

import audit
from portal.auditing import SIGNING_KEY_FILE
from portal.console import alerts
from portal.db import make_engine
from portal.web.app import create_app
from tests.browser.conftest import LiveServer, assert_accessible, screenshot
from tests.harness.waiting import PATIENCE
from tests.portal.conftest import (
    Person,
    World,
    api_token,
    cheap_hasher,
    world,  # noqa: F401 (the same people as the HTTP tests, on the live server's database)
)

pytestmark = pytest.mark.browser

SECRET_NAME = "Jane-Doe-core-assessment.txt"
CONTENT = b"Core assessment: confidential, for the review team only.\n" * 50


@pytest.fixture
def document(world: World) -> str:  # noqa: F811
    """SWG24 open today, one record uploaded by Aberdeen, viewed and downloaded by the team."""
    today = date.today()
    app = create_app(world.settings, password_hasher=cheap_hasher())
    lead, uploader = api_token(world, "lead"), api_token(world, "uploader")
    inspector = api_token(world, "inspector")
    with TestClient(app) as api:
        assert api.post(
            "/api/v1/reviews",
            headers=lead,
            json={
                "code": "SWG24",
                "title": "Children's services thematic review",
                "legal_basis": "Public Services Reform (Scotland) Act 2010, section 53",
                "opens_on": (today - timedelta(days=1)).isoformat(),
                "closes_on": (today + timedelta(days=60)).isoformat(),
                "retention_days": 90,
                "organisations": ["aberdeen-city"],
            },
        ).is_success
        email = world.people["inspector"].email
        assert api.post(
            "/api/v1/reviews/SWG24/members", headers=lead, json={"email": email}
        ).is_success
        assert api.post("/api/v1/reviews/SWG24/open", headers=lead, json={}).is_success
        sent = api.post(
            "/api/v1/reviews/SWG24/documents",
            content=CONTENT,
            headers={
                **uploader,
                "Content-Disposition": f"attachment; filename={SECRET_NAME}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert sent.status_code == 201, sent.text
        reference: str = sent.json()["reference"]
        deadline = time.monotonic() + PATIENCE
        while (
            api.get(f"/api/v1/documents/{reference}", headers=inspector).json()["state"]
            != "available"
        ):
            assert time.monotonic() < deadline, "the scan did not finish"
            time.sleep(0.2)
        assert api.get(f"/api/v1/documents/{reference}/content", headers=inspector).is_success
    return reference


def sign_in(page: Page, server: LiveServer, person: Person) -> None:
    page.goto(server.url + "/sign-in")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()
    # Enrolment spent this time step's code: use the next one.
    page.get_by_label("Security code").fill(person.code(datetime.now(UTC) + timedelta(seconds=30)))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Console")).to_be_visible()


def check(page: Page, name: str) -> None:
    assert SECRET_NAME not in page.content(), name
    assert_accessible(page, name)
    screenshot(page, f"console-{name}")


def test_a_dpo_searches_follows_a_document_exports_and_verifies(
    page: Page,
    live_server: LiveServer,
    world: World,  # noqa: F811
    document: str,
) -> None:
    sign_in(page, live_server, world.people["dpo"])
    page.get_by_role("link", name="Console").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Data protection console")
    check(page, "01-home")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").select_option("document.downloaded")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(world.people["inspector"].email)
    check(page, "02-audit-search")

    page.get_by_role("link", name=document).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(document)
    history = page.locator("#events")
    for action in ("document.uploaded", "document.scanned", "document.downloaded"):
        expect(history.locator(f'tr[data-action="{action}"]')).to_have_count(1)
    check(page, "03-document-history")

    page.get_by_role("link", name=world.people["inspector"].email).first.click()
    expect(page.locator("#user-details")).to_contain_text("inspector")
    check(page, "04-user-history")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("button", name="Search").click()
    with page.expect_download() as arrival:
        page.locator("#export-jsonl").click()
    exported = arrival.value.path().read_bytes()
    key = audit.load_signing_key(world.settings.key_dir / SIGNING_KEY_FILE).public_key
    assert audit.verify_export(exported, key).ok

    page.get_by_role("link", name="Verify").first.click()
    check(page, "05-verify")
    page.get_by_role("button", name="Verify the audit log").click()
    expect(page.locator("#verify-result")).to_contain_text("The audit log verifies")
    check(page, "06-verified")
    page.get_by_label("Export file (.jsonl or .csv)").set_input_files(
        {"name": "audit.jsonl", "mimeType": "application/x-ndjson", "buffer": exported}
    )
    page.get_by_role("button", name="Check the file").click()
    expect(page.locator("#file-result")).to_contain_text("The export file verifies")
    check(page, "07-file-verified")

    for link, name in [
        ("Anomalies", "08-anomalies"),
        ("Destruction schedule", "09-schedule"),
        ("Holds", "10-holds"),
        ("Certificates", "11-certificates"),
    ]:
        page.locator("#console-nav").get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        check(page, name)
    page.locator("#console-nav").get_by_role("link", name="Holds").click()
    page.get_by_role("button", name="Place the hold").click()
    expect(page.locator("#error-summary")).to_contain_text("Enter the code of the review")
    check(page, "12-hold-error")


def test_a_dpo_acknowledges_an_alert_in_the_browser(
    page: Page,
    live_server: LiveServer,
    world: World,  # noqa: F811
) -> None:
    engine = make_engine(world.settings.database_url)
    try:
        now = datetime.now(UTC)
        [raised] = alerts.raise_alerts(
            engine,
            now=now,
            thresholds=world.settings.alert_thresholds,
            extra=[
                alerts.unsigned_tail_finding(3, audit.to_us(now - timedelta(minutes=5)), now=now)
            ],
        )
    finally:
        engine.dispose()
    sign_in(page, live_server, world.people["dpo"])
    page.goto(live_server.url + "/console")
    page.locator("#console-nav").get_by_role("link", name="Alerts").click()
    row = page.locator(f'#alerts tr[data-alert="{raised.id}"]')
    expect(row).to_contain_text("Audit events left unsigned too long")
    check(page, "13-alerts")
    row.get_by_role("button", name=f"Acknowledge alert {raised.id}").click()
    expect(row).to_contain_text(world.people["dpo"].email)
    expect(row.get_by_role("button")).to_have_count(0)
    check(page, "14-alert-acknowledged")

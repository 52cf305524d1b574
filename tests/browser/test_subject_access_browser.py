"""A DPO in the browser answers a subject-access request: types a case reference, sees its
documents and who opened them, downloads the JSON; axe-core checks the page, with and without an
error."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect
from starlette.testclient import TestClient

from portal.web.app import create_app
from tests.browser.conftest import LiveServer
from tests.browser.test_console_browser import check, sign_in
from tests.harness.waiting import PATIENCE
from tests.portal.conftest import (
    World,
    api_token,
    cheap_hasher,
    world,  # noqa: F401 (the same people as the HTTP tests, on the live server's database)
)

pytestmark = pytest.mark.browser

SECRET_NAME = "Jane-Doe-core-assessment.txt"
CONTENT = b"Core assessment: confidential, for the review team only.\n" * 50


@pytest.fixture
def case(world: World) -> tuple[str, str]:  # noqa: F811
    """SWG24 open today, a case, one record for it, downloaded by the inspector."""
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
        created = api.post("/api/v1/reviews/SWG24/cases", headers=uploader)
        assert created.status_code == 201, created.text
        case_reference: str = created.json()["reference"]
        sent = api.post(
            "/api/v1/reviews/SWG24/documents",
            params={"case": case_reference},
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
    return case_reference, reference


def test_a_dpo_answers_a_subject_access_request(
    page: Page,
    live_server: LiveServer,
    world: World,  # noqa: F811
    case: tuple[str, str],
) -> None:
    case_reference, document = case
    sign_in(page, live_server, world.people["dpo"])
    page.get_by_role("link", name="Console").click()
    page.get_by_role("link", name="Subject access").click()
    check(page, "sa-01-form")

    page.get_by_label("Case reference").fill("0000-0000-0001")
    page.get_by_role("button", name="Show what we hold").click()
    expect(page.locator("#case-error")).to_contain_text("not a valid case reference")
    check(page, "sa-02-mistyped")

    page.get_by_label("Case reference").fill(case_reference.lower())
    page.get_by_role("button", name="Show what we hold").click()
    expect(page.get_by_role("heading", level=2, name=f"Case {case_reference}")).to_be_visible()
    section = page.locator(f'section[data-document="{document}"]')
    expect(section.locator('tr[data-action="document.downloaded"]')).to_contain_text(
        world.people["inspector"].email
    )
    check(page, "sa-03-case")

    with page.expect_download() as waited:
        page.get_by_role("link", name="Download as JSON").click()
    path = waited.value.path()
    assert path is not None
    body = json.loads(path.read_bytes())
    assert body["case"]["reference"] == case_reference
    assert [d["reference"] for d in body["documents"]] == [document]
    assert SECRET_NAME not in path.read_text()

"""A DPO in the browser holds one case of a review and lifts the hold, saying why (issue 16);
axe-core checks the holds page at each step, its errors included."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect
from starlette.testclient import TestClient

from portal.web.app import create_app
from tests.browser.conftest import LiveServer, assert_accessible, screenshot
from tests.browser.test_console_browser import sign_in
from tests.portal.conftest import (
    World,
    api_token,
    cheap_hasher,
    world,  # noqa: F401 (the same people as the HTTP tests, on the live server's database)
)

pytestmark = pytest.mark.browser


@pytest.fixture
def case(world: World) -> str:  # noqa: F811
    """SWG24 open today, with one case issued by Aberdeen."""
    today = date.today()
    app = create_app(world.settings, password_hasher=cheap_hasher())
    lead, uploader = api_token(world, "lead"), api_token(world, "uploader")
    with TestClient(app) as api:
        created = api.post(
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
        )
        assert created.status_code == 201, created.text
        assert api.post("/api/v1/reviews/SWG24/open", headers=lead, json={}).is_success
        issued = api.post("/api/v1/reviews/SWG24/cases", headers=uploader)
        assert issued.status_code == 201, issued.text
        reference: str = issued.json()["reference"]
    return reference


def check(page: Page, name: str) -> None:
    assert_accessible(page, name)
    screenshot(page, f"holds-{name}")


def test_a_dpo_holds_a_case_and_lifts_the_hold_with_a_reason(
    page: Page,
    live_server: LiveServer,
    world: World,  # noqa: F811
    case: str,
) -> None:
    sign_in(page, live_server, world.people["dpo"])
    page.goto(live_server.url + "/console/holds")
    form = page.locator("#place-hold")
    form.get_by_label("Review code").fill("SWG24")
    form.get_by_label("Case reference (optional)").fill("0000-0000-0000")  # no such case
    form.get_by_label("Reason").select_option("safeguarding")
    form.get_by_role("button", name="Place the hold").click()
    expect(page.locator("#error-summary")).to_contain_text("no document or case")
    expect(page.locator("#case")).to_have_attribute("aria-invalid", "true")
    check(page, "01-unknown-case")

    form = page.locator("#place-hold")
    form.get_by_label("Case reference (optional)").fill(case.lower())  # typed loosely
    form.get_by_label("Reason").select_option("safeguarding")
    form.get_by_label("Order reference (optional)").fill("CO/2027/0142")
    form.get_by_role("button", name="Place the hold").click()
    active = page.locator("#active-holds")
    expect(active).to_contain_text(f"Case {case}")
    expect(active).to_contain_text("Safeguarding")
    check(page, "02-case-held")

    row = active.locator("tbody tr").first
    hold_id = row.get_attribute("data-hold")
    row.get_by_role("button", name=f"Lift hold {hold_id}").click()
    expect(page.locator("#error-summary")).to_contain_text("Choose why the hold is lifted")
    check(page, "03-lift-needs-a-reason")

    row = page.locator("#active-holds tbody tr").first
    row.get_by_label(f"Why lift hold {hold_id}").select_option("proceedings_concluded")
    row.get_by_role("button", name=f"Lift hold {hold_id}").click()
    lifted = page.locator("#lifted-holds")
    expect(lifted).to_contain_text(f"Case {case}")
    expect(lifted).to_contain_text("Proceedings concluded")
    expect(page.get_by_text("No active hold.")).to_be_visible()
    check(page, "04-lifted")

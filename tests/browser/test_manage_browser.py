"""A lead creates and manages a review in the browser; every page passes axe-core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, assert_accessible, screenshot
from tests.browser.test_exchange_browser import sign_in
from tests.portal.conftest import (
    World,
    world,  # noqa: F401 (the same people as the HTTP tests, on the live server's database)
)

pytestmark = pytest.mark.browser


def test_a_lead_creates_a_review_asks_for_records_and_opens_it(
    page: Page,
    live_server: LiveServer,
    world: World,  # noqa: F811
) -> None:
    sign_in(page, live_server, world.people["lead"])
    page.get_by_role("link", name="Create a review").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("review")
    assert_accessible(page, "review-new")
    # A mistake first: the error summary takes focus and names the field.
    page.get_by_role("button").filter(has_text="Create").first.click()
    expect(page.locator("#error-summary")).to_be_focused()
    assert_accessible(page, "review-new-errors")
    today = datetime.now(UTC).date()
    page.get_by_label("Review code").fill("CSR27")
    page.get_by_label("Title").fill("Thematic review of care leavers' records")
    page.get_by_label("Legal basis").fill("Public Services Reform (Scotland) Act 2010, s. 53")
    page.get_by_label("Opens on").fill(today.isoformat())
    page.get_by_label("Closes on").fill((today + timedelta(days=60)).isoformat())
    page.get_by_label("Days to keep the records after closing").fill("90")
    page.get_by_role("button").filter(has_text="Create").first.click()
    expect(page.get_by_text("CSR27").first).to_be_visible()
    page.get_by_role("link", name="Manage this review").click()
    assert_accessible(page, "review-manage")
    screenshot(page, "review-manage")
    page.get_by_label("Add an organisation").select_option("aberdeen-city")
    page.get_by_role("button", name="Add organisation").click()
    expect(page.get_by_text("Aberdeen City Council").first).to_be_visible()
    assert_accessible(page, "review-manage-after")

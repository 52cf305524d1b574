"""The API reference page (/docs/api) in the browser: public, every operation and schema on it,
links that land, and axe-core finds nothing serious; without JavaScript it reads the same."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.web.openapi import document
from tests.browser.conftest import LiveServer, assert_accessible, screenshot

pytestmark = pytest.mark.browser


def test_the_api_reference_lists_every_operation_and_passes_axe(
    page: Page, live_server: LiveServer
) -> None:
    page.goto(f"{live_server.url}/docs/api")
    expect(page.locator("h1")).to_have_text("API reference")
    spec = document()
    ids = [o["operationId"] for methods in spec["paths"].values() for o in methods.values()]
    for operation_id in ids:
        expect(page.locator(f'[data-operation="{operation_id}"]')).to_have_count(1)
    for name in spec["components"]["schemas"]:
        expect(page.locator(f'[data-schema="{name}"]')).to_have_count(1)
    # A schema named by an operation is a link to its description.
    page.locator('#placeHold a[href="#schema-NewHold"]').first.click()
    expect(page.locator("#schema-NewHold")).to_be_in_viewport()
    screenshot(page, "api-reference")
    assert_accessible(page, "the API reference")


def test_the_api_reference_needs_no_javascript(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        nojs = context.new_page()
        nojs.goto(f"{live_server.url}/docs/api")
        expect(nojs.locator('[data-operation="uploadDocument"]')).to_contain_text(
            "POST /api/v1/reviews/{code}/documents"
        )
    finally:
        context.close()

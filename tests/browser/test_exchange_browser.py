"""An uploader sends two files at once from the browser; an inspector downloads both; the audit log
holds every step. axe-core checks each page of the exchange on the way."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.sync_api import Browser, FilePayload, Page, Route, expect
from starlette.testclient import TestClient

from audit import EventFilter, search
from portal.db import make_engine
from portal.web.app import create_app
from tests.browser.conftest import LiveServer, assert_accessible, screenshot
from tests.portal.conftest import (
    Person,
    World,
    api_token,
    cheap_hasher,
    world,  # noqa: F401 (the same people as the HTTP tests, on the live server's database)
)

pytestmark = pytest.mark.browser

# Two different files, each large enough to take several progress events.
FIRST = b"Chronology of significant events, 2024 to 2026.\n" * 40_000
SECOND = b"Child's plan review: actions agreed and who will do them.\n" * 30_000


@pytest.fixture
def review(world: World) -> Iterator[int]:  # noqa: F811
    """SWG24, open today, asking Aberdeen for records, the inspector on its team: made through
    the API as a lead's script would, on the same database the live server uses."""
    today = date.today()
    app = create_app(world.settings, password_hasher=cheap_hasher())
    lead = api_token(world, "lead")
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
                "organisations": ["aberdeen-city", "dundee-city"],
            },
        )
        assert created.status_code == 201, created.text
        email = world.people["inspector"].email
        assert api.post(
            "/api/v1/reviews/SWG24/members", headers=lead, json={"email": email}
        ).is_success
        assert api.post("/api/v1/reviews/SWG24/open", headers=lead, json={}).is_success
        asked = api.post(
            "/api/v1/reviews/SWG24/requests",
            headers=lead,
            json={
                "organisation": "aberdeen-city",
                "title": "Records of the 5 selected young people",
                "due_on": (today + timedelta(days=30)).isoformat(),
                "expected": 5,
            },
        )
        assert asked.status_code == 201, asked.text
        yield asked.json()["id"]


def sign_in(page: Page, server: LiveServer, person: Person) -> None:
    page.goto(server.url + "/sign-in")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()
    # Enrolment spent this time step's code: use the next one, as the accounts test explains.
    page.get_by_label("Security code").fill(person.code(datetime.now(UTC) + timedelta(seconds=30)))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your home page")


def test_two_files_up_from_an_authority_and_down_to_the_team(
    page: Page,
    browser: Browser,
    live_server: LiveServer,
    world: World,  # noqa: F811
    review: int,
) -> None:
    uploader, inspector = world.people["uploader"], world.people["inspector"]
    sign_in(page, live_server, uploader)
    expect(page.locator("#requests")).to_contain_text("0 of 5")
    assert_accessible(page, "home-uploader")
    screenshot(page, "exchange-01-home-uploader")

    page.get_by_role("link", name="SWG24").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("SWG24")
    page.get_by_role("button", name="Create a case reference").click()
    expect(page.locator("#case-created")).to_be_visible()
    assert_accessible(page, "review-uploader")
    screenshot(page, "exchange-02-review-uploader")

    page.get_by_role("link", name="Upload records").click()
    # The plain form's answer to "no file" (form.submit() skips the script, as no JavaScript would).
    page.locator("#upload-form").evaluate("form => HTMLFormElement.prototype.submit.call(form)")
    expect(page.locator("#error-summary")).to_contain_text("Choose a file to upload")
    expect(page.locator("#error-summary")).to_be_focused()
    assert_accessible(page, "upload-error")
    expect(page.get_by_label("Choose files")).to_be_attached()  # enhanced: several at once
    page.get_by_label("Which request is this for?").select_option(str(review))
    assert_accessible(page, "upload")
    files: list[FilePayload] = [
        {"name": "chronology.txt", "mimeType": "text/plain", "buffer": FIRST},
        {"name": "child's plan.txt", "mimeType": "text/plain", "buffer": SECOND},
    ]
    page.get_by_label("Choose files").set_input_files(files)
    expect(page.locator("#upload-list progress")).to_have_count(2)

    # Send 1 MiB at a time and cut the connection under the first PATCH past the start: the
    # upload must resume from the offset the server holds, not start again.
    page.locator("#upload-form").evaluate("form => { form.dataset.chunkBytes = '1048576'; }")
    offsets: list[tuple[str, int]] = []
    cut: list[tuple[str, int]] = []

    def flaky(route: Route) -> None:
        request = route.request
        if request.method == "PATCH":
            sent_at = (request.url, int(request.headers["upload-offset"]))
            offsets.append(sent_at)
            if not cut and sent_at[1] > 0:
                cut.append(sent_at)
                route.abort("connectionreset")
                return
        route.continue_()

    page.route("**/api/v1/uploads/*", flaky)
    page.get_by_role("button", name="Upload").click()
    references = page.locator(".portal-upload__reference")
    expect(references).to_have_count(2, timeout=20_000)
    for bar in page.locator("#upload-list progress").all():
        expect(bar).to_have_attribute("value", "100")
    expect(page.locator("#upload-announcer")).to_contain_text("finished")
    assert cut and offsets.count(cut[0]) == 2, offsets  # the same offset again, after the cut
    assert sum(1 for _, offset in offsets if offset == 0) == 2  # neither file started over
    page.unroute("**/api/v1/uploads/*")
    assert_accessible(page, "upload-done")
    screenshot(page, "exchange-03-uploaded")
    sent = dict(
        zip(
            references.all_inner_texts(),
            (hashlib.sha256(FIRST).hexdigest(), hashlib.sha256(SECOND).hexdigest()),
            strict=True,
        )
    )

    page.get_by_role("link", name="Receipt for chronology.txt").click()
    first_reference = next(iter(sent))
    expect(page.locator("#receipt-reference")).to_have_text(first_reference)
    expect(page.locator("#receipt-sha256")).to_have_text(sent[first_reference])
    assert_accessible(page, "receipt")
    screenshot(page, "exchange-04-receipt")

    page.get_by_role("link", name="See the document's details").click()
    expect(page.locator("#document-state")).to_contain_text("Available", timeout=15_000)
    assert_accessible(page, "document-uploader")
    screenshot(page, "exchange-05-document-uploader")
    page.get_by_role("link", name="Withdraw this document").click()
    assert_accessible(page, "withdraw-confirm")
    screenshot(page, "exchange-06-withdraw-confirm")

    # The inspector, in another browser: both documents, downloaded, byte for byte.
    team = browser.new_context(accept_downloads=True)
    other = team.new_page()
    sign_in(other, live_server, inspector)
    other.get_by_role("link", name="SWG24").first.click()
    for reference in sent:
        expect(other.locator("#document-list")).to_contain_text(reference)
    assert_accessible(other, "review-inspector")
    screenshot(other, "exchange-07-review-inspector")
    for reference, digest in sent.items():
        other.goto(f"{live_server.url}/documents/{reference}")
        expect(other.locator("#document-state")).to_contain_text("Available", timeout=15_000)
        with other.expect_download() as arrival:
            other.get_by_role("link", name=f"Download document {reference}").click()
        path = arrival.value.path()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert_accessible(other, "document-inspector")
    screenshot(other, "exchange-08-document-inspector")
    team.close()

    # Dundee, in a browser without JavaScript: the plain form, one file, straight to a receipt.
    plain = browser.new_context(java_script_enabled=False)
    nojs = plain.new_page()
    sign_in(nojs, live_server, world.people["other_uploader"])
    nojs.goto(f"{live_server.url}/reviews/SWG24/upload")
    nojs.get_by_role("button", name="Upload").click()
    expect(nojs.locator("#error-summary")).to_contain_text("Choose a file to upload")
    screenshot(nojs, "exchange-09-upload-error-no-js")  # axe needs JavaScript: checked above
    nojs.get_by_label("Choose a file").set_input_files(
        {"name": "minutes.txt", "mimeType": "text/plain", "buffer": SECOND}
    )
    nojs.get_by_role("button", name="Upload").click()
    expect(nojs.get_by_role("heading", level=1)).to_contain_text("Receipt for")
    expect(nojs.locator("#receipt-sha256")).to_have_text(hashlib.sha256(SECOND).hexdigest())
    plain.close()

    # Every step is in the audit log.
    engine = make_engine(live_server.settings.database_url)
    try:
        with engine.connect() as db:

            def events(action: str, who: Person, reference: str | None = None) -> int:
                where = EventFilter(action=action, actor=who.user_id, document=reference)
                return len(search(db, where, limit=100).records)

            assert events("auth.sign_in", uploader) == 1
            assert events("auth.sign_in", inspector) == 1
            for reference in sent:
                assert events("document.uploaded", uploader, reference) == 1
                assert events("document.downloaded", inspector, reference) == 1
                scanned = search(db, EventFilter(action="document.scanned", document=reference))
                assert [e.outcome for e in scanned.records] == ["success"]
    finally:
        engine.dispose()

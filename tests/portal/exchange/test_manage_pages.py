"""The pages a review's lead (or an administrator) uses to create and manage reviews, driven as a
browser without JavaScript would: real requests, the same services as the API, no mocks."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal.accounts.models import Role
from tests.portal.conftest import Exchange, SettableClock, World, csrf_from, sign_in

PLAN = {
    "code": "NEW25",
    "title": "Adult support and protection review",
    "legal_basis": "Public Services Reform (Scotland) Act 2010, section 53",
    "opens_on": "2026-11-01",
    "closes_on": "2027-03-31",
    "retention_days": "90",
}


def browser(
    who: str, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> TestClient:
    client = second_client()
    sign_in(client, world.people[who], clock)
    return client


def post_form(client: TestClient, page: str, action: str, fields: dict[str, str]) -> Any:
    """Open ``page`` as a browser would, then send one of its forms to ``action``."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    return client.post(action, data={**fields, "csrf_token": csrf_from(shown.text)})


def text_of(response: Any) -> str:
    return html.unescape(response.text)


def test_a_lead_creates_and_runs_a_review_through_the_pages(
    world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    lead = browser("lead", world, clock, second_client)
    home = lead.get("/")
    assert 'href="/reviews/new"' in home.text

    created = post_form(lead, "/reviews/new", "/reviews/new", PLAN)
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/reviews/NEW25"
    review = lead.get("/reviews/NEW25")
    assert review.status_code == 200
    assert 'href="/reviews/NEW25/manage"' in review.text

    manage = "/reviews/NEW25/manage"
    page = lead.get(manage)
    assert page.status_code == 200
    assert "Draft" in page.text
    assert world.people["lead"].email in page.text
    assert "Aberdeen City Council" in page.text  # offered in the select
    assert "Care Inspectorate" not in page.text.split('id="organisation"')[1].split("</select>")[0]

    added = post_form(lead, manage, f"{manage}/organisations", {"organisation": "aberdeen-city"})
    assert added.status_code == 303, added.text
    member = post_form(
        lead, manage, f"{manage}/members", {"email": world.people["inspector"].email}
    )
    assert member.status_code == 303, member.text
    asked = post_form(
        lead,
        manage,
        f"{manage}/requests",
        {
            "request_organisation": "aberdeen-city",
            "title": "Case files of the 3 selected adults",
            "instructions": "The last 12 months.\nOne file per person.",
            "due_on": "2026-12-15",
            "expected": "3",
        },
    )
    assert asked.status_code == 303, asked.text

    page = lead.get(manage)
    organisations = page.text.split('id="organisations"')[1].split("</ul>")[0]
    assert "Aberdeen City Council" in organisations
    assert world.people["inspector"].email in page.text.split('id="team"')[1].split("</ul>")[0]
    assert "Case files of the 3 selected adults" in page.text
    assert "15 December 2026" in page.text
    assert "0 of 3" in page.text

    opened = post_form(lead, manage, f"{manage}/open", {})
    assert opened.status_code == 303, opened.text
    assert "Open" in lead.get(manage).text.split('id="review-state-tag"')[1][:40]

    # Closing asks first; unconfirmed, nothing changes.
    close = f"{manage}/close"
    unconfirmed = post_form(lead, close, close, {})
    assert unconfirmed.status_code == 400
    assert "Tick the box" in unconfirmed.text
    assert "Open" in lead.get(manage).text.split('id="review-state-tag"')[1][:40]

    # Today (2 November 2026) is well before 31 March 2027: the closing date becomes today.
    closed = post_form(lead, close, close, {"confirm": "yes"})
    assert closed.status_code == 303, closed.text
    page = lead.get(manage)
    assert "Closed" in page.text.split('id="review-state-tag"')[1][:40]
    dates = page.text.split('id="review-dates"')[1].split("</dd>")[0]
    assert "1 November 2026 to 2 November 2026" in dates

    # Closed: a second close is a message on the page, not an error page.
    again = lead.post(close, data={"confirm": "yes", "csrf_token": csrf_from(page.text)})
    assert again.status_code == 400
    assert "already closed" in again.text


def test_an_admin_names_the_lead(
    world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    admin = browser("admin", world, clock, second_client)
    form = admin.get("/reviews/new")
    assert 'name="lead"' in form.text
    missing = admin.post("/reviews/new", data={**PLAN, "csrf_token": csrf_from(form.text)})
    assert missing.status_code == 400
    assert "Enter the email address of the review" in text_of(missing)
    not_a_lead = admin.post(
        "/reviews/new",
        data={**PLAN, "lead": world.people["inspector"].email, "csrf_token": csrf_from(form.text)},
    )
    assert not_a_lead.status_code == 400
    assert 'id="lead-error"' in not_a_lead.text
    made = admin.post(
        "/reviews/new",
        data={**PLAN, "lead": world.people["lead"].email, "csrf_token": csrf_from(form.text)},
    )
    assert made.status_code == 303, made.text
    # The named lead manages it; the admin may too.
    lead = browser("lead", world, clock, second_client)
    assert lead.get("/reviews/NEW25/manage").status_code == 200
    assert admin.get("/reviews/NEW25/manage").status_code == 200
    # A lead is never asked for a lead: they lead their own review.
    assert 'name="lead"' not in lead.get("/reviews/new").text


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"code": "swg 24!"}, "code", "is not valid"),
        ({"code": ""}, "code", "is not valid"),
        ({"closes_on": "2026-10-31"}, "closes_on", "on or after the opening date"),
        ({"opens_on": "31/12/2026"}, "opens_on", "as a date"),
        ({"retention_days": "ninety"}, "retention_days", "whole number"),
        ({"retention_days": "99999"}, "retention_days", "0 to 3650 days"),
        ({"title": "Review\x1b[31m of\u202escripts"}, "title", "characters that cannot be used"),
        ({"title": ""}, "title", "title"),
        ({"legal_basis": "Act\x00"}, "legal_basis", "characters that cannot be used"),
    ],
)
def test_mistakes_in_the_new_review_form_are_shown_on_their_fields(
    change: dict[str, str],
    field: str,
    message: str,
    world: World,
    clock: SettableClock,
    second_client: Callable[[], TestClient],
) -> None:
    lead = browser("lead", world, clock, second_client)
    refused = post_form(lead, "/reviews/new", "/reviews/new", {**PLAN, **change})
    assert refused.status_code == 400, refused.text
    shown = text_of(refused)
    assert 'class="ds_error-summary"' in shown
    assert f'href="#{field}"' in shown
    error = shown.split(f'id="{field}-error"')[1].split("</p>")[0]
    assert message in error
    assert f'{field}-error" aria-invalid="true"' in shown
    assert "\x1b" not in refused.text and "\x00" not in refused.text
    assert lead.get("/reviews/NEW25").status_code == 404  # nothing was made


def test_an_existing_code_is_refused(
    exchange: Exchange, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    lead = browser("lead", world, clock, second_client)
    refused = post_form(lead, "/reviews/new", "/reviews/new", {**PLAN, "code": "SWG24"})
    assert refused.status_code == 400
    assert "already a review with the code SWG24" in text_of(refused)


def test_mistakes_in_the_manage_forms_are_shown_on_the_page(
    exchange: Exchange, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    lead = browser("lead", world, clock, second_client)
    manage = "/reviews/SWG24/manage"
    cases = [
        ("members", {"email": "nobody@example.org"}, "email", "no active inspector or lead"),
        ("members", {"email": world.people["uploader"].email}, "email", "no active inspector"),
        ("organisations", {"organisation": "inspectorate"}, "organisation", "Only authorities"),
        ("organisations", {"organisation": "made-up"}, "organisation", "from the list"),
        (
            "requests",
            {"request_organisation": "aberdeen-city", "title": "Files\x07", "due_on": "2026-12-01"},
            "title",
            "characters that cannot be used",
        ),
        (
            "requests",
            {"request_organisation": "aberdeen-city", "title": "Files", "due_on": "soon"},
            "due_on",
            "as a date",
        ),
        (
            "requests",
            {
                "request_organisation": "aberdeen-city",
                "title": "Files",
                "due_on": "2026-12-01",
                "expected": "-1",
            },
            "expected",
            "whole number",
        ),
        ("open", {}, "review-state", "only a draft can be opened"),
    ]
    for action, fields, field, message in cases:
        refused = post_form(lead, manage, f"{manage}/{action}", fields)
        assert refused.status_code == 400, (action, fields)
        shown = text_of(refused)
        assert f'href="#{field}"' in shown, (action, fields)
        assert message in shown, (action, fields, shown)
    # Nothing was added by the refused forms.
    page = lead.get(manage).text
    assert "nobody@example.org" not in page
    assert page.count("<tr>") == 2  # the heading row and the one request made by the fixture


@pytest.mark.parametrize("who", ["inspector", "uploader", "other_uploader", "dpo"])
def test_people_who_do_not_lead_see_nothing(
    who: str,
    exchange: Exchange,
    world: World,
    clock: SettableClock,
    second_client: Callable[[], TestClient],
) -> None:
    client = browser(who, world, clock, second_client)
    assert 'href="/reviews/new"' not in client.get("/").text
    assert client.get("/reviews/new").status_code == 404
    assert client.get("/reviews/SWG24/manage").status_code == 404
    assert client.get("/reviews/SWG24/manage/close").status_code == 404
    token = csrf_from(client.get("/account").text)
    for action in ("open", "close", "members", "organisations", "requests"):
        answer = client.post(
            f"/reviews/SWG24/manage/{action}",
            data={"confirm": "yes", "email": world.people[who].email, "csrf_token": token},
        )
        assert answer.status_code == 404, action
    if who in ("inspector", "uploader"):
        assert "Manage this review" not in client.get("/reviews/SWG24").text


def test_another_lead_cannot_manage_someone_elses_review(
    exchange: Exchange, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    world.people["lead2"] = world.add_person(
        "lead2@inspectorate.example", Role.lead, "inspectorate"
    )
    other = browser("lead2", world, clock, second_client)
    assert other.get("/reviews/new").status_code == 200  # a lead may create their own
    assert other.get("/reviews/SWG24/manage").status_code == 404
    token = csrf_from(other.get("/account").text)
    closed = other.post("/reviews/SWG24/manage/close", data={"confirm": "yes", "csrf_token": token})
    assert closed.status_code == 404
    added = other.post(
        "/reviews/SWG24/manage/members",
        data={"email": "lead2@inspectorate.example", "csrf_token": token},
    )
    assert added.status_code == 404
    lead = browser("lead", world, clock, second_client)
    page = lead.get("/reviews/SWG24/manage")
    assert "Open" in page.text.split('id="review-state-tag"')[1][:40]
    assert "lead2@" not in page.text
    assert "Manage this review" in lead.get("/reviews/SWG24").text


def test_forms_without_the_csrf_token_are_refused(
    exchange: Exchange, world: World, clock: SettableClock, second_client: Callable[[], TestClient]
) -> None:
    lead = browser("lead", world, clock, second_client)
    answer = lead.post("/reviews/SWG24/manage/close", data={"confirm": "yes"})
    assert answer.status_code in (400, 403)
    assert "Open" in lead.get("/reviews/SWG24/manage").text.split('id="review-state-tag"')[1][:40]

"""No oracle in the member-add form or the organisation filter (issue 18, item 6).

A lead could tell from the member-add message whether an e-mail address has an account ("There is no
user with that email address" against "Only active inspectors and leads…"), and anyone could probe
organisation codes through ``?organisation=`` (404 for a code that does not exist, 200 for one that
does). Each pair of answers is compared here byte for byte: status and body, the body with only
what the caller typed (and the page's CSRF token) taken out.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal.accounts.models import Role
from tests.portal.conftest import Exchange, csrf_from, sign_in

NOBODY = "nobody-here@inspectorate.example"


def _same(answers: dict[str, tuple[int, bytes]]) -> None:
    assert len(set(answers.values())) == 1, answers


def _api_member(exchange: Exchange, email: str) -> Any:
    return exchange.client.post(
        "/api/v1/reviews/SWG24/members", json={"email": email}, headers=exchange.tokens["lead"]
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_adding_a_member_answers_alike_for_no_account_and_one_that_cannot_join(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world = exchange.world
    cannot_join = {
        "no account": NOBODY,
        "an uploader": world.people["uploader"].email,
        "a dpo": world.people["dpo"].email,
        "an admin": world.people["admin"].email,
    }
    answers = {}
    for what, email in cannot_join.items():
        answer = _api_member(exchange, email)
        answers[what] = (answer.status_code, answer.content)
    _same(answers)
    status, body = answers["no account"]
    assert status == 400 and b"invalid_member" in body
    # The page's form: the same message next to the field, the same page around it.
    lead = second_client()
    sign_in(lead, world.people["lead"], world.clock)
    pages = {}
    for what, email in cannot_join.items():
        shown = lead.get("/reviews/SWG24/manage")
        answer = lead.post(
            "/reviews/SWG24/manage/members",
            data={"email": email, "csrf_token": csrf_from(shown.text)},
        )
        text = answer.text.replace(csrf_from(answer.text), "TOKEN")
        pages[what] = (answer.status_code, text.replace(html.escape(email), "EMAIL").encode())
    _same(pages)
    assert pages["no account"][0] == 400
    assert (
        b"There is no active inspector or lead with that email address." in (pages["no account"][1])
    )
    # The control: someone who can join is added.
    newcomer = world.add_person("newcomer@inspectorate.example", Role.inspector, "inspectorate")
    assert _api_member(exchange, newcomer.email).status_code == 200


def _api_filter(exchange: Exchange, who: str, code: str) -> tuple[int, bytes]:
    answer = exchange.client.get(
        "/api/v1/reviews/SWG24/documents",
        params={"organisation": code},
        headers=exchange.tokens[who],
    )
    return answer.status_code, answer.content


def _page_filter(client: TestClient, code: str) -> tuple[int, bytes]:
    answer = client.get("/reviews/SWG24", params={"organisation": code})
    text = (
        answer.text.replace(csrf_from(answer.text), "TOKEN") if "csrf_token" in answer.text else ""
    )
    return answer.status_code, text.replace(html.escape(code), "CODE").encode()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_organisation_filter_answers_alike_for_no_such_code_and_one_not_allowed(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    world = exchange.world
    assert exchange.upload("uploader", b"Minutes.\n" * 20).status_code == 201
    # An uploader may list their own organisation's documents only; the team, the review's
    # organisations. Everything else, existing or not, is one answer.
    refused = {
        "uploader": {
            "no such code": "no-such-council",
            "another taking part": "dundee-city",
            "one not taking part": "inspectorate",
        },
        "inspector": {"no such code": "no-such-council", "one not taking part": "inspectorate"},
    }
    allowed = {"uploader": "aberdeen-city", "inspector": "dundee-city"}
    for who, codes in refused.items():
        answers = {what: _api_filter(exchange, who, code) for what, code in codes.items()}
        _same(answers)
        status, body = answers["no such code"]
        assert status == 400 and b"invalid_query" in body, who
        assert _api_filter(exchange, who, allowed[who])[0] == 200, who
        browser = second_client()
        sign_in(browser, world.people[who], world.clock)
        pages = {what: _page_filter(browser, code) for what, code in codes.items()}
        _same(pages)
        assert pages["no such code"][0] == 400, who
        assert _page_filter(browser, allowed[who])[0] == 200, who


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_lead_naming_another_lead_learns_nothing_about_the_address(exchange: Exchange) -> None:
    from tests.portal.conftest import LEGAL_BASIS, REVIEW_TITLE

    world = exchange.world
    other = world.add_person("other-lead@inspectorate.example", Role.lead, "inspectorate")

    def create(lead: str) -> Any:
        return exchange.client.post(
            "/api/v1/reviews",
            json={
                "code": "NEW26",
                "title": REVIEW_TITLE,
                "legal_basis": LEGAL_BASIS,
                "opens_on": "2026-12-01",
                "closes_on": "2027-02-28",
                "retention_days": 90,
                "lead": lead,
            },
            headers=exchange.tokens["lead"],
        )

    answers = {}
    for what, email in {
        "no account": NOBODY,
        "an uploader": world.people["uploader"].email,
        "another lead": other.email,
    }.items():
        answer = create(email)
        answers[what] = (answer.status_code, answer.content)
    _same(answers)
    assert answers["no account"][0] == 400 and b"invalid_lead" in answers["no account"][1]
    assert create(world.people["lead"].email.upper()).status_code == 201  # their own address

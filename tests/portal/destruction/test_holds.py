"""Holds (issue 16, the tester's findings): a hold on a case, lifting with a reason, a lead's
pending request stopping early destruction, and an early approval that covers what a partial run
left; through the API and the command line. Each finding failed on the code before it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner, Result
from sqlmodel import Session, select
from starlette.testclient import TestClient

import audit
from portal.audit_vocabulary import Action
from portal.cli import main
from portal.db import make_engine
from portal.destruction.models import EarlyDestruction, EarlyState
from portal.runtime import build_runtime
from portal.worker import Worker
from tests.portal.conftest import Exchange, api_token, cheap_hasher, csrf_from, sign_in

CONTENT = b"Chronology of contacts with the family.\n" * 20
UNKNOWN = "0000-0000-0000"  # well formed, no such case


def _worker(exchange: Exchange) -> Worker:
    world = exchange.world
    return Worker(build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher()))


def _new_case(exchange: Exchange, review: str = "SWG24") -> str:
    case = exchange.client.post(
        f"/api/v1/reviews/{review}/cases", headers=exchange.tokens["uploader"]
    )
    assert case.status_code == 201, case.text
    reference: str = case.json()["reference"]
    return reference


def _upload(exchange: Exchange, **params: str) -> str:
    sent = exchange.upload("uploader", CONTENT, "chronology.txt", **params)
    assert sent.status_code == 201, sent.text
    reference: str = sent.json()["reference"]
    return reference


def _hold(exchange: Exchange, who: str, **body: str) -> Any:
    return exchange.client.post(
        "/api/v1/holds", json={"review": "SWG24", **body}, headers=exchange.tokens[who]
    )


def _lift(exchange: Exchange, hold_id: int, **body: str) -> Any:
    return exchange.client.post(
        f"/api/v1/holds/{hold_id}/lift", json=body, headers=exchange.tokens["dpo"]
    )


def _post(exchange: Exchange, path: str, who: str, status: int) -> None:
    answer = exchange.client.post(
        f"/api/v1/reviews/SWG24/{path}", headers=exchange.tokens[who], json={}
    )
    assert answer.status_code == status, answer.text


def _close_and_approve_early(exchange: Exchange) -> None:
    _post(exchange, "close", "lead", 200)
    _post(exchange, "destruction/request", "dpo", 201)
    _post(exchange, "destruction/approve", "admin", 200)


def _state(exchange: Exchange, reference: str) -> str:
    answer = exchange.client.get(f"/api/v1/documents/{reference}", headers=exchange.tokens["dpo"])
    if answer.status_code == 410:
        return "destroyed"
    assert answer.status_code == 200, answer.text
    state: str = answer.json()["state"]
    return state


def _events(exchange: Exchange, action: Action) -> list[audit.AuditRecord]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.connect() as connection:
            page = audit.search(connection, audit.EventFilter(action=action.value), limit=1000)
    finally:
        engine.dispose()
    return list(page.records)


def _early_states(exchange: Exchange) -> list[EarlyState]:
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with Session(engine) as db:
            return [e.state for e in db.exec(select(EarlyDestruction)).all()]
    finally:
        engine.dispose()


# --- A hold on a case --------------------------------------------------------------------------


def test_a_hold_on_a_case_keeps_its_documents_even_those_uploaded_later(
    exchange: Exchange,
) -> None:
    """Finding: `{"case": …}` was ignored and placed a whole-review hold (then: refused)."""
    case = _new_case(exchange)
    before = _upload(exchange, case=case)
    other = _upload(exchange)
    placed = _hold(exchange, "dpo", case=case, reason="safeguarding", order_reference="CO/27/1")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert (body["scope"], body["case"], body["document"], body["state"]) == (
        "case",
        case,
        None,
        "active",
    )
    later = _upload(exchange, case=case)  # uploaded to the held case after the hold
    _worker(exchange).run_round(force=True)  # the scans
    # The review itself is not held: the schedule lists the case's documents as held.
    _post(exchange, "close", "lead", 200)
    exchange.world.clock.advance(days=91)  # past destroy_on (90 days)
    exchange.tokens.update({who: api_token(exchange.world, who) for who in exchange.world.people})
    schedule = exchange.client.get("/api/v1/destruction/schedule", headers=exchange.tokens["dpo"])
    (entry,) = schedule.json()["items"]
    assert entry["status"] == "due" and entry["review_holds"] == []
    assert sorted(entry["held_documents"]) == sorted([before, later])

    report = _worker(exchange).run_round().destruction.report
    assert report.destroyed == 1 and len(report.certificates) == 1, report.summary()
    assert sorted(h.document or "" for h in report.held) == sorted([before, later])
    assert _state(exchange, other) == "destroyed"
    assert _state(exchange, before) == "available" and _state(exchange, later) == "available"

    (event,) = _events(exchange, Action.HOLD_PLACED)
    assert event.details["scope"] == "case" and event.details["case"] == case
    assert "order_reference" not in event.details and "CO/27/1" not in str(event.details)

    lifted = _lift(exchange, body["id"], reason="proceedings_concluded")
    assert lifted.status_code == 200, lifted.text
    assert _worker(exchange).run_round().destruction.report.destroyed == 2
    assert _state(exchange, before) == "destroyed" and _state(exchange, later) == "destroyed"
    review = exchange.client.get("/api/v1/reviews/SWG24", headers=exchange.tokens["lead"])
    assert review.json()["state"] == "destroyed"


def test_a_case_hold_refuses_what_it_cannot_name(exchange: Exchange) -> None:
    case = _new_case(exchange)
    document = _upload(exchange, case=case)
    mistyped = _hold(
        exchange, "dpo", case=case[:-1] + ("0" if case[-1] != "0" else "1"), reason="legal"
    )
    assert mistyped.status_code == 400, mistyped.text
    assert mistyped.json()["error"]["code"] == "invalid_reference"
    unknown = _hold(exchange, "dpo", case=UNKNOWN, reason="legal")
    assert unknown.status_code == 404, unknown.text
    assert "case" in unknown.json()["error"]["message"]
    both = _hold(exchange, "dpo", case=case, document=document, reason="legal")
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_scope"
    not_text = exchange.client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "case": ["x"], "reason": "legal"},
        headers=exchange.tokens["dpo"],
    )
    assert not_text.status_code == 400, not_text.text
    # A case of another review is not a case of this one.
    created = exchange.client.post(
        "/api/v1/reviews",
        json={
            "code": "OTH25",
            "title": "Another review",
            "legal_basis": "Public Services Reform (Scotland) Act 2010, section 53",
            "opens_on": "2026-11-01",
            "closes_on": "2027-01-31",
            "retention_days": 90,
            "organisations": ["aberdeen-city"],
        },
        headers=exchange.tokens["lead"],
    )
    assert created.status_code == 201, created.text
    opened = exchange.client.post(
        "/api/v1/reviews/OTH25/open", headers=exchange.tokens["lead"], json={}
    )
    assert opened.status_code == 200, opened.text
    foreign = _new_case(exchange, "OTH25")
    elsewhere = _hold(exchange, "dpo", case=foreign, reason="legal")
    assert elsewhere.status_code == 404, elsewhere.text
    # Nothing was placed by any of these.
    listed = exchange.client.get("/api/v1/holds", headers=exchange.tokens["dpo"])
    assert listed.json()["items"] == []
    assert _events(exchange, Action.HOLD_PLACED) == []


# --- Lifting with a reason ---------------------------------------------------------------------


def test_lifting_needs_a_reason_which_is_recorded(exchange: Exchange) -> None:
    """Finding: lifting asked for no reason."""
    document = _upload(exchange)
    placed = _hold(exchange, "dpo", document=document, reason="legal").json()
    none = exchange.client.post(
        f"/api/v1/holds/{placed['id']}/lift", json={}, headers=exchange.tokens["dpo"]
    )
    assert none.status_code == 400, none.text
    assert "'reason'" in none.json()["error"]["message"]
    wrong = _lift(exchange, placed["id"], reason="bored")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_lift_reason"
    free_text = _lift(exchange, placed["id"], reason="the court said so on 3 May")
    assert free_text.status_code == 400
    extra = _lift(exchange, placed["id"], reason="superseded", note="Jane")
    assert extra.status_code == 400 and extra.json()["error"]["code"] == "unknown_field"
    held = exchange.client.get("/api/v1/holds", headers=exchange.tokens["dpo"]).json()["items"]
    assert [h["state"] for h in held] == ["active"]  # none of those lifted it

    lifted = _lift(exchange, placed["id"], reason="placed_in_error")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["state"] == "lifted" and lifted.json()["lift_reason"] == "placed_in_error"
    again = _lift(exchange, placed["id"], reason="placed_in_error")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_state"
    (event,) = _events(exchange, Action.HOLD_LIFTED)
    assert event.details["lift_reason"] == "placed_in_error"
    assert event.details["scope"] == "document" and event.details["reason"] == "legal"


# --- A lead's pending request and early destruction -------------------------------------------


def test_a_leads_pending_request_stops_early_destruction_of_its_document(
    exchange: Exchange,
) -> None:
    """Finding: a lead's pending hold request on a document was bypassed by early destruction."""
    asked_for, other = _upload(exchange), _upload(exchange)
    _worker(exchange).run_round(force=True)
    asked = _hold(exchange, "lead", document=asked_for, reason="complaint")
    assert asked.status_code == 201 and asked.json()["state"] == "requested", asked.text
    _close_and_approve_early(exchange)
    report = _worker(exchange).run_round().destruction.report
    assert report.destroyed == 1 and [h.document for h in report.held] == [asked_for]
    assert _state(exchange, asked_for) == "available" and _state(exchange, other) == "destroyed"
    # A DPO declines the request: the approval still stands for the rest.
    declined = _lift(exchange, asked.json()["id"], reason="placed_in_error")
    assert declined.status_code == 200, declined.text
    assert _worker(exchange).run_round().destruction.report.destroyed == 1
    assert _state(exchange, asked_for) == "destroyed"
    assert _early_states(exchange) == [EarlyState.done]


def test_a_leads_request_on_a_case_or_the_review_stops_early_destruction_too(
    exchange: Exchange,
) -> None:
    case = _new_case(exchange)
    in_case, other = _upload(exchange, case=case), _upload(exchange)
    _worker(exchange).run_round(force=True)
    assert _hold(exchange, "lead", case=case, reason="legal").status_code == 201
    whole = _hold(exchange, "lead", reason="legal")
    assert whole.status_code == 201 and whole.json()["state"] == "requested"
    _close_and_approve_early(exchange)
    report = _worker(exchange).run_round().destruction.report
    assert report.destroyed == 0 and [(h.review, h.document) for h in report.held] == [
        ("SWG24", None)
    ]
    assert _lift(exchange, whole.json()["id"], reason="superseded").status_code == 200
    report = _worker(exchange).run_round().destruction.report
    assert report.destroyed == 1 and [h.document for h in report.held] == [in_case]
    assert _state(exchange, in_case) == "available" and _state(exchange, other) == "destroyed"


def test_a_leads_request_does_not_stop_destruction_on_its_date(exchange: Exchange) -> None:
    """Only early destruction waits for a DPO's decision; on its date a review goes unless a DPO
    holds it (docs/destruction.md)."""
    asked_for = _upload(exchange)
    _worker(exchange).run_round(force=True)
    assert _hold(exchange, "lead", document=asked_for, reason="legal").status_code == 201
    _post(exchange, "close", "lead", 200)
    exchange.world.clock.advance(days=91)
    exchange.tokens.update({who: api_token(exchange.world, who) for who in exchange.world.people})
    assert _worker(exchange).run_round().destruction.report.destroyed == 1
    assert _state(exchange, asked_for) == "destroyed"


# --- An early approval covers the remainder ----------------------------------------------------


def test_an_early_approval_covers_what_a_partial_run_left(exchange: Exchange) -> None:
    """Finding: after a partial run the approval was used up, so the rest waited for its date."""
    held, other = _upload(exchange), _upload(exchange)
    _worker(exchange).run_round(force=True)
    placed = _hold(exchange, "dpo", document=held, reason="legal")
    assert placed.status_code == 201, placed.text
    _close_and_approve_early(exchange)
    first = _worker(exchange).run_round().destruction.report
    assert first.destroyed == 1 and len(first.certificates) == 1
    assert _early_states(exchange) == [EarlyState.approved]  # not used up
    schedule = exchange.client.get("/api/v1/destruction/schedule", headers=exchange.tokens["dpo"])
    (entry,) = schedule.json()["items"]
    assert entry["early_destruction"] == "approved" and entry["held_documents"] == [held]
    assert _lift(exchange, placed.json()["id"], reason="proceedings_concluded").status_code == 200
    second = _worker(exchange).run_round().destruction.report
    assert second.destroyed == 1 and len(second.certificates) == 1, second.summary()
    assert _state(exchange, held) == "destroyed" and _state(exchange, other) == "destroyed"
    assert _early_states(exchange) == [EarlyState.done]
    certificate = exchange.client.get(
        f"/api/v1/certificates/{second.certificates[0]}", headers=exchange.tokens["dpo"]
    ).json()["certificate"]
    assert certificate["authorised_by"]["basis"] == "early_destruction_approved"


# --- The command line --------------------------------------------------------------------------


def _portal(exchange: Exchange, *args: str) -> Result:
    settings = exchange.world.settings
    env = {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        # The DPO at the command line: the hold commands act as a named person (issue 16).
        "PORTAL_OPERATOR": exchange.world.people["dpo"].email,
    }
    return CliRunner().invoke(main, list(args), env=env)


def test_the_command_line_places_a_case_hold_and_lifts_it_with_a_reason(
    exchange: Exchange,
) -> None:
    case = _new_case(exchange)
    _upload(exchange, case=case)
    placed = _portal(
        exchange,
        *("destroy", "hold", "place", "--review", "swg24", "--case", case),
        *("--reason", "legal", "--json"),
    )
    assert placed.exit_code == 0, placed.output
    view = json.loads(placed.output)
    assert (view["scope"], view["case"], view["state"]) == ("case", case, "active")
    listed = _portal(exchange, "destroy", "hold", "list")
    assert listed.exit_code == 0 and f"case {case}" in listed.output
    hold_id = str(view["id"])
    no_reason = _portal(exchange, "destroy", "hold", "lift", hold_id)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    bad_reason = _portal(exchange, "destroy", "hold", "lift", hold_id, "--reason", "bored")
    assert bad_reason.exit_code == 2
    unknown = _portal(
        exchange,
        *("destroy", "hold", "place", "--review", "SWG24", "--case", UNKNOWN, "--reason", "legal"),
    )
    assert unknown.exit_code == 2 and "no case" in unknown.output
    lifted = _portal(
        exchange, "destroy", "hold", "lift", hold_id, "--reason", "proceedings_concluded"
    )
    assert lifted.exit_code == 0, lifted.output
    assert "lifted (proceedings_concluded)" in lifted.output
    again = _portal(exchange, "destroy", "hold", "lift", hold_id, "--reason", "other")
    assert again.exit_code == 2 and "lifted already" in again.output
    (event,) = _events(exchange, Action.HOLD_LIFTED)
    assert event.details["lift_reason"] == "proceedings_concluded"
    assert event.details["scope"] == "case"


# --- The console -------------------------------------------------------------------------------


def test_the_console_places_a_case_hold_and_refuses_a_document_and_a_case_together(
    exchange: Exchange, second_client: Callable[[], TestClient]
) -> None:
    case = _new_case(exchange)
    document = _upload(exchange, case=case)
    dpo = second_client()
    sign_in(dpo, exchange.world.people["dpo"], exchange.world.clock)
    token = csrf_from(dpo.get("/console/holds").text)
    form = {"csrf_token": token, "review": "SWG24", "reason": "legal"}
    both = dpo.post("/console/holds", data={**form, "document": document, "case": case})
    assert both.status_code == 400 and 'href="#case"' in both.text
    unknown = dpo.post("/console/holds", data={**form, "case": UNKNOWN})
    assert unknown.status_code == 404 and 'href="#case"' in unknown.text
    placed = dpo.post("/console/holds", data={**form, "case": case})
    assert placed.status_code == 303, placed.text
    page = dpo.get("/console/holds").text
    assert f'Case <span class="portal-reference">{case}</span>' in page
    listed = exchange.client.get("/api/v1/holds", headers=exchange.tokens["dpo"]).json()["items"]
    assert [(h["scope"], h["case"]) for h in listed] == [("case", case)]

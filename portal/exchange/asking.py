"""A request's sealed texts: sealing them when it is made, opening them for pages and the API.

A request's title and instructions may name a child, so they are sealed under the review's key
(``portal.sealing``). Once the review is destroyed they are gone, and the request is shown as
closed by destruction instead: no title, no instructions, not outstanding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from portal.exchange.models import Request, Review, ReviewState
from portal.sealing import open_text, seal_text, text_place
from storage import TextPlace, Vault

TABLE = Request.__tablename__


@dataclass(frozen=True)
class RequestView:
    """A request as people see it: its texts opened, or None once the review's key is gone."""

    id: int
    review_id: int
    organisation_id: int
    due_on: date
    expected_items: int
    title: str | None
    instructions: str | None

    @property
    def closed_by_destruction(self) -> bool:
        return self.title is None


def seal_request_texts(
    vault: Vault, review: Review, request: Request, *, title: str, instructions: str
) -> None:
    """Seal the texts of a request whose row has been flushed (its id is bound to them)."""
    request.title_sealed = seal_text(vault, _place(review, request, "title"), title)
    request.instructions_sealed = seal_text(
        vault, _place(review, request, "instructions"), instructions
    )


def view_request(vault: Vault, review: Review, request: Request) -> RequestView:
    assert request.id is not None
    title = instructions = None
    if review.state is not ReviewState.destroyed:
        title = open_text(vault, _place(review, request, "title"), request.title_sealed)
        instructions = open_text(
            vault, _place(review, request, "instructions"), request.instructions_sealed
        )
    if title is None:
        instructions = None  # one is never shown without the other
    return RequestView(
        id=request.id,
        review_id=request.review_id,
        organisation_id=request.organisation_id,
        due_on=request.due_on,
        expected_items=request.expected_items,
        title=title,
        instructions=instructions,
    )


def _place(review: Review, request: Request, column: str) -> TextPlace:
    return text_place(review.code, TABLE, f"{column}_sealed", request.id)

"""A review's sealed texts: its title and legal basis, sealed when it is made, opened to show.

A lead types both, and a title can name a person ("Thematic review: the Mackenzie children"),
so they are sealed under the review's own key (``portal.sealing``), bound to the review's row,
exactly like a request's title and instructions (``portal.exchange.asking``). Once the review is
destroyed they are gone: pages, the API and the CLI name the review by its code and say it was
closed by destruction. Certificates never carry them (they are kept for ever): they name the
review by its code.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.exchange.models import Review, ReviewState
from portal.sealing import open_text, seal_text, text_place
from storage import TextPlace, Vault

TABLE = Review.__tablename__


@dataclass(frozen=True)
class ReviewTexts:
    """A review's texts opened, or None once its key is gone (destroyed)."""

    code: str
    title: str | None
    legal_basis: str | None

    @property
    def closed_by_destruction(self) -> bool:
        return self.title is None

    @property
    def label(self) -> str:
        """The review's name after its code in pages and lists ("SWG24: <label>"): its title,
        or "closed by destruction" once the title is erased."""
        if self.title is None:
            return "closed by destruction"
        return self.title


def seal_review_texts(vault: Vault, review: Review, *, title: str, legal_basis: str) -> None:
    """Seal the texts of a review whose row has been flushed and whose key exists."""
    review.title_sealed = seal_text(vault, _place(review, "title"), title)
    review.legal_basis_sealed = seal_text(vault, _place(review, "legal_basis"), legal_basis)


def open_review_texts(vault: Vault, review: Review) -> ReviewTexts:
    title = legal_basis = None
    if review.state is not ReviewState.destroyed:
        title = open_text(vault, _place(review, "title"), review.title_sealed)
        legal_basis = open_text(vault, _place(review, "legal_basis"), review.legal_basis_sealed)
    if title is None:
        legal_basis = None  # one is never shown without the other
    return ReviewTexts(code=review.code, title=title, legal_basis=legal_basis)


def review_label(vault: Vault, review: Review) -> str:
    return open_review_texts(vault, review).label


def _place(review: Review, column: str) -> TextPlace:
    return text_place(review.code, TABLE, f"{column}_sealed", review.id)

"""Free texts that people type about a review, sealed under that review's key (SPEC §4).

A review's title and legal basis, a request's title and instructions ("Records for Callum ...")
and a hold's order reference can name a person. They are stored only sealed (``storage.Vault.seal_text``), bound to their review,
table, column and row, so destroying the review's key erases them in the database and in every
backup of it, as it erases the review's documents. ``portal.classification`` lists which
columns are sealed and why every other column may stay readable.

This module is the one place where a destroyed key becomes "gone": ``open_text`` answers None.
A sealed text that does not open for any other reason (altered, moved) is an ``IntegrityError``
and is not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from portal.destruction.models import Hold
from portal.exchange.models import Request, Review
from storage import KeyDestroyed, TextPlace, Vault

# Every sealed column: (model, column). portal.classification checks that it is complete.
SEALED_COLUMNS: list[tuple[type[Any], str]] = [
    (Review, "title_sealed"),
    (Review, "legal_basis_sealed"),
    (Request, "title_sealed"),
    (Request, "instructions_sealed"),
    (Hold, "order_reference_sealed"),
]


def text_place(review_code: str, table: str, column: str, row_id: int | None) -> TextPlace:
    """Where a text lives; the row must have its id (flushed) before its text is sealed."""
    if row_id is None:
        raise RuntimeError(f"flush the {table} row before sealing its {column}")
    return TextPlace(review=review_code, table=table, column=column, row=str(row_id))


def seal_text(vault: Vault, place: TextPlace, text: str) -> bytes:
    return vault.seal_text(place, text)


def open_text(vault: Vault, place: TextPlace, sealed: bytes | None) -> str | None:
    """The text sealed at ``place``; None if there is none or the review's key was destroyed."""
    if not sealed:  # never sealed, or erased
        return None
    try:
        return vault.open_text(place, sealed)
    except KeyDestroyed:
        # A row from before the review's destruction (or a restored backup): the key service
        # no longer holds the key, so the text is gone for good. Not an error to show anyone.
        return None


@dataclass
class SealedText:
    """One sealed text of a review in its row: what a key rotation re-wraps."""

    row: Any
    column: str
    place: TextPlace
    sealed: bytes

    def store(self, sealed: bytes) -> None:
        setattr(self.row, self.column, sealed)
        self.sealed = sealed


def sealed_texts(db: Session, review: Review) -> list[SealedText]:
    """Every sealed text of ``review`` (its own row, rows with ``review_id``), in a stable order."""
    found = []
    for model, column in SEALED_COLUMNS:
        owner = model.id if model is Review else model.review_id
        rows = db.exec(select(model).where(owner == review.id).order_by(col(model.id))).all()
        for row in rows:
            value = getattr(row, column)
            if value:
                place = text_place(review.code, model.__tablename__, column, row.id)
                found.append(SealedText(row=row, column=column, place=place, sealed=value))
    return found

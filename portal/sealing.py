"""Free texts that people type about a review, sealed under that review's key (SPEC §4).

A request's title and instructions ("Records for Callum ...") and a hold's order reference can
name a person. They are stored only sealed (``storage.Vault.seal_text``), bound to their review,
table, column and row, so destroying the review's key erases them in the database and in every
backup of it, as it erases the review's documents. ``portal.classification`` lists which
columns are sealed and why every other column may stay readable.

This module is the one place where a destroyed key becomes "gone": ``open_text`` answers None.
A sealed text that does not open for any other reason (altered, moved) is an ``IntegrityError``
and is not hidden.
"""

from __future__ import annotations

from storage import KeyDestroyed, TextPlace, Vault


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

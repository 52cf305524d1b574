"""Free texts sealed under a review's key: bound to their place, shredded with the review key."""

from __future__ import annotations

import pytest

from storage import IntegrityError, InvalidInput, KeyDestroyed, Vault
from storage.vault import MAX_SECRET_SIZE, TextPlace

TITLE = TextPlace(review="SWG24", table="records_request", column="title", row="7")

HOSTILE = [
    "",
    "Records for Callum",
    "x" * MAX_SECRET_SIZE,
    "\x00NUL\x00 inside",
    "\u202eright-to-left \U0001f600 e\u0301 \ufeff\uffff",
    "line one\r\nline two\n",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_texts_round_trip_and_hide_their_content(vault: Vault, text: str) -> None:
    vault.create_review_key("SWG24")
    sealed = vault.seal_text(TITLE, text)
    assert vault.open_text(TITLE, sealed) == text
    if text:
        assert text.encode()[:64] not in sealed
    assert sealed != vault.seal_text(TITLE, text)  # fresh key and nonce each time


def test_refuses_what_is_not_text(vault: Vault) -> None:
    vault.create_review_key("SWG24")
    for bad in ["\ud800 lone surrogate", "x" * (MAX_SECRET_SIZE + 1)]:
        with pytest.raises(InvalidInput):
            vault.seal_text(TITLE, bad)
    with pytest.raises(InvalidInput):
        vault.seal_text(TITLE, b"bytes")  # type: ignore[arg-type]


def test_a_text_is_bound_to_its_review_table_column_and_row(vault: Vault) -> None:
    vault.create_review_key("SWG24")
    vault.create_review_key("OTHER")
    sealed = vault.seal_text(TITLE, "Records for Callum")
    elsewhere = [
        TextPlace("OTHER", "records_request", "title", "7"),
        TextPlace("SWG24", "destruction_hold", "title", "7"),
        TextPlace("SWG24", "records_request", "instructions", "7"),
        TextPlace("SWG24", "records_request", "title", "8"),
    ]
    for place in elsewhere:
        with pytest.raises(IntegrityError):
            vault.open_text(place, sealed)
    for position in range(len(sealed)):
        altered = bytearray(sealed)
        altered[position] ^= 0x01
        with pytest.raises(IntegrityError):
            vault.open_text(TITLE, bytes(altered))
    for cut in (b"", sealed[:1], sealed[:-1]):
        with pytest.raises(IntegrityError):
            vault.open_text(TITLE, cut)


def test_destroying_the_review_key_shreds_every_copy(vault: Vault) -> None:
    vault.create_review_key("SWG24")
    backup = vault.seal_text(TITLE, "Records for Callum")
    vault.destroy_review("SWG24")
    with pytest.raises(KeyDestroyed):
        vault.open_text(TITLE, backup)


def test_rotation_rewraps_the_text_key_and_keeps_it_readable(vault: Vault) -> None:
    vault.create_review_key("SWG24")
    sealed = vault.seal_text(TITLE, "Records for Callum")
    (rotated,) = vault.rotate_review_key("SWG24", [vault.text_key(TITLE, sealed)])
    resealed = vault.rekey_text(sealed, rotated)
    assert resealed != sealed
    assert vault.remove_old_review_keys("SWG24", in_use=[rotated]) == 1
    assert vault.open_text(TITLE, resealed) == "Records for Callum"
    with pytest.raises(IntegrityError):
        vault.open_text(TITLE, sealed)  # the old version is erased

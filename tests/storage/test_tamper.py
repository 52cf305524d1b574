"""The tamper matrix: every altered blob is refused, and no byte of a bad segment is released.

Blobs here use 256-byte segments (200 plaintext bytes in the first, 240 in the others), so that a
1,000-byte plaintext spans five segments and hypothesis can reach every position cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import IntegrityError, Vault
from storage.crypto import SegmentSealer
from storage.stream import (
    PREAMBLE_SIZE,
    Envelope,
    Tally,
    associated_data,
    open_stream,
    plaintext_sizes,
    seal_stream,
)

SEGMENT = 256
FIRST_PT, REST_PT = plaintext_sizes(SEGMENT)
IKM, KEY_ID, DOC = os.urandom(32), os.urandom(16), "DOC-A"
PLAINTEXT = os.urandom(1000)


def seal(data: bytes, *, document_id: str = DOC, ikm: bytes = IKM) -> bytes:
    return b"".join(
        seal_stream(
            [data],
            ikm=ikm,
            key_id=KEY_ID,
            document_id=document_id,
            tally=Tally(),
            random_bytes=os.urandom,
            segment_size=SEGMENT,
        )
    )


BLOB = seal(PLAINTEXT)
OTHER = seal(os.urandom(1000))  # same key and document: a splice source
OTHER_DOC = seal(PLAINTEXT, document_id="DOC-B")


def split(blob: bytes) -> tuple[bytes, list[bytes]]:
    """(envelope + header, ciphertext segments)."""
    first_end = PREAMBLE_SIZE + SEGMENT - 40
    segments = [blob[PREAMBLE_SIZE:first_end]]
    segments += [blob[i : i + SEGMENT] for i in range(first_end, len(blob), SEGMENT)]
    return blob[:PREAMBLE_SIZE], segments


PREAMBLE, SEGMENTS = split(BLOB)
COUNT = len(SEGMENTS)
assert COUNT == 5


def segment_of(position: int) -> int:
    """Segment holding ciphertext byte ``position`` (-1 for the envelope and header)."""
    if position < PREAMBLE_SIZE:
        return -1
    offset = position - PREAMBLE_SIZE
    first = SEGMENT - 40
    return 0 if offset < first else 1 + (offset - first) // SEGMENT


def released_limit(segment: int) -> int:
    """Plaintext bytes before segment ``segment``: the most a reader may release."""
    if segment <= 0:
        return 0
    return FIRST_PT + (segment - 1) * REST_PT


def drain(blob: bytes, *, document_id: str = DOC) -> tuple[bytes, bool]:
    """Read ``blob`` to the end: (bytes released, whether it was refused)."""

    def fetch(offset: int, length: int | None) -> Iterator[bytes]:
        data = blob[offset : None if length is None else offset + length]
        for i in range(0, len(data), 100):  # small chunks: segments straddle them
            yield data[i : i + 100]

    released = bytearray()
    try:
        for piece in open_stream(fetch, ikm=IKM, key_id=KEY_ID, document_id=document_id):
            released += piece
    except IntegrityError:
        return bytes(released), True
    return bytes(released), False


def assert_refused(blob: bytes, first_bad_segment: int, *, document_id: str = DOC) -> None:
    released, refused = drain(blob, document_id=document_id)
    assert refused, "an altered blob was accepted"
    assert released == PLAINTEXT[: len(released)], "released bytes that are not the plaintext"
    assert len(released) <= released_limit(first_bad_segment), "released a bad segment's bytes"


fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_untouched_blob_opens() -> None:
    assert drain(BLOB) == (PLAINTEXT, False)


@fast
@given(st.integers(0, len(BLOB) - 1))
def test_truncation_at_any_byte(length: int) -> None:
    assert_refused(BLOB[:length], segment_of(length - 1) if length else -1)


@fast
@given(st.integers(0, len(BLOB) - 1), st.integers(0, 7))
def test_bit_flip_anywhere(position: int, bit: int) -> None:
    flipped = bytearray(BLOB)
    flipped[position] ^= 1 << bit
    assert_refused(bytes(flipped), segment_of(position))


@fast
@given(st.integers(0, PREAMBLE_SIZE - 1), st.integers(1, 255))
def test_header_edits(position: int, xor: int) -> None:
    edited = bytearray(BLOB)
    edited[position] ^= xor
    assert_refused(bytes(edited), -1)


@fast
@given(st.integers(0, COUNT - 1))
def test_dropped_segment(index: int) -> None:
    kept = SEGMENTS[:index] + SEGMENTS[index + 1 :]
    assert_refused(PREAMBLE + b"".join(kept), index if index < COUNT - 1 else index - 1)


@fast
@given(st.integers(0, COUNT - 1))
def test_duplicated_segment(index: int) -> None:
    doubled = SEGMENTS[: index + 1] + SEGMENTS[index:]
    assert_refused(PREAMBLE + b"".join(doubled), index + 1)


@fast
@given(st.permutations(range(COUNT)))
def test_reordered_segments(order: list[int]) -> None:
    if order == sorted(order):
        return
    first_moved = next(i for i, j in enumerate(order) if i != j)
    assert_refused(PREAMBLE + b"".join(SEGMENTS[i] for i in order), first_moved)


@fast
@given(st.binary(min_size=1, max_size=600))
def test_appended_bytes(extra: bytes) -> None:
    assert_refused(BLOB + extra, COUNT - 1)


@fast
@given(st.integers(0, COUNT - 1), st.sampled_from(["same document", "other document"]))
def test_splice_between_two_blobs(index: int, source: str) -> None:
    _, donor = split(OTHER if source == "same document" else OTHER_DOC)
    spliced = [*SEGMENTS[:index], donor[index], *SEGMENTS[index + 1 :]]
    assert_refused(PREAMBLE + b"".join(spliced), index)


@fast
@given(st.integers(1, COUNT - 1))
def test_tail_of_another_blob(index: int) -> None:
    _, donor = split(OTHER)
    assert_refused(PREAMBLE + b"".join(SEGMENTS[:index] + donor[index:]), index)


def test_blob_moved_to_another_document() -> None:
    assert_refused(BLOB, -1, document_id="DOC-B")
    # ... and the other document's own header does not make it pass either.
    assert_refused(split(OTHER_DOC)[0] + b"".join(SEGMENTS), -1)


def test_empty_final_segment_after_full_ones_is_refused() -> None:
    # Forged by someone holding the key: a writer never ends a non-empty stream this way.
    envelope = Envelope(segment_size=SEGMENT, key_id=KEY_ID).encode()
    sealer = SegmentSealer(IKM, associated_data(envelope, DOC), random_bytes=os.urandom)
    parts = [envelope + sealer.header, sealer.seal(PLAINTEXT[:FIRST_PT], last=False)]
    parts.append(sealer.seal(b"", last=True))
    released, refused = drain(b"".join(parts))
    assert refused
    assert released == PLAINTEXT[:FIRST_PT]  # the good first segment, nothing more


def test_empty_plaintext_is_one_empty_final_segment() -> None:
    blob = seal(b"")
    assert len(blob) == PREAMBLE_SIZE + 16
    assert drain(blob) == (b"", False)
    assert drain(blob[:-1])[1]


@pytest.mark.parametrize("move", ["other document id", "other review"])
def test_blob_and_wrapped_key_moved_together_are_refused(vault: Vault, move: str) -> None:
    vault.create_review_key("R1")
    vault.create_review_key("R2")
    key = vault.issue_document_key(review="R1", document_id="DOC-1")
    blob_id = vault.write(key, [PLAINTEXT]).blob_id
    if move == "other document id":
        moved = type(key)(review="R1", document_id="DOC-2", wrapped=key.wrapped)
    else:
        moved = type(key)(review="R2", document_id="DOC-1", wrapped=key.wrapped)
    with pytest.raises(IntegrityError):
        b"".join(vault.read(moved, blob_id))
    with pytest.raises(IntegrityError):
        vault.open_secret(moved, vault.seal_secret(key, b"name.pdf"))

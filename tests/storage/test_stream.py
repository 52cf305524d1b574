"""The blob format: round trips at the segment edges, the checked-in vectors, constant memory."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import tracemalloc
from collections.abc import Generator, Iterable, Iterator

import pytest

from storage import SEGMENT_SIZE, IntegrityError, InvalidInput, Vault
from storage.crypto import SegmentOpener, segment_nonce
from storage.stream import Tally, open_stream, plaintext_sizes, seal_stream

from .conftest import chunked
from .vectors import VECTORS, pattern, replay

FIRST, REST = plaintext_sizes(SEGMENT_SIZE)
SIZES = [0, 1, FIRST - 1, FIRST, FIRST + 1, FIRST + REST - 1, FIRST + REST, FIRST + REST + 1]


def memory_fetch(blob: bytes):  # type: ignore[no-untyped-def]
    def fetch(offset: int, length: int | None) -> Iterator[bytes]:
        end = len(blob) if length is None else offset + length
        yield blob[offset:end]

    return fetch


def seal(data: bytes, *, ikm: bytes, key_id: bytes, document_id: str, segment: int) -> bytes:
    tally = Tally()
    blob = b"".join(
        seal_stream(
            chunked(data, 65536) if data else [],
            ikm=ikm,
            key_id=key_id,
            document_id=document_id,
            tally=tally,
            random_bytes=os.urandom,
            segment_size=segment,
        )
    )
    assert tally.size == len(data)
    assert tally.sha256 == _sha256(data).hexdigest()
    return blob


@pytest.fixture
def production_vault(local_store, keystore) -> Vault:  # type: ignore[no-untyped-def]
    return Vault(local_store, keystore)  # the 1 MiB default segment


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}B")
def test_round_trip_at_segment_edges(production_vault: Vault, size: int) -> None:
    production_vault.create_review_key("SWG24")
    key = production_vault.issue_document_key(review="SWG24", document_id="DOC-1")
    data = os.urandom(size)
    stored = production_vault.write(key, chunked(data, 100_000))
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(data).hexdigest())
    segments = 1 if size <= FIRST else 1 + -(-(size - FIRST) // REST)
    assert stored.stored_size == 26 + 40 + size + 16 * segments
    assert b"".join(production_vault.read(key, stored.blob_id)) == data


def test_round_trip_several_segments_with_ranges(production_vault: Vault) -> None:
    production_vault.create_review_key("SWG24")
    key = production_vault.issue_document_key(review="SWG24", document_id="DOC-2")
    data = os.urandom(3 * SEGMENT_SIZE + 12345)
    stored = production_vault.write(key, chunked(data, 7919))  # odd chunk size on purpose
    assert b"".join(production_vault.read(key, stored.blob_id)) == data
    for start, end in [(0, 1), (FIRST - 3, FIRST + 3), (FIRST + REST, None), (len(data) - 1, None)]:
        got = b"".join(production_vault.read(key, stored.blob_id, start=start, end=end))
        assert got == data[start:end]


def test_ranges_on_small_segments(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="D")
    data = os.urandom(1000)  # segments of 200, 240, 240, 240, 80 plaintext bytes
    blob_id = vault.write(key, [data]).blob_id
    for start in range(0, 1003, 13):
        for end in (None, start, start + 1, start + 239, start + 481, 1000, 2000):
            if end is not None and end < start:
                continue
            got = b"".join(vault.read(key, blob_id, start=start, end=end))
            assert got == data[start:end], (start, end)


def test_range_past_the_end_of_a_blob_cut_at_a_boundary_is_refused(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="D")
    data = os.urandom(1000)
    stored = vault.write(key, [data])
    blob = b"".join(vault.store.get(stored.blob_id))
    cut = vault.write(key, [b""]).blob_id  # a fresh id, replaced below by the cut blob
    vault.store.delete(cut)
    vault.store.put(cut, [blob[: 26 + 256 + 256]])  # segments 0 and 1 only
    # A range starting where the cut happened must not pass as "past the end".
    with pytest.raises(IntegrityError):
        b"".join(vault.read(key, cut, start=440))


def test_large_stream_in_constant_memory(production_vault: Vault) -> None:
    production_vault.create_review_key("BIG")
    key = production_vault.issue_document_key(review="BIG", document_id="DOC-BIG")
    total, chunk = 64 * 1024 * 1024, os.urandom(256 * 1024)
    expected = hashlib.sha256()

    def source() -> Iterator[bytes]:
        for _ in range(total // len(chunk)):
            expected.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        stored = production_vault.write(key, source())
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        seen, digest = 0, hashlib.sha256()
        for piece in production_vault.read(key, stored.blob_id):
            seen += len(piece)
            digest.update(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (stored.size, stored.sha256) == (total, expected.hexdigest())
    assert (seen, digest.hexdigest()) == (total, expected.hexdigest())
    # A handful of 1 MiB segments in flight, whatever the size: 64 MiB must not be held.
    assert write_peak < 8 * 1024 * 1024, write_peak
    assert read_peak < 8 * 1024 * 1024, read_peak


def test_checked_in_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())
    assert len(vectors["streams"]) >= 10
    for v in vectors["streams"]:
        data = pattern(v["plaintext_length"])
        ikm, key_id = bytes.fromhex(v["data_key"]), bytes.fromhex(v["key_id"])
        tally = Tally()
        blob = b"".join(
            seal_stream(
                [data],
                ikm=ikm,
                key_id=key_id,
                document_id=v["document_id"],
                tally=tally,
                random_bytes=replay(bytes.fromhex(v["salt"]), bytes.fromhex(v["nonce_prefix"])),
                segment_size=v["segment_size"],
            )
        )
        # Sealing again gives the very same bytes, and the recorded ones open to the plaintext.
        assert hashlib.sha256(blob).hexdigest() == v["blob_sha256"], v["name"]
        assert len(blob) == v["blob_length"]
        assert tally.sha256 == v["plaintext_sha256"] == hashlib.sha256(data).hexdigest()
        if "blob" in v:
            assert blob.hex() == v["blob"]
        assert blob[:26].hex() + v["document_id"].encode().hex() == v["associated_data"]
        opened = open_stream(
            memory_fetch(blob), ikm=ikm, key_id=key_id, document_id=v["document_id"]
        )
        assert b"".join(opened) == data
    streams = {v["name"]: v for v in vectors["streams"]}
    assert len(vectors["invalid_blobs"]) >= 8
    for bad in vectors["invalid_blobs"]:
        v = streams[bad["stream"]]
        with pytest.raises(IntegrityError):
            b"".join(
                open_stream(
                    memory_fetch(bytes.fromhex(bad["blob"])),
                    ikm=bytes.fromhex(v["data_key"]),
                    key_id=bytes.fromhex(v["key_id"]),
                    document_id=v["document_id"],
                )
            )


def test_segment_counter_cannot_wrap() -> None:
    assert segment_nonce(b"P" * 7, 2**32 - 1, last=True) == b"P" * 7 + b"\xff" * 4 + b"\x01"
    with pytest.raises(InvalidInput):
        segment_nonce(b"P" * 7, 2**32, last=False)
    opener = SegmentOpener(b"k" * 32, bytes([40]) + b"s" * 39, b"ad")
    with pytest.raises(IntegrityError):
        opener.open(b"x" * 32, index=2**32, last=True)


def test_envelope_with_absurd_segment_size_is_refused() -> None:
    ikm, key_id = os.urandom(32), os.urandom(16)
    blob = seal(b"hello", ikm=ikm, key_id=key_id, document_id="D", segment=256)
    for size in (0, 63, 2**31):
        forged = blob[:6] + size.to_bytes(4, "big") + blob[10:]
        with pytest.raises(IntegrityError):
            b"".join(open_stream(memory_fetch(forged), ikm=ikm, key_id=key_id, document_id="D"))


def test_chunks_must_be_bytes(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="D")
    with pytest.raises(InvalidInput):
        vault.write(key, ["text is not bytes"])  # type: ignore[list-item]
    assert list(vault.store.list_blobs()) == []


def test_segment_buffers_are_used_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import stream

    made: list[bytearray] = []
    take = stream._Segments._buffer

    def counting(self: stream._Segments) -> bytearray:
        buffer = take(self)
        if not any(buffer is seen for seen in made):
            made.append(buffer)
        return buffer

    monkeypatch.setattr(stream._Segments, "_buffer", counting)
    data = os.urandom(200 * 240 + 17)  # about 200 segments of 240 plaintext bytes
    blob = seal(data, ikm=b"k" * 32, key_id=b"i" * 16, document_id="D", segment=256)
    opened = open_stream(memory_fetch(blob), ikm=b"k" * 32, key_id=b"i" * 16, document_id="D")
    assert b"".join(opened) == data
    # One being filled and the few in the hashing and sealing threads, whatever the length.
    assert len(made) <= stream._QUEUE + 2


def test_a_chunk_the_caller_reuses_does_not_change_what_was_sealed(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="D")
    chunk = bytearray(100)
    sent = []

    def source() -> Iterator[bytearray]:
        for i in range(50):
            chunk[:] = bytes([i]) * len(chunk)  # the same buffer, overwritten each time
            sent.append(bytes(chunk))
            yield chunk

    stored = vault.write(key, source())
    assert b"".join(vault.read(key, stored.blob_id)) == b"".join(sent)


_sha256 = hashlib.sha256


class _SlowHash:
    """A SHA-256 that takes its time over each segment, as a loaded machine's would."""

    def __init__(self) -> None:
        self._hash = _sha256()

    def update(self, data: memoryview) -> None:
        copy = bytes(data)  # what the segment holds when hashing starts
        time.sleep(0.002)
        if bytes(data) != copy:
            raise AssertionError("a segment's buffer was filled again while it was being hashed")
        self._hash.update(copy)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def small_segments(chunks: Iterable[bytes], tally: Tally) -> Generator[bytes]:
    """A blob of 256-byte segments (240 plaintext bytes each after the first)."""
    return seal_stream(
        chunks,
        ikm=b"k" * 32,
        key_id=b"i" * 16,
        document_id="D",
        tally=tally,
        random_bytes=os.urandom,
        segment_size=256,
    )


def test_a_hashing_thread_that_runs_behind_holds_back_the_cut_and_the_hash_is_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setattr("storage.stream.hashlib.sha256", _SlowHash)
    data = os.urandom(100 * 240 + 5)
    tally = Tally()
    blob = b"".join(small_segments(chunked(data, 1000), tally))
    assert tally.sha256 == _sha256(data).hexdigest()
    assert tally.size == len(data)
    opened = open_stream(memory_fetch(blob), ikm=b"k" * 32, key_id=b"i" * 16, document_id="D")
    assert b"".join(opened) == data


def hashing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "blob-hash"]


def test_a_stream_left_early_or_failing_leaves_no_hashing_thread() -> None:
    before = len(hashing_threads())

    def source(fail: bool) -> Iterator[bytes]:
        yield os.urandom(5000)
        if fail:
            raise RuntimeError("the request body broke off")
        yield os.urandom(5000)

    left = small_segments(source(False), Tally())
    next(left), next(left), next(left)
    assert len(hashing_threads()) == before + 1
    left.close()
    assert len(hashing_threads()) == before
    tally = Tally()
    with pytest.raises(RuntimeError, match="broke off"):
        for _ in small_segments(source(True), tally):
            pass
    assert len(hashing_threads()) == before
    assert not tally.sha256


def test_a_failure_in_the_hashing_thread_reaches_the_writer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    class Broken(_SlowHash):
        def update(self, data: memoryview) -> None:
            raise MemoryError("no room to hash")

    monkeypatch.setattr("storage.stream.hashlib.sha256", Broken)
    tally = Tally()
    with pytest.raises(MemoryError, match="no room"):
        b"".join(small_segments(chunked(os.urandom(5000), 700), tally))
    assert not tally.sha256
    assert not hashing_threads()

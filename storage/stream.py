"""The blob format: our envelope, then a Tink AES-GCM-HKDF streaming AEAD stream.

See docs/blob-format.md.

::

    blob     = envelope ‖ header ‖ segment_0 ‖ … ‖ segment_n
    envelope = magic "DXPB" ‖ version 0x01 ‖ algorithm 0x01 ‖ segment size (u32 BE) ‖ key id (16 B)
    header   = 0x28 ‖ salt (32 B) ‖ nonce prefix (7 B)                              (Tink's header)
    associated data of the stream = envelope ‖ UTF-8 document id

Writing and reading are iterators over chunks, holding a few segments in memory whatever the size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .crypto import HEADER_SIZE, KEY_SIZE, TAG_SIZE, RandomBytes, SegmentOpener, SegmentSealer
from .errors import IntegrityError, InvalidInput

MAGIC = b"DXPB"
FORMAT_VERSION = 1
ALGORITHM_AES256_GCM_HKDF_SHA256 = 1
KEY_ID_SIZE = 16
ENVELOPE_SIZE = len(MAGIC) + 1 + 1 + 4 + KEY_ID_SIZE
PREAMBLE_SIZE = ENVELOPE_SIZE + HEADER_SIZE  # bytes before the first segment's ciphertext

SEGMENT_SIZE = 1024 * 1024  # production default: 1 MiB ciphertext segments, as Tink's 1MB template
MIN_SEGMENT_SIZE = HEADER_SIZE + TAG_SIZE + 8
# Threat: a forged envelope announcing huge segments would make a reader allocate without bound.
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
_QUEUE = 2  # segments waiting for the hashing thread: bounds memory while it runs behind

# fetch(offset, length) -> the blob's bytes from offset, length bytes or to the end when None.
Fetch = Callable[[int, "int | None"], Iterator[bytes]]
# A chunk of plaintext: the cut copies it into its own buffer, so a caller may reuse its own.
Chunk = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Envelope:
    segment_size: int
    key_id: bytes

    def encode(self) -> bytes:
        return (
            MAGIC
            + bytes([FORMAT_VERSION, ALGORITHM_AES256_GCM_HKDF_SHA256])
            + self.segment_size.to_bytes(4, "big")
            + self.key_id
        )

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        # Any envelope but one this version writes is refused, through the one integrity error.
        if (
            len(data) != ENVELOPE_SIZE
            or data[:4] != MAGIC
            or data[4] != FORMAT_VERSION
            or data[5] != ALGORITHM_AES256_GCM_HKDF_SHA256
        ):
            raise IntegrityError()
        size = int.from_bytes(data[6:10], "big")
        if not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
            raise IntegrityError()
        return cls(segment_size=size, key_id=data[10:])


def check_segment_size(size: int) -> None:
    if not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
        raise InvalidInput(
            f"segment size {size} is outside {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE} bytes"
        )


def associated_data(envelope: bytes, document_id: str) -> bytes:
    """What the stream is bound to: our envelope and the document it belongs to."""
    return envelope + document_id.encode("utf-8")


def plaintext_sizes(segment_size: int) -> tuple[int, int]:
    """Plaintext bytes in the first segment and in each later one (Tink's layout)."""
    return segment_size - HEADER_SIZE - TAG_SIZE, segment_size - TAG_SIZE


@dataclass
class Tally:
    """Filled in by ``seal_stream`` once its iterator is exhausted."""

    size: int = 0
    sha256: str = ""
    stored_size: int = 0


def seal_stream(
    chunks: Iterable[Chunk],
    *,
    ikm: bytes,
    key_id: bytes,
    document_id: str,
    tally: Tally,
    random_bytes: RandomBytes,
    segment_size: int = SEGMENT_SIZE,
) -> Generator[bytes]:
    """Yield the blob for the plaintext ``chunks``; ``tally`` holds size and SHA-256 at the end."""
    check_segment_size(segment_size)
    if len(key_id) != KEY_ID_SIZE or len(ikm) != KEY_SIZE:
        raise InvalidInput("key id or key has the wrong length")
    envelope = Envelope(segment_size=segment_size, key_id=key_id).encode()
    sealer = SegmentSealer(ikm, associated_data(envelope, document_id), random_bytes=random_bytes)
    hasher = hashlib.sha256()
    # SHA-256 is the slowest step by far (AES-GCM is several times faster here): each segment is
    # hashed in a thread of its own while the caller's thread seals and stores it, both outside
    # the GIL. The hashing thread hands each buffer back when done; at most ``_QUEUE`` wait for it.
    segments = _Segments(*plaintext_sizes(segment_size), buffers=_QUEUE + 1)
    hashing: _Hashing | None = None
    size = stored = 0
    try:
        yield envelope + sealer.header
        stored = PREAMBLE_SIZE
        for segment, buffer, last in segments.cut(chunks):
            size += len(segment)
            if last and hashing is None:  # a one-segment blob: no thread worth starting
                hasher.update(segment)
            else:
                if hashing is None:
                    hashing = _Hashing(hasher, segments.release)
                hashing.submit(segment, buffer)
            # Read here while the hashing thread reads it too; the buffer is filled again only
            # in this thread, after this.
            sealed = sealer.seal(segment, last=last)
            stored += len(sealed)
            yield sealed
        if hashing is not None:
            hashing.finish()
        tally.size, tally.sha256, tally.stored_size = size, hasher.hexdigest(), stored
    finally:
        if hashing is not None:
            hashing.stop()


class _Hashing:
    """Feeds segments to a hash in one thread, in order; releases each buffer once hashed."""

    def __init__(self, hasher: Any, release: Callable[[bytearray], None]) -> None:
        self._hasher, self._release = hasher, release
        self._jobs: queue.SimpleQueue[tuple[memoryview, bytearray] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="blob-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            segment, buffer = job
            if self._error is None:
                try:
                    self._hasher.update(segment)
                except BaseException as error:  # raised in the caller's thread by ``finish``
                    self._error = error
            self._release(buffer)  # always: the caller may be waiting for a buffer

    def submit(self, segment: memoryview, buffer: bytearray) -> None:
        self._jobs.put((segment, buffer))

    def finish(self) -> None:
        """Wait until every segment is hashed; raise what hashing raised."""
        self.stop()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


class _Segments:
    """Cuts chunks into segment plaintexts, in at most ``buffers`` buffers used again in turn.

    A fresh 1 MiB buffer per segment costs 256 page faults (and zeroing) on every segment with
    the C library's default allocator settings, which measured as a third of the sealing CPU.
    ``release`` may be called from another thread; a cut waits for a buffer once all are out.
    """

    def __init__(self, first: int, rest: int, *, buffers: int) -> None:
        self._first, self._rest = first, rest
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._made, self._limit = 0, max(1, buffers)

    def release(self, buffer: bytearray) -> None:
        self._free.put(buffer)

    def _buffer(self) -> bytearray:
        if self._made >= self._limit:
            return self._free.get()
        try:
            return self._free.get_nowait()
        except queue.Empty:
            self._made += 1
            return bytearray(self._rest)

    def cut(self, chunks: Iterable[Chunk]) -> Iterator[tuple[memoryview, bytearray, bool]]:
        """(segment plaintext, its buffer, is it the last); an empty last one only if all is."""
        buffer, filled, want = self._buffer(), 0, self._first
        for chunk in chunks:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidInput(f"chunks must be bytes, not {type(chunk).__name__}")
            # Copied into our own buffer: the caller may reuse its chunk while a thread still hashes.
            view = memoryview(chunk).cast("B")
            while view:
                if filled == want:
                    yield memoryview(buffer)[:want], buffer, False  # more bytes follow
                    buffer, filled, want = self._buffer(), 0, self._rest
                take = min(want - filled, len(view))
                buffer[filled : filled + take] = view[:take]
                filled += take
                view = view[take:]
        yield memoryview(buffer)[:filled], buffer, True


def open_stream(
    fetch: Fetch,
    *,
    ikm: bytes,
    key_id: bytes,
    document_id: str,
    start: int = 0,
    end: int | None = None,
) -> Iterator[bytes]:
    """Open a blob, yielding verified plaintext from ``start`` up to ``end`` (exclusive).

    The envelope, header and first segment needed are checked before this returns, so that a
    missing blob or a wrong key fails at the call, not in the middle of a response. With a range,
    only the segments that cover it are fetched and verified (as Tink's random access does).
    """
    if start < 0 or (end is not None and end < start):
        raise InvalidInput(f"bad byte range {start}..{end}")
    preamble = b"".join(fetch(0, PREAMBLE_SIZE))
    if len(preamble) != PREAMBLE_SIZE:
        raise IntegrityError()
    envelope = Envelope.decode(preamble[:ENVELOPE_SIZE])
    if envelope.key_id != key_id:
        raise IntegrityError()
    opener = SegmentOpener(
        ikm, preamble[ENVELOPE_SIZE:], associated_data(preamble[:ENVELOPE_SIZE], document_id)
    )
    reader = _SegmentReader(fetch, opener, envelope.segment_size, start, end)
    first = reader.first()
    return _chain(first, reader)


def _chain(first: bytes, reader: _SegmentReader) -> Iterator[bytes]:
    if first:
        yield first
    yield from reader.rest()


class _SegmentReader:
    """Reads the segments covering [start, end) and opens each before releasing a byte of it."""

    def __init__(
        self, fetch: Fetch, opener: SegmentOpener, segment_size: int, start: int, end: int | None
    ) -> None:
        self._fetch, self._opener, self._seg = fetch, opener, segment_size
        self._first_pt, self._rest_pt = plaintext_sizes(segment_size)
        self._start, self._end = start, end
        self._open_at(self._segment_of(start))

    def _open_at(self, index: int) -> None:
        self._index = index
        length = None
        if self._end is not None:
            last_needed = max(self._segment_of(max(self._end - 1, 0)), index)
            # One byte past the last segment needed tells whether that segment is the final one.
            length = self._cipher_offset(last_needed + 1) - self._cipher_offset(index) + 1
        self._chunks = iter(self._fetch(self._cipher_offset(index), length))
        self._buffer = bytearray()
        self._done = False

    def _segment_of(self, offset: int) -> int:
        return 0 if offset < self._first_pt else 1 + (offset - self._first_pt) // self._rest_pt

    def _plaintext_offset(self, index: int) -> int:
        return 0 if index == 0 else self._first_pt + (index - 1) * self._rest_pt

    def _cipher_offset(self, index: int) -> int:
        if index == 0:
            return PREAMBLE_SIZE
        return PREAMBLE_SIZE + (self._seg - HEADER_SIZE) + (index - 1) * self._seg

    def _fill(self, n: int) -> None:
        while len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._buffer += chunk

    def _next_segment(self) -> bytes | None:
        """The next segment's verified plaintext (trimmed to the range), None when done."""
        if self._done:
            return None
        want = self._seg - HEADER_SIZE if self._index == 0 else self._seg
        self._fill(want + 1)  # one byte more: is there anything after this segment?
        last = len(self._buffer) <= want
        # Opened in place (no copy of the segment first); the views are released before the
        # buffer is cut, which a live view would forbid.
        with memoryview(self._buffer) as buffer, buffer[:want] as ciphertext:
            plaintext = self._opener.open(ciphertext, index=self._index, last=last)
        del self._buffer[:want]
        # Threat: an empty final segment after others is not what a writer produces; refuse it.
        if last and not plaintext and self._index > 0:
            raise IntegrityError()
        offset = self._plaintext_offset(self._index)
        self._index += 1
        end = (
            offset + len(plaintext)
            if self._end is None
            else min(self._end, offset + len(plaintext))
        )
        self._done = last or end == self._end
        lo = min(max(self._start - offset, 0), len(plaintext))
        hi = max(end - offset, lo)
        return plaintext if (lo, hi) == (0, len(plaintext)) else plaintext[lo:hi]

    def first(self) -> bytes:
        """The first piece of the range, read eagerly so that failures surface at the call."""
        self._fill(1)
        if not self._buffer and self._index > 0:
            # Nothing where the range starts: either the range lies past the end, or the blob was
            # cut at a segment boundary. Only the previous segment proving itself final (its
            # last-segment flag verifies) tells them apart; otherwise this raises.
            self._open_at(self._index - 1)
        while (piece := self._next_segment()) is not None:
            if piece or self._done:
                return piece
        return b""

    def rest(self) -> Iterator[bytes]:
        while (piece := self._next_segment()) is not None:
            if piece:
                yield piece

"""The portal's one entry point to storage: documents sealed under a three-level key hierarchy.

::

    master key (key store file)  ──wraps──▶  review key (key store, never the database)
    review key                   ──wraps──▶  document data key (bytes kept in the document's row)
    document data key            ──seals──▶  the blob (storage.stream) and small secrets (file name)
    review key                   ──wraps──▶  a text's own data key ──seals──▶  a free text
                                             (``seal_text``: request titles, hold orders, ...)

A wrapped data key is bound by associated data to its review code, its document id and the review
key version that wrapped it: moved to another row, it does not open. Destroying a review's key puts
every copy of every blob of the review beyond use, backups included; destroying a document is
erasing its wrapped key (the caller's row) and deleting its blob.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, replace

from . import crypto, stream
from .backend import BlobStore, check_blob_id, new_blob_id
from .errors import IntegrityError, InvalidInput, KeyNotFound, StorageError
from .handover import Handover
from .keyservice import ReviewKeys
from .keystore import KeyStatus, check_review_code
from .stream import KEY_ID_SIZE, SEGMENT_SIZE, Tally, check_segment_size, open_stream, seal_stream

_DATA_KEY_MAGIC = b"DK"
_DATA_KEY_VERSION = 1
_VERSION_ID_SIZE = 8  # review key version ids are 8 bytes, shown as 16 hex characters
_DATA_KEY_HEADER = len(_DATA_KEY_MAGIC) + 1 + _VERSION_ID_SIZE + KEY_ID_SIZE
_SECRET_VERSION = 1
_TEXT_VERSION = 1
_TEXT_LABEL = b"dxp text v1"
MAX_SECRET_SIZE = 64 * 1024
# Bytes of an async source read ahead of the sealing thread (per upload: memory stays flat).
READ_AHEAD = 1024 * 1024


@dataclass(frozen=True)
class DocumentKey:
    """A document's wrapped data key and what it is bound to.

    The portal stores ``wrapped`` in the document's row and rebuilds this object from the row
    (``DocumentKey(review=row.review_code, document_id=row.id, wrapped=row.wrapped_key)``).
    Erasing ``wrapped`` from the row (and its backups' expiry) destroys the document.
    """

    review: str
    document_id: str
    wrapped: bytes = b""

    def __repr__(self) -> str:  # never print key material, even wrapped
        return f"DocumentKey(review={self.review!r}, document_id={self.document_id!r})"


@dataclass(frozen=True)
class TextPlace:
    """Where a sealed text lives: its review, and the table, column and row that hold it.

    All four are bound to the sealed bytes as associated data: copied into another row, column,
    table or review, a sealed text does not open.
    """

    review: str
    table: str
    column: str
    row: str

    @property
    def key_name(self) -> str:
        """The id its data key is wrapped under (never a document reference: those have no ':')."""
        return f"text:{self.table}.{self.column}.{self.row}"


@dataclass(frozen=True)
class StoredBlob:
    """What a write reports: the blob's random id and the plaintext's size and SHA-256 (hex)."""

    blob_id: str
    size: int
    sha256: str
    stored_size: int  # bytes in the store, with the envelope, header and tags


class Vault:
    """Sealed documents in a blob store, their keys in a key store. Thread-safe."""

    def __init__(
        self,
        store: BlobStore,
        keystore: ReviewKeys,
        *,
        segment_size: int = SEGMENT_SIZE,
        random_bytes: crypto.RandomBytes = secrets.token_bytes,
    ) -> None:
        check_segment_size(segment_size)
        self.store = store
        self.keystore = keystore
        self._segment_size = segment_size
        self._random = random_bytes

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless both the blob store and the key store are usable."""
        self.store.check()
        self.keystore.check()

    # -- reviews -------------------------------------------------------------------------------

    def create_review_key(self, review: str) -> None:
        """Give a review its key (idempotent); ``KeyDestroyed`` if it was destroyed before."""
        self.keystore.create_review_key(review)

    def destroy_review(self, review: str, blob_ids: Iterable[str] = ()) -> None:
        """Crypto-shred a review: erase its key, then delete the blobs given. Idempotent.

        The key goes first: from that moment every copy of every blob of the review, in this
        store or in any backup, is beyond use, even if deleting the blobs is interrupted.
        """
        self.keystore.destroy_review_key(review)
        for blob_id in blob_ids:
            self.store.delete(blob_id)

    def rotate_review_key(self, review: str, keys: Iterable[DocumentKey]) -> list[DocumentKey]:
        """A new key version for ``review``; returns ``keys`` re-wrapped under it, in order.

        No blob changes. Store the returned keys, then call ``remove_old_review_keys``.
        """
        version = self.keystore.add_review_key_version(review)
        rotated = []
        for key in keys:
            if key.review != review:
                raise InvalidInput(f"document {key.document_id!r} is not in review {review!r}")
            key_id, data_key = self._unwrap(key)
            wrapped = self._wrap(key, version, key_id, data_key)
            rotated.append(replace(key, wrapped=wrapped))
        return rotated

    def remove_old_review_keys(self, review: str, *, in_use: Iterable[DocumentKey]) -> int:
        """Erase the review's key versions that none of ``in_use`` needs; returns how many.

        Pass every document key of the review still held: a version that one of them needs is
        kept, so a key missed by a rotation is never silently shredded.
        """
        keep = {_parse_data_key(key.wrapped)[0] for key in in_use if key.review == review}
        return self.keystore.remove_review_key_versions(review, keep=keep)

    # -- master keys ---------------------------------------------------------------------------

    def rotate_master_key(self) -> str:
        """New primary master key; every review key re-wrapped under it. Returns the new id."""
        return self.keystore.rotate_master_key()

    def remove_master_key(self, key_id: str) -> None:
        """Erase an old master key once nothing depends on it (``KeyInUse`` otherwise)."""
        self.keystore.remove_master_key(key_id)

    def key_status(self) -> KeyStatus:
        return self.keystore.status()

    # -- documents -----------------------------------------------------------------------------

    def issue_document_key(self, *, review: str, document_id: str) -> DocumentKey:
        """A fresh random data key for a new document, wrapped by the review's primary key."""
        key = DocumentKey(review=check_review_code(review), document_id=_check_id(document_id))
        version = self.keystore.primary_version(review)
        wrapped = self._wrap(key, version, self._random(KEY_ID_SIZE), self._random(crypto.KEY_SIZE))
        return replace(key, wrapped=wrapped)

    def write(self, key: DocumentKey, chunks: Iterable[stream.Chunk]) -> StoredBlob:
        """Seal and store the plaintext ``chunks`` as a new blob, in constant memory.

        All or nothing: if ``chunks`` raises (or the process dies) no blob appears.
        """
        key_id, data_key = self._unwrap(key)
        blob_id = new_blob_id(self._random)
        tally = Tally()
        sealed = seal_stream(
            chunks,
            ikm=data_key,
            key_id=key_id,
            document_id=key.document_id,
            tally=tally,
            random_bytes=self._random,
            segment_size=self._segment_size,
        )
        self.store.put(blob_id, sealed)
        if not tally.sha256:  # a store that stopped reading early must not pass as a success
            self.store.delete(blob_id)
            raise StorageError("the blob store did not consume the whole stream")
        return StoredBlob(blob_id, tally.size, tally.sha256, tally.stored_size)

    async def write_async(self, key: DocumentKey, chunks: AsyncIterable[bytes]) -> StoredBlob:
        """``write`` for an async iterator (a request body): sealing runs in a worker thread.

        The loop reads ahead (up to ``READ_AHEAD`` bytes) while the thread seals and stores, so
        receiving and storing overlap. If the calling task is cancelled, or the source raises,
        the write is abandoned and leaves no blob.
        """
        loop = asyncio.get_running_loop()
        source = Handover(loop, limit=READ_AHEAD)
        work = loop.run_in_executor(None, self.write, key, source)
        filling = asyncio.ensure_future(source.fill(chunks))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            source.abandon()
            with suppress(BaseException):
                await work  # let the store abort its upload before we report the cancellation
            raise
        finally:
            if not filling.done():  # the write ended before the source did (it failed)
                source.abandon()
                filling.cancel()
            await asyncio.wait([filling])

    def read(
        self, key: DocumentKey, blob_id: str, *, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        """The verified plaintext of a blob, or of bytes ``[start, end)`` of it.

        Raises at the call (not mid-iteration) for a missing blob (``BlobNotFound``), a wrong
        key, document or header (``IntegrityError``); later segments are opened as they are read,
        and a bad one raises ``IntegrityError`` before releasing any of its bytes.
        """
        key_id, data_key = self._unwrap(key)
        check_blob_id(blob_id)

        def fetch(offset: int, length: int | None) -> Iterator[bytes]:
            return self.store.get(blob_id, offset, length)

        return open_stream(
            fetch, ikm=data_key, key_id=key_id, document_id=key.document_id, start=start, end=end
        )

    def destroy_document(self, blob_id: str | None) -> None:
        """Delete a document's blob (every version). Idempotent.

        The caller erases the wrapped key from the document's row in the same step: without it
        any copy of the blob is beyond use.
        """
        if blob_id is not None:
            self.store.delete(blob_id)

    # -- small secrets -------------------------------------------------------------------------

    def seal_secret(self, key: DocumentKey, value: bytes, *, purpose: str = "file name") -> bytes:
        """Seal a short value (the original file name) under the document's data key.

        ``purpose`` is bound too, so that two sealed fields of one document cannot be swapped.
        """
        if len(value) > MAX_SECRET_SIZE:
            raise InvalidInput(f"secrets are at most {MAX_SECRET_SIZE} bytes, not {len(value)}")
        key_id, data_key = self._unwrap(key)
        subkey = crypto.derive_subkey(data_key, b"dxp secret v1")
        ad = _secret_ad(key_id, key.document_id, purpose)
        return bytes([_SECRET_VERSION]) + crypto.seal(subkey, value, ad, random_bytes=self._random)

    def open_secret(self, key: DocumentKey, sealed: bytes, *, purpose: str = "file name") -> bytes:
        if not sealed or sealed[0] != _SECRET_VERSION:
            raise IntegrityError()
        key_id, data_key = self._unwrap(key)
        subkey = crypto.derive_subkey(data_key, b"dxp secret v1")
        return crypto.open_sealed(subkey, sealed[1:], _secret_ad(key_id, key.document_id, purpose))

    # -- free texts under a review's key -------------------------------------------------------

    def seal_text(self, place: TextPlace, text: str) -> bytes:
        """Seal a free text (UTF-8, at most ``MAX_SECRET_SIZE`` bytes) under the review's key.

        Each text gets its own random data key, wrapped by the review's primary key version as a
        document's is: destroying the review's key puts the text beyond use in every copy of the
        database, and a rotation re-wraps the small key without touching the text.
        """
        if not isinstance(text, str):
            raise InvalidInput("a sealed text must be a str")
        try:
            value = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not text anyone can read back
            raise InvalidInput("the text is not valid Unicode") from None
        if len(value) > MAX_SECRET_SIZE:
            raise InvalidInput(f"texts are at most {MAX_SECRET_SIZE} bytes, not {len(value)}")
        key = self._text_key(place, b"")
        version = self.keystore.primary_version(key.review)
        key_id, data_key = self._random(KEY_ID_SIZE), self._random(crypto.KEY_SIZE)
        wrapped = self._wrap(key, version, key_id, data_key)
        subkey = crypto.derive_subkey(data_key, _TEXT_LABEL)
        body = crypto.seal(subkey, value, _text_ad(key_id, place), random_bytes=self._random)
        return bytes([_TEXT_VERSION]) + wrapped + body

    def open_text(self, place: TextPlace, sealed: bytes) -> str:
        """The text ``seal_text`` sealed at ``place``.

        ``KeyDestroyed`` once the review's key was destroyed (the text is gone for good);
        ``IntegrityError`` for anything altered, moved or not ours.
        """
        key = self.text_key(place, sealed)
        key_id, data_key = self._unwrap(key)
        subkey = crypto.derive_subkey(data_key, _TEXT_LABEL)
        value = crypto.open_sealed(subkey, sealed[1 + _WRAPPED_SIZE :], _text_ad(key_id, place))
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:  # cannot happen for what seal_text sealed
            raise IntegrityError() from None

    def text_key(self, place: TextPlace, sealed: bytes) -> DocumentKey:
        """The wrapped data key inside a sealed text, to pass to ``rotate_review_key``."""
        if len(sealed) < 1 + _WRAPPED_SIZE or sealed[0] != _TEXT_VERSION:
            raise IntegrityError()
        return self._text_key(place, sealed[1 : 1 + _WRAPPED_SIZE])

    def rekey_text(self, sealed: bytes, key: DocumentKey) -> bytes:
        """``sealed`` with its data key replaced by ``key`` (re-wrapped by a rotation)."""
        if len(sealed) < 1 + _WRAPPED_SIZE or len(key.wrapped) != _WRAPPED_SIZE:
            raise IntegrityError()
        return sealed[:1] + key.wrapped + sealed[1 + _WRAPPED_SIZE :]

    @staticmethod
    def _text_key(place: TextPlace, wrapped: bytes) -> DocumentKey:
        return DocumentKey(
            review=check_review_code(place.review),
            document_id=_check_id(place.key_name),
            wrapped=wrapped,
        )

    # -- data keys -----------------------------------------------------------------------------

    def _wrap(self, key: DocumentKey, version: str, key_id: bytes, data_key: bytes) -> bytes:
        header = _DATA_KEY_MAGIC + bytes([_DATA_KEY_VERSION]) + bytes.fromhex(version) + key_id
        if len(header) != _DATA_KEY_HEADER:
            raise InvalidInput("unexpected review key version or key id size")
        # The key service seals it: a provider that keeps review keys inside (an HSM) never
        # hands them out; the format (nonce, ciphertext, tag) is the same for every provider.
        return header + self.keystore.wrap(key.review, version, data_key, _data_key_ad(header, key))

    def _unwrap(self, key: DocumentKey) -> tuple[bytes, bytes]:
        """``(key id, data key)``; ``IntegrityError`` for a key altered or of another document."""
        version, key_id = _parse_data_key(key.wrapped)
        header = key.wrapped[:_DATA_KEY_HEADER]
        try:
            data_key = self.keystore.unwrap(
                check_review_code(key.review),
                version,
                key.wrapped[_DATA_KEY_HEADER:],
                _data_key_ad(header, key),
            )
        except KeyNotFound:
            # The review has a key but not this version: removed after a rotation, or a wrapped
            # key from elsewhere. Either way it is a failure to open, reported as all others are.
            if self.keystore.has_review_key(key.review):
                raise IntegrityError() from None
            raise
        if len(data_key) != crypto.KEY_SIZE:
            raise IntegrityError()
        return key_id, data_key


_WRAPPED_SIZE = _DATA_KEY_HEADER + crypto.NONCE_SIZE + crypto.KEY_SIZE + crypto.TAG_SIZE


def _parse_data_key(wrapped: bytes) -> tuple[str, bytes]:
    """``(review key version, key id)`` from a wrapped data key's header."""
    if (
        len(wrapped) != _WRAPPED_SIZE
        or wrapped[:2] != _DATA_KEY_MAGIC
        or wrapped[2] != _DATA_KEY_VERSION
    ):
        raise IntegrityError()
    version = wrapped[3 : 3 + _VERSION_ID_SIZE].hex()
    return version, wrapped[3 + _VERSION_ID_SIZE : _DATA_KEY_HEADER]


def _data_key_ad(header: bytes, key: DocumentKey) -> bytes:
    parts = [b"dxp data key v1", header, key.review.encode(), _check_id(key.document_id).encode()]
    return b"\x00".join(parts)


def _secret_ad(key_id: bytes, document_id: str, purpose: str) -> bytes:
    parts = [b"dxp secret v1", key_id, _check_id(document_id).encode(), purpose.encode()]
    return b"\x00".join(parts)


def _text_ad(key_id: bytes, place: TextPlace) -> bytes:
    parts = [place.review, place.table, place.column, place.row]
    if any("\x00" in part for part in parts):
        raise InvalidInput("a text's place must not contain NUL")
    return b"\x00".join([_TEXT_LABEL, key_id, *(part.encode() for part in parts)])


def _check_id(document_id: str) -> str:
    if not isinstance(document_id, str) or not 0 < len(document_id) <= 200 or "\x00" in document_id:
        raise InvalidInput(f"document id {document_id!r} must be 1..200 characters, without NUL")
    return document_id

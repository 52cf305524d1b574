"""The small interface every blob store implements, and the blob ids they accept.

A blob store keeps opaque bytes under random ids. It knows nothing of keys, documents or reviews;
what it stores is already sealed by ``storage.stream``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .crypto import RandomBytes
from .errors import InvalidInput

_BLOB_ID = re.compile(r"[0-9a-f]{32}")


def new_blob_id(random_bytes: RandomBytes) -> str:
    """128 random bits in hex: nothing about the document can be read from or guessed by it."""
    return random_bytes(16).hex()


def check_blob_id(blob_id: str) -> str:
    # Threat: a crafted id ("../x", "a/b", a key of another prefix) must never reach a path or
    # an object key; only ids of the shape we generate are accepted.
    if not isinstance(blob_id, str) or not _BLOB_ID.fullmatch(blob_id):
        raise InvalidInput(f"blob id {blob_id!r} is not 32 lower-case hex characters")
    return blob_id


def is_blob_id(name: str) -> bool:
    return _BLOB_ID.fullmatch(name) is not None


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    size: int
    modified: datetime  # aware, UTC


class BlobStore(Protocol):
    """Where sealed blobs live: a local folder or an S3 bucket."""

    def check(self) -> None:
        """Raise ``StorageUnavailable`` with a plain message unless the store is usable now."""

    def put(self, blob_id: str, chunks: Iterable[bytes]) -> None:
        """Store the bytes of ``chunks`` under ``blob_id``, all or nothing.

        Until this returns the blob is not visible; if ``chunks`` raises or the process dies, no
        blob appears (a dead process may leave an invisible incomplete upload that
        ``remove_incomplete`` clears). Raises ``StorageUnavailable`` on backend failures and
        re-raises whatever ``chunks`` raised.
        """

    def get(self, blob_id: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from ``offset`` (``length`` of them, or to the end).

        Raises ``BlobNotFound`` at the call if there is no such blob.
        """

    def delete(self, blob_id: str) -> None:
        """Remove the blob and, on a versioned bucket, every version of it. Idempotent."""

    def exists(self, blob_id: str) -> bool: ...

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every complete blob, for a sweep of blobs that no document refers to."""

    def remove_incomplete(self, older_than: datetime) -> int:
        """Clear incomplete writes begun before ``older_than`` (left by dead processes)."""

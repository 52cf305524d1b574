"""The canonical encodings that hashes and signatures cover (docs/audit-format.md describes them).

Changing anything here changes every hash: bump the version tags instead, and keep reading the
old ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from .errors import EventRejected

EVENT_TAG = "audit-event/1"
CHECKPOINT_TAG = "audit-checkpoint/1"
SEAL_TAG = "audit-export-seal/1"
EPOCH_TAG = "audit-epoch/1"
EXPORT_FORMAT = "audit-export/1"
GENESIS = bytes(32)  # the "previous hash" of event 1

# The stored event fields, in the order the canonical array lists them after the tag. The
# ``hash`` column follows them in every row the verifier reads.
EVENT_FIELDS = (
    "seq",
    "at_us",
    "nonce",
    "user_id",
    "role",
    "organisation_id",
    "action",
    "target_kind",
    "target_ref",
    "review",
    "document",
    "outcome",
    "client",
    "request_id",
    "details",
)
HASH_INDEX = len(EVENT_FIELDS)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# One encoder built once: compact, ASCII only, no NaN; json's C encoder does the work.
_encode = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, check_circular=False
).encode
_encode_sorted = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, sort_keys=True
).encode
_sha256 = hashlib.sha256


def encode_details(details: Mapping[str, object]) -> str:
    """Details as canonical JSON text: keys sorted, compact, ASCII."""
    return _encode_sorted(dict(details))


def event_digest(row: Sequence[object]) -> bytes:
    """SHA-256 of the canonical array of one event (``row`` holds EVENT_FIELDS, in order)."""
    return _sha256(_encode([EVENT_TAG, *row[:HASH_INDEX]]).encode("ascii")).digest()


def event_digest_as(row: Sequence[object], seq: int) -> bytes:
    """The digest ``row`` would have with another sequence number (to recognise moved rows)."""
    return _sha256(_encode([EVENT_TAG, seq, *row[1:HASH_INDEX]]).encode("ascii")).digest()


def chain_hash(previous: bytes, digest: bytes) -> bytes:
    """hash(n) = SHA-256(hash(n-1) || digest(n)): each link covers everything before it."""
    return _sha256(previous + digest).digest()


def checkpoint_message(
    *, seq: int, hash_hex: str, at_us: int, every_events: int, previous_seq: int, fingerprint: str
) -> bytes:
    return _encode(
        [CHECKPOINT_TAG, seq, hash_hex, at_us, every_events, previous_seq, fingerprint]
    ).encode("ascii")


def epoch_message(
    *,
    seq: int,
    hash_hex: str,
    before_us: int,
    at_us: int,
    previous_seq: int,
    fingerprint: str,
) -> bytes:
    """What an epoch signs: the log now starts after ``seq`` (a signed checkpoint, whose link is
    ``hash_hex``); the events up to it, all older than ``before_us``, were disposed of."""
    return _encode([EPOCH_TAG, seq, hash_hex, before_us, at_us, previous_seq, fingerprint]).encode(
        "ascii"
    )


def seal_message(body_sha256_hex: str, fingerprint: str) -> bytes:
    return _encode([SEAL_TAG, body_sha256_hex, fingerprint]).encode("ascii")


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, UTC; a naive time is refused (its zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EventRejected("event time must be timezone-aware (UTC), not naive")
    return (moment - EPOCH) // _MICROSECOND


def from_us(at_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=at_us)


def iso(at_us: int) -> str:
    """The time as ISO 8601 UTC with microseconds, e.g. 2026-11-21T23:33:00.000000Z."""
    return from_us(at_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

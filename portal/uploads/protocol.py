"""The tus 1.0 wire format: header values in, checked values out. No I/O, no framework.

https://tus.io/protocols/resumable-upload (core, creation, termination, checksum).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from portal.uploads.errors import BadTusRequest, VersionUnsupported

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,checksum"
OFFSET_STREAM = "application/offset+octet-stream"
# No md5 (nor anything weaker): a checksum is only worth sending if it is collision resistant.
CHECKSUMS: Mapping[str, Callable[[], Any]] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}

MAX_METADATA = 8 * 1024  # the whole Upload-Metadata header
MAX_FILENAME = 1000
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def require_version(headers: Mapping[str, str]) -> None:
    if headers.get("tus-resumable", "").strip() != TUS_VERSION:
        raise VersionUnsupported()


def whole_number(value: str | None, header: str) -> int:
    if value is None or not _DIGITS.fullmatch(value.strip()):
        raise BadTusRequest(f"Send {header} as a whole number of bytes (got {value!r}).")
    return int(value.strip())


@dataclass(frozen=True)
class UploadMetadata:
    """What the client says about the file. ``filetype`` is informational: types are checked on
    the content, never on what the client claims."""

    filename: str
    review: str
    filetype: str | None = None
    request: str | None = None
    case: str | None = None
    sha256: str | None = None


def parse_metadata(header: str | None) -> UploadMetadata:
    """``Upload-Metadata: key base64,key base64``; unknown keys are ignored."""
    if header is None or not header.strip():
        raise BadTusRequest(
            "Send Upload-Metadata with at least the keys filename and review "
            "(values base64-encoded)."
        )
    if len(header) > MAX_METADATA:
        raise BadTusRequest("Upload-Metadata is too long.")
    values: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not _KEY.fullmatch(key) or len(parts) > 2 or key in values:
            raise BadTusRequest(f"Upload-Metadata has a malformed or repeated key {key[:64]!r}.")
        try:
            raw = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            values[key] = raw.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise BadTusRequest(
                f"The Upload-Metadata value of {key!r} is not base64-encoded UTF-8."
            ) from None
    filename = values.get("filename", "").strip()
    review = values.get("review", "").strip()
    if not filename or not review:
        raise BadTusRequest(
            "Upload-Metadata must name the file (filename) and the review (review)."
        )
    if len(filename) > MAX_FILENAME:
        raise BadTusRequest("The file name is too long: shorten it and try again.")
    sha256 = values.get("sha256", "").strip() or None
    if sha256 is not None and not _HEX_SHA256.fullmatch(sha256):
        raise BadTusRequest("The sha256 metadata must be the file's SHA-256 in 64 hex digits.")
    request = values.get("request", "").strip() or None
    if request is not None and not _DIGITS.fullmatch(request):
        raise BadTusRequest("The request metadata must be the request's number.")
    return UploadMetadata(
        filename=filename,
        review=review,
        filetype=values.get("filetype") or None,
        request=request,
        case=values.get("case", "").strip() or None,
        sha256=sha256.lower() if sha256 else None,
    )


@dataclass(frozen=True)
class PartChecksum:
    algorithm: str
    digest: bytes

    def new_hash(self) -> Any:
        return CHECKSUMS[self.algorithm]()

    def matches(self, computed: bytes) -> bool:
        return hmac.compare_digest(computed, self.digest)


def parse_checksum(header: str | None) -> PartChecksum | None:
    """``Upload-Checksum: sha1 <base64 digest>``; an algorithm we do not offer is a 400."""
    if header is None:
        return None
    parts = header.strip().split(" ")
    if len(parts) != 2 or parts[0].lower() not in CHECKSUMS:
        raise BadTusRequest(
            "Upload-Checksum must be 'sha1 <base64>' or 'sha256 <base64>' "
            f"(supported: {', '.join(CHECKSUMS)})."
        )
    algorithm = parts[0].lower()
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise BadTusRequest("The Upload-Checksum digest is not valid base64.") from None
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise BadTusRequest(f"The Upload-Checksum digest is not a {algorithm} digest.")
    return PartChecksum(algorithm, digest)

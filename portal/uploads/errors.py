"""Errors of the resumable upload protocol (tus 1.0), on top of the exchange's own.

They are ExchangeErrors, so they become ``{"error": {...}}`` responses in the one place that
turns the exchange's errors into HTTP (portal.app); the tus headers are added by the routes.

    ExchangeError (portal.exchange.errors)
    ├── NotFound                  404: no such upload, or somebody else's (never told apart)
    ├── Refused
    │   ├── BadTusRequest         400: a missing or malformed tus header or metadata
    │   ├── VersionUnsupported    412: no (or another) Tus-Resumable version
    │   ├── WrongContentType      415: a PATCH body that is not application/offset+octet-stream
    │   ├── OffsetConflict        409: Upload-Offset is not where the upload stands
    │   ├── PartChecksumMismatch  460: the PATCH's bytes do not match its Upload-Checksum
    │   └── TooManyUploads        429: too many unfinished uploads for one person
    └── UploadExpired             410: the upload was idle too long; start again
"""

from __future__ import annotations

from portal.exchange.errors import ExchangeError, Refused


class BadTusRequest(Refused):
    code = "invalid_upload_request"


class VersionUnsupported(Refused):
    status = 412
    code = "tus_version_unsupported"

    def __init__(self) -> None:
        super().__init__(
            "This address speaks the tus resumable upload protocol, version 1.0.0: send the "
            "header Tus-Resumable: 1.0.0 (a tus client library does this for you)."
        )


class WrongContentType(Refused):
    status = 415
    code = "invalid_content_type"

    def __init__(self) -> None:
        super().__init__(
            "Send the bytes of an upload with Content-Type: application/offset+octet-stream."
        )


class OffsetConflict(Refused):
    status = 409
    code = "offset_mismatch"


class PartChecksumMismatch(Refused):
    # 460 "Checksum Mismatch" is the status the tus checksum extension defines.
    status = 460
    code = "checksum_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "The bytes received do not match the Upload-Checksum sent with them, so they were "
            "discarded. Send the same bytes again from the same offset."
        )


class TooManyUploads(Refused):
    status = 429
    code = "too_many_uploads"


class UploadExpired(ExchangeError):
    status = 410
    code = "upload_expired"

    def __init__(self) -> None:
        super().__init__(
            "This upload was left unfinished for too long and has been discarded. "
            "Start the upload of this file again."
        )

"""Errors of the resumable upload protocol (tus 1.0): leaves of the portal's one tree
(portal.errors). The statuses tus itself defines (412 for a version, 460 for a part's checksum)
are mapped with the others in portal.web.errors; the tus headers are added by the routes.

    Invalid
    ├── BadTusRequest             a missing or malformed tus header or metadata
    ├── VersionUnsupported        no (or another) Tus-Resumable version
    └── PartChecksumMismatch      the PATCH's bytes do not match its Upload-Checksum
    UnsupportedType
    └── WrongContentType          a PATCH body that is not application/offset+octet-stream
    Conflict
    └── OffsetConflict            Upload-Offset is not where the upload stands
    TooMany
    └── TooManyUploads            too many unfinished uploads for one person
    Gone
    └── UploadExpired             the upload was idle too long; start again

An upload that is not there, or somebody else's, is the exchange's ``NotFound`` (never told
apart).
"""

from __future__ import annotations

from portal.errors import Conflict, Gone, Invalid, TooMany, UnsupportedType


class BadTusRequest(Invalid):
    code = "invalid_upload_request"


class VersionUnsupported(Invalid):
    code = "tus_version_unsupported"

    def __init__(self) -> None:
        super().__init__(
            "This address speaks the tus resumable upload protocol, version 1.0.0: send the "
            "header Tus-Resumable: 1.0.0 (a tus client library does this for you)."
        )


class WrongContentType(UnsupportedType):
    code = "invalid_content_type"

    def __init__(self) -> None:
        super().__init__(
            "Send the bytes of an upload with Content-Type: application/offset+octet-stream."
        )


class OffsetConflict(Conflict):
    code = "offset_mismatch"


class PartChecksumMismatch(Invalid):
    code = "checksum_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "The bytes received do not match the Upload-Checksum sent with them, so they were "
            "discarded. Send the same bytes again from the same offset."
        )


class TooManyUploads(TooMany):
    code = "too_many_uploads"


class UploadExpired(Gone):
    code = "upload_expired"

    def __init__(self) -> None:
        super().__init__(
            "This upload was left unfinished for too long and has been discarded. "
            "Start the upload of this file again."
        )

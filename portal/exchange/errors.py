"""Errors of the exchange. Each carries a stable code (for the API) and a plain message that says
what to do next (for people). They become HTTP responses in one place (portal.app).

    ExchangeError                 base: status 400
    ├── NotFound                  404: absent, or not the caller's to see (never told apart)
    ├── InvalidReference          400: not a reference (a typo the check character caught)
    ├── Refused                   400/409: the request is understood but cannot be carried out
    │   ├── ReviewNotOpen         409: no uploads before opening or after closing
    │   ├── TypeRefused           415: the content is not an allowed type
    │   ├── WrongBodyType         415: an upload's body not sent as application/octet-stream
    │   └── ChecksumMismatch      400: the bytes received are not the bytes announced
    ├── TooLarge                  413: over the upload limit; nothing was kept
    └── Gone                      410: destroyed at the end of its review (the record remains)
"""

from __future__ import annotations


class ExchangeError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ExchangeError):
    status = 404
    code = "not_found"

    def __init__(
        self, what: str = "There is nothing with that reference that you can see."
    ) -> None:
        super().__init__(what + " Check the reference, or ask the person who gave it to you.")


class InvalidReference(ExchangeError):
    code = "invalid_reference"

    def __init__(self, typed_kind: str = "reference") -> None:
        super().__init__(
            f"That is not a valid {typed_kind}: a character is wrong or two are swapped. "
            "Check it against the receipt and type it again."
        )


class Refused(ExchangeError):
    code = "refused"


class ReviewNotOpen(Refused):
    status = 409
    code = "review_not_open"


class TypeRefused(Refused):
    status = 415
    code = "type_not_allowed"


class WrongBodyType(Refused):
    status = 415
    code = "wrong_content_type"


class ChecksumMismatch(Refused):
    code = "checksum_mismatch"


class TooLarge(ExchangeError):
    status = 413
    code = "too_large"


class Gone(ExchangeError):
    status = 410
    code = "destroyed"

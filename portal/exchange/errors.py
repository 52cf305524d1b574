"""Errors of the exchange: leaves of the portal's one tree (portal.errors, where it is drawn).

Each carries a stable code and a plain message that says what to do next; none carries an HTTP
status (portal.web.errors maps the kinds to statuses).

    Invalid
    ├── Refused                   the request is understood but cannot be carried out (a code
    │                             says why: invalid_state, invalid_lead, ...)
    ├── ChecksumMismatch          the bytes received are not the bytes announced
    └── FormMistake               a form value a page could not read, shown on its field
    NotFound
    └── NotFound                  absent, or not the caller's to see (never told apart)
    Conflict
    └── ReviewNotOpen             no uploads before opening or after closing
    UnsupportedType
    ├── TypeRefused               the content is not an allowed type
    └── WrongBodyType             an upload's body not sent as application/octet-stream
    TooLarge                      over the upload limit; nothing was kept (portal.errors')
    Gone
    └── Gone                      destroyed at the end of its review (the record remains)

``InvalidReference`` is the one of ``portal.references`` (parsing a reference raises it).
"""

from __future__ import annotations

from portal import errors
from portal.errors import PortalError, TooLarge
from portal.references import InvalidReference

__all__ = [
    "ChecksumMismatch",
    "FormMistake",
    "Gone",
    "InvalidReference",
    "NotFound",
    "PortalError",
    "Refused",
    "ReviewNotOpen",
    "TooLarge",
    "TypeRefused",
    "WrongBodyType",
]


class NotFound(errors.NotFound):
    def __init__(
        self, what: str = "There is nothing with that reference that you can see."
    ) -> None:
        super().__init__(what + " Check the reference, or ask the person who gave it to you.")


class Refused(errors.Invalid):
    code = "refused"


class ChecksumMismatch(errors.Invalid):
    code = "checksum_mismatch"


class FormMistake(errors.Invalid):
    """A value the handler could not read (a date, a number, a choice): shown on its field."""

    code = "invalid_form"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ReviewNotOpen(errors.Conflict):
    code = "review_not_open"


class TypeRefused(errors.UnsupportedType):
    code = "type_not_allowed"


class WrongBodyType(errors.UnsupportedType):
    code = "wrong_content_type"


class Gone(errors.Gone):
    code = "destroyed"

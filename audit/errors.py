"""Exceptions raised by ``audit``; the whole hierarchy is drawn here.

::

    AuditError                   base class: catch this to catch everything below
    ├── EventRejected            an event the log refuses to store (also a ValueError): a field
    │   │                        outside its pattern, an action not in the registry, a naive time
    │   └── ForbiddenDetail      a details key not on the allow-list, or a value of the wrong kind:
    │                            the channel through which a file name, password, code, token or key
    │                            could otherwise slip into the log
    ├── SigningKeyError          the signing key file cannot be used (missing, unreadable, not an
    │                            Ed25519 key, readable by other accounts)
    ├── SignatureInvalid         ONE type for every failure to verify a signature (wrong key, altered
    │                            message, malformed signature), so that no failure is an oracle
    ├── ChainBroken              the log does not verify; ``.broken`` says where first and how
    │                            (raised when a checkpoint would otherwise sign a broken chain)
    └── ExportUnreadable         a file given as an export is not one (not JSON Lines or CSV of
                                 this format, no header, no seal); a *readable* export that fails
                                 its checks is reported as a break, not raised
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .verification import Break


class AuditError(Exception):
    """Base class of every exception raised by ``audit``."""


class EventRejected(AuditError, ValueError):
    """The event cannot be stored as given; the message names the field and the bad value."""


class ForbiddenDetail(EventRejected):
    """A details key or value is not allowed (see ``Vocabulary.detail_keys``)."""


class SigningKeyError(AuditError):
    """The signing key file cannot be used; the message says what to fix."""


class SignatureInvalid(AuditError):
    """A signature does not verify. One fixed message whatever the cause."""

    def __init__(self) -> None:
        super().__init__("the signature does not verify with this public key")


class ChainBroken(AuditError):
    """The chain does not verify where it must (for example before signing a checkpoint)."""

    def __init__(self, broken: Break) -> None:
        super().__init__(f"audit chain broken at sequence {broken.sequence}: {broken.describe()}")
        self.broken = broken


class ExportUnreadable(AuditError):
    """The file is not an audit export this version can read."""

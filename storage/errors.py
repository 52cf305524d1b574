"""Exceptions raised by ``storage``; the whole hierarchy is drawn here.

::

    StorageError                 base class: catch this to catch everything below
    ├── StorageUnavailable       the blob store or key store cannot be used right now
    │                            (folder missing or not writable, bucket unreachable, bad modes)
    ├── BlobNotFound             no blob with this id (never written, or already deleted)
    ├── IntegrityError           something failed to open: a blob, a wrapped key, a sealed secret
    │                            or text.
    │                            ONE type, ONE message for every cause (bad tag, truncation,
    │                            reordering, wrong key, wrong document, bad header), so that no
    │                            error is an oracle for an attacker probing with altered ciphertext
    ├── KeyStoreError            base class of the key problems below
    │   ├── KeyNotFound          no such master key or review key
    │   ├── KeyDestroyed         the review key was crypto-shredded; its content and sealed
    │   │                        texts are beyond use
    │   └── KeyInUse             refusing to remove a key that still wraps other keys
    └── InvalidInput             a caller passed a value the library refuses (also a ValueError)
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every exception raised by ``storage``."""


class StorageUnavailable(StorageError):
    """The blob store or key store cannot be used; the message says what to fix."""


class BlobNotFound(StorageError):
    """No blob with this id exists in the store."""


class IntegrityError(StorageError):
    """Something could not be opened: altered, truncated, misplaced, or the wrong key.

    Deliberately carries one fixed message: distinguishing causes would hand an attacker who can
    alter ciphertext an oracle.
    """

    def __init__(self) -> None:
        super().__init__("the data could not be opened: it was altered, misplaced or is not ours")


class KeyStoreError(StorageError):
    """Base class of key-store problems."""


class KeyNotFound(KeyStoreError):
    """No such master key or review key."""


class KeyDestroyed(KeyStoreError):
    """The review key was destroyed (crypto-shredded): what it protected is beyond use."""


class KeyInUse(KeyStoreError):
    """Refusing to remove a key that still wraps keys in use."""


class InvalidInput(StorageError, ValueError):
    """A value passed in by the caller is refused (bad id, bad size, too large)."""

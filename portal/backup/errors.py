"""Errors of backup and restore; each message says what to do next, none carries a traceback.

::

    BackupError          base class
    ├── BackupRefused    refused before anything was written or loaded: the folder, the database
    │                    or the blob store given is not one it may use (exit 2, a usage error)
    ├── BackupInvalid    the backup does not verify: a file altered or missing, a bad signature,
    │                    a manifest that cannot be read; nothing was restored (exit 1)
    └── BackupFailed     a tool or a store failed while working (exit 1)
"""

from __future__ import annotations

from portal.errors import Failure


class BackupError(Failure):
    """Base class of the errors of ``portal.backup``."""


class BackupRefused(BackupError):
    """The target given cannot be used (not empty, wrong kind); nothing was changed."""


class BackupInvalid(BackupError):
    """The backup does not verify; nothing was restored."""


class BackupFailed(BackupError):
    """pg_dump, pg_restore, the database or the blob store failed."""

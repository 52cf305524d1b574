"""Backup and restore of one installation: its database and its blobs, never its key service.

    errors     the exceptions, and which exit status each is
    files      private files and folders (0600, 0700), written durably, hashed as they are written
    database   the database copied out and in: pg_dump/pg_restore, or SQLite's backup API
    manifest   what a backup holds, signed with the installation's audit signing key
    workflow   ``make_backup`` and ``restore_backup``, which ``portal backup`` and ``portal restore``
               run (portal/cli/backup.py)

The key service (master and review keys, the audit signing key, the portal's secrets) is shared by
every node and has its own backup policy: a portal backup holds no key material at all, so that
destroying a review's key puts that review's content in every portal backup beyond use, while the
same backups still restore every live review. See docs/operations.md.
"""

from .errors import BackupError, BackupFailed, BackupInvalid, BackupRefused
from .workflow import make_backup, restore_backup

__all__ = [
    "BackupError",
    "BackupFailed",
    "BackupInvalid",
    "BackupRefused",
    "make_backup",
    "restore_backup",
]

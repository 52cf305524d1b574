"""Small, private files written atomically and erased deliberately (used by the key store)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) so that a crash leaves the old or the new file."""
    temp = path.with_name(TEMP_PREFIX + secrets.token_hex(8))
    # O_EXCL and O_NOFOLLOW: Threat: a planted file or symlink at the temporary name.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def erase(path: Path) -> None:
    """Overwrite, then unlink. Idempotent.

    Overwriting in place cannot reach every old copy on a journaling file system or flash, so it
    is a best effort against casual recovery; what truly destroys a review key is that it is only
    ever stored wrapped, and master keys can be rotated and removed.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (0700) if missing; tighten its mode if it exists."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def is_private(path: Path) -> bool:
    """True when neither group nor others have any access, and we own it."""
    stat = path.lstat()
    return stat.st_mode & 0o077 == 0 and stat.st_uid == os.getuid()

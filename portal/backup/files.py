"""Private files and folders for backups: folders 0700, files 0600 from the moment they exist.

A backup holds the whole database (password hashes, sealed sign-in secrets, wrapped document
keys, the audit log) and every sealed blob: no other local account may list or read it, not even
for the moment between creating a file and changing its mode.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

READ_SIZE = 1024 * 1024
FOLDER_MODE = 0o700
FILE_MODE = 0o600
# Threat: a symlink planted where a backup file goes must not redirect the write elsewhere.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Written:
    size: int
    sha256: str


def make_private_folder(path: Path) -> None:
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(path, FOLDER_MODE)  # mkdir's mode is filtered by the umask; exist_ok keeps old modes


def create_private_file(path: Path) -> int:
    """A new, empty file (0600) opened for writing; refuses one that exists (or a symlink)."""
    fd = os.open(path, _CREATE, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def write_private_file(path: Path, chunks: Iterable[bytes]) -> Written:
    """Write ``chunks`` to a new 0600 file, durably; returns its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    fd = create_private_file(path)
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return Written(size, digest.hexdigest())


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(READ_SIZE):
            yield chunk


def hash_file(path: Path) -> Written:
    digest = hashlib.sha256()
    size = 0
    for chunk in read_chunks(path):
        digest.update(chunk)
        size += len(chunk)
    return Written(size, digest.hexdigest())


def sync_folder(path: Path) -> None:
    """The names written in ``path`` survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""A blob store in a local folder: ``ROOT/ab/abcdef…`` (fan-out by the id's first two characters).

Writes are atomic and durable: an unnamed temporary file (``O_TMPFILE``) in the target folder,
fsync, linked into place, fsync of the folder. If the process dies mid-write the kernel frees the
unnamed file, so nothing is left behind. On file systems without ``O_TMPFILE`` a named ``.tmp-``
file is used instead, renamed into place, and swept by ``remove_incomplete``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from .backend import BlobInfo, check_blob_id, is_blob_id
from .errors import BlobNotFound, InvalidInput, StorageUnavailable

_READ_SIZE = 1024 * 1024
_TEMP_PREFIX = ".tmp-"
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)  # the file system lacks O_TMPFILE
# Threat: a symlink planted in the tree must not lead a read or write outside the root.
_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Durable writes start the disk on each stretch this long as soon as it is written, so that the
# fsync at the end waits for the last stretch only, not for the whole blob, and let go of the
# cached pages that are on disk (see ``_write`` and ``_let_go``); long reads let go of theirs too.
_WRITEBACK_BYTES = 8 * 1024 * 1024


class LocalFolderStore:
    """Blobs as files under ``root``; nothing can resolve outside it."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root).absolute()
        self._durable = durable  # fsync; only tests and benchmarks may turn it off

    def __repr__(self) -> str:
        return f"LocalFolderStore({str(self.root)!r})"

    def create(self) -> None:
        """Create the root folder, private to this user (0700). Idempotent."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def check(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(
                f"The blob folder {self.root} does not exist. Create it or run `portal init`."
            )
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(
                f"The blob folder {self.root} is not writable by this user. Fix its owner or mode."
            )

    def put(self, blob_id: str, chunks: Iterable[bytes]) -> None:
        name = check_blob_id(blob_id)
        root_fd = self._open_root()
        try:
            try:
                dir_fd = self._open_fanout(root_fd, name, create=True)
            except OSError as exc:
                raise self._unavailable(exc) from None
            try:
                self._write(dir_fd, name, chunks)
            finally:
                os.close(dir_fd)
        finally:
            os.close(root_fd)

    def _write(self, dir_fd: int, name: str, chunks: Iterable[bytes]) -> None:
        fd, temp_name = self._open_temp(dir_fd)
        try:
            # Whatever ``chunks`` raises propagates unchanged; only our own I/O errors are wrapped.
            written = started = 0
            for chunk in chunks:
                self._write_all(fd, chunk)
                written += len(chunk)
                if self._durable and written - started >= _WRITEBACK_BYTES:
                    # The new stretch starts its write-back; the two before it, if the disk has
                    # finished with them, leave the page cache (see ``_let_go``).
                    since = max(0, started - 2 * _WRITEBACK_BYTES)
                    _let_go(fd, since, written - since)
                    started = written
            try:
                if self._durable:
                    os.fsync(fd)
                    _let_go(fd, 0, 0)  # all clean now: the whole file leaves the cache
                if temp_name is None:
                    # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names the unnamed file; it
                    # fails rather than replace an existing blob.
                    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
                else:
                    os.rename(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    temp_name = None
                if self._durable:
                    os.fsync(dir_fd)  # the new name itself survives a crash
            except FileExistsError:
                raise InvalidInput(f"blob {name} already exists") from None
            except OSError as exc:
                raise self._unavailable(exc) from None
        finally:
            os.close(fd)
            if temp_name is not None:
                _unlink_quietly(temp_name, dir_fd)

    def _write_all(self, fd: int, chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: OSError) -> StorageUnavailable:
        return StorageUnavailable(
            f"Could not write to the blob folder {self.root}: {exc.strerror}."
        )

    def _open_temp(self, dir_fd: int) -> tuple[int, str | None]:
        try:
            return os.open(".", os.O_TMPFILE | os.O_WRONLY | _NOFOLLOW, 0o600, dir_fd=dir_fd), None
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _NO_TMPFILE:
                raise self._unavailable(exc) from None
        name = _TEMP_PREFIX + secrets.token_hex(16)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        try:
            return os.open(name, flags, 0o600, dir_fd=dir_fd), name
        except OSError as exc:
            raise self._unavailable(exc) from None

    def get(self, blob_id: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        name = check_blob_id(blob_id)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidInput(f"bad range: offset {offset}, length {length}")
        root_fd = self._open_root()
        try:
            dir_fd = self._open_fanout(root_fd, name, create=False)
            try:
                fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {name}") from None
        finally:
            os.close(root_fd)
        return _FileChunks(fd, offset, length)

    def delete(self, blob_id: str) -> None:
        name = check_blob_id(blob_id)
        # The content is sealed and its key is erased first, so unlinking suffices; overwriting
        # in place would not reach copies on journaling or flash storage anyway.
        root_fd = self._open_root()
        try:
            dir_fd = self._open_fanout(root_fd, name, create=False)
        except FileNotFoundError:
            return
        finally:
            os.close(root_fd)
        try:
            os.unlink(name, dir_fd=dir_fd)
            if self._durable:
                os.fsync(dir_fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(dir_fd)

    def exists(self, blob_id: str) -> bool:
        name = check_blob_id(blob_id)
        root_fd = self._open_root()
        try:
            dir_fd = self._open_fanout(root_fd, name, create=False)
        except OSError:  # missing, or not a real folder (a planted symlink)
            return False
        finally:
            os.close(root_fd)
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return False
        finally:
            os.close(dir_fd)

    def list_blobs(self) -> Iterator[BlobInfo]:
        for folder in sorted(self._fanout_dirs()):
            for entry in os.scandir(folder):
                if is_blob_id(entry.name) and entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    modified = datetime.fromtimestamp(info.st_mtime, UTC)
                    yield BlobInfo(blob_id=entry.name, size=info.st_size, modified=modified)

    def remove_incomplete(self, older_than: datetime) -> int:
        removed = 0
        for folder in self._fanout_dirs():
            for entry in os.scandir(folder):
                if entry.name.startswith(_TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    if datetime.fromtimestamp(info.st_mtime, UTC) < older_than:
                        Path(entry.path).unlink(missing_ok=True)
                        removed += 1
        return removed

    def _fanout_dirs(self) -> Iterator[str]:
        self.check()
        for entry in os.scandir(self.root):
            if len(entry.name) == 2 and entry.is_dir(follow_symlinks=False):
                yield entry.path

    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise StorageUnavailable(
                f"The blob folder {self.root} cannot be opened ({exc.strerror}). "
                "Create it or run `portal init`."
            ) from None

    def _open_fanout(self, root_fd: int, name: str, *, create: bool) -> int:
        folder = name[:2]
        if create:
            try:
                os.mkdir(folder, 0o700, dir_fd=root_fd)
                if self._durable:
                    os.fsync(root_fd)
            except FileExistsError:
                pass
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=root_fd)


class _FileChunks(Iterator[bytes]):
    """Chunks of an open file; closes it when exhausted, closed or collected.

    A long read (a download, a scan) lets go of the pages it has read, stretch by stretch, as a
    durable write does (see ``_let_go``); a short one (a range, a look inside a zip) leaves the
    page cache as it is, since the same bytes are likely read again soon.
    """

    def __init__(self, fd: int, offset: int, length: int | None) -> None:
        self._file = open(fd, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self._file.seek(offset)
        self._left = length
        self._start = self._kept_from = self._position = offset

    def __next__(self) -> bytes:
        if self._file.closed or self._left == 0:
            self.close()
            raise StopIteration
        want = _READ_SIZE if self._left is None else min(_READ_SIZE, self._left)
        chunk = self._file.read(want)
        if not chunk:
            self.close()
            raise StopIteration
        if self._left is not None:
            self._left -= len(chunk)
        self._position += len(chunk)
        if self._position - self._kept_from >= _WRITEBACK_BYTES:
            _let_go(self._file.fileno(), self._kept_from, self._position - self._kept_from)
            self._kept_from = self._position
        return chunk

    def close(self) -> None:
        if self._file.closed:
            return
        if self._position - self._start >= _WRITEBACK_BYTES and self._position > self._kept_from:
            _let_go(self._file.fileno(), self._kept_from, self._position - self._kept_from)
        self._file.close()

    def __del__(self) -> None:
        self.close()


def _let_go(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to write a stretch to disk now, without waiting for it (not a durability
    promise: the fsync at the end of a write is), and to drop the stretch's pages that are
    already on disk from the page cache (``length`` 0: to the end of the file).

    Linux does both for POSIX_FADV_DONTNEED: it starts write-back of the dirty pages, then frees
    the clean ones; pages still dirty or being written are left alone. A blob is written once
    and read later, seldom more than a few times, by the scanner or an inspector, so keeping it
    cached only takes memory, and every long write or read then takes fresh pages for the cache,
    which measured as most of its cost in the virtual machines here (about 2 s of system time per
    GiB against 0.1-0.25 s when a few pages are used again and again; docs/performance.md).
    Elsewhere, or if it fails, the fsync simply has more to do and the kernel reclaims the pages
    itself."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)

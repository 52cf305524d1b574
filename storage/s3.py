"""A blob store in an S3 bucket (AWS, SeaweedFS, MinIO…) through a boto3 client.

Large blobs go up as multipart uploads, a few parts in flight at once, so memory stays bounded by
``(part_size + one chunk) * (max_in_flight + 1)`` whatever the size; a failed upload is aborted.
Deleting removes every version and delete marker of the key: a versioned bucket keeps no copy.
"""

from __future__ import annotations

import contextlib
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .backend import BlobInfo, check_blob_id, is_blob_id
from .errors import BlobNotFound, InvalidInput, StorageUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

T = TypeVar("T")

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB for every part but the last
MAX_IN_FLIGHT = 2
_READ_SIZE = 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """Blobs as objects ``PREFIX/<blob id>`` in ``bucket``; the endpoint is the client's."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = PART_SIZE,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if part_size < 5 * 1024 * 1024 or max_in_flight < 1:
            raise InvalidInput("part_size must be at least 5 MiB and max_in_flight at least 1")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._part_size = part_size
        self._max_in_flight = max_in_flight

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, blob_id: str) -> str:
        check_blob_id(blob_id)
        return f"{self.prefix}/{blob_id}" if self.prefix else blob_id

    def _call(self, action: Callable[..., T], **kwargs: Any) -> T:
        try:
            return action(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _code(exc) in _MISSING and "Key" in kwargs:
                raise BlobNotFound("no such blob") from None
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> StorageUnavailable:
        endpoint = getattr(self._client.meta, "endpoint_url", "?")
        return StorageUnavailable(
            f"The S3 bucket {self.bucket!r} at {endpoint} cannot be used: {str(exc).rstrip('.')}. "
            "Check the endpoint, the credentials and that the bucket exists."
        )

    def check(self) -> None:
        self._call(self._client.head_bucket)

    def put(self, blob_id: str, chunks: Iterable[bytes]) -> None:
        key = self._key(blob_id)
        parts = _parts(chunks, self._part_size)
        first = next(parts, _Part([]))
        second = next(parts, None)
        if second is None:
            # One request: nothing becomes visible unless all of it arrived.
            self._call(self._client.put_object, Key=key, Body=first.read())
            return
        head = [first, second]
        del first, second  # held by ``head`` only, so that each part is freed once uploaded
        upload = self._call(self._client.create_multipart_upload, Key=key)["UploadId"]
        try:
            done = self._upload_parts(key, upload, _prepend(head, parts))
            self._call(
                self._client.complete_multipart_upload,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": done},
            )
        except BaseException:
            # Threat: a half-finished upload is invisible but keeps ciphertext (and costs) in the
            # bucket; abort it. A process killed here leaves it for ``remove_incomplete``.
            with contextlib.suppress(BotoCoreError, ClientError):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def _upload_parts(self, key: str, upload: str, parts: Iterator[_Part]) -> list[Any]:
        done: list[Any] = []
        pending: deque[tuple[int, Future[Any]]] = deque()

        def settle(number: int, future: Future[Any]) -> None:
            done.append({"PartNumber": number, "ETag": future.result()["ETag"]})

        with ThreadPoolExecutor(self._max_in_flight, thread_name_prefix="s3-part") as pool:
            try:
                for number, body in enumerate(parts, start=1):
                    call = self._call
                    pending.append(
                        (
                            number,
                            pool.submit(
                                call,
                                self._client.upload_part,
                                Key=key,
                                UploadId=upload,
                                PartNumber=number,
                                Body=body,
                            ),
                        )
                    )
                    # Bounded memory: wait for the oldest part before reading more.
                    while len(pending) >= self._max_in_flight:
                        settle(*pending.popleft())
                while pending:
                    settle(*pending.popleft())
            finally:
                for _, future in pending:
                    future.cancel()
        return done

    def get(self, blob_id: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        key = self._key(blob_id)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidInput(f"bad range: offset {offset}, length {length}")
        extra: dict[str, Any] = {}
        if length == 0:
            self._call(self._client.head_object, Key=key)
            return iter(())
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            extra["Range"] = f"bytes={offset}-{last}"
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise BlobNotFound("no such blob") from None
            if _code(exc) == "InvalidRange":  # the offset is past the end: nothing to read
                return iter(())
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        return self._chunks(response["Body"])

    def _chunks(self, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(_READ_SIZE)
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        finally:
            body.close()

    def delete(self, blob_id: str) -> None:
        key = self._key(blob_id)
        # Every version and delete marker: on a versioned bucket a plain DELETE only hides the
        # object, leaving the ciphertext in older versions.
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=key
        )
        try:
            for page in pages:
                for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if version.get("Key") == key and "VersionId" in version:
                        self._call(
                            self._client.delete_object, Key=key, VersionId=version["VersionId"]
                        )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None
        if self.exists(blob_id):  # a store that does not list versions: delete plainly
            self._call(self._client.delete_object, Key=key)

    def exists(self, blob_id: str) -> bool:
        try:
            self._call(self._client.head_object, Key=self._key(blob_id))
        except BlobNotFound:
            return False
        return True

    def list_blobs(self) -> Iterator[BlobInfo]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if is_blob_id(name):
                        yield BlobInfo(
                            blob_id=name, size=item["Size"], modified=item["LastModified"]
                        )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None

    def remove_incomplete(self, older_than: datetime) -> int:
        prefix = f"{self.prefix}/" if self.prefix else ""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        removed = 0
        try:
            for page in pages:
                for upload in page.get("Uploads", []):
                    if (
                        is_blob_id(upload["Key"][len(prefix) :])
                        and upload["Initiated"] < older_than
                    ):
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None
        return removed


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[_Part]:
    """Whole chunks grouped into parts of at least ``size`` bytes (the last may be smaller).

    Chunks are neither split nor copied: S3 does not need equal parts, and a part is read
    straight from its chunks (bounded memory without a second copy of every byte).
    """
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield _Part(pending)
            pending, held = [], 0
    if pending:
        yield _Part(pending)


class _Part(io.RawIOBase):
    """A seekable, read-only file over a list of chunks: an upload body without copying them."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self._size = sum(len(c) for c in chunks)
        self._position = 0
        self._index = 0  # chunk holding the position
        self._within = 0  # offset in that chunk

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = min(max(base + offset, 0), self._size)
        self._index, self._within = 0, self._position
        while self._index < len(self._chunks) and self._within >= len(self._chunks[self._index]):
            self._within -= len(self._chunks[self._index])
            self._index += 1
        return self._position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        written = 0
        while written < len(target) and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            n = min(len(target) - written, len(chunk) - self._within)
            target[written : written + n] = chunk[self._within : self._within + n]
            written += n
            self._within += n
            if self._within == len(chunk):
                self._index, self._within = self._index + 1, 0
        self._position += written
        return written


def _prepend(head: list[_Part], rest: Iterator[_Part]) -> Iterator[_Part]:
    while head:
        yield head.pop(0)
    yield from rest

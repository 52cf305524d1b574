"""One suite for every blob store: the local folder and S3 (on SeaweedFS) must behave alike."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import (
    BlobNotFound,
    InvalidInput,
    KeyStore,
    LocalFolderStore,
    S3Store,
    StorageUnavailable,
    Vault,
)
from storage.backend import BlobStore, new_blob_id

from .conftest import chunked

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def blob_id(n: int) -> str:
    return os.urandom(16).hex() if n < 0 else f"{n:032x}"


def leftovers(store: BlobStore) -> list[str]:
    """Anything an interrupted write could have left: files on disk, or pending S3 uploads."""
    if isinstance(store, LocalFolderStore):
        return [str(p) for p in store.root.rglob("*") if not p.is_dir()]
    assert isinstance(store, S3Store)
    client: Any = store._client
    uploads = client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    objects = client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return [u["Key"] for u in uploads.get("Uploads", [])] + [
        o["Key"] for o in objects.get("Contents", [])
    ]


@pytest.mark.parametrize("size", [0, 1, 5000, 20 * MiB + 3], ids=lambda n: f"{n}B")
def test_put_get_round_trip(backend: BlobStore, size: int) -> None:
    data = os.urandom(size)
    name = blob_id(-1)
    backend.put(name, chunked(data, MiB))
    assert backend.exists(name)
    assert b"".join(backend.get(name)) == data
    assert [(b.blob_id, b.size) for b in backend.list_blobs()] == [(name, size)]


def test_ranged_get(backend: BlobStore) -> None:
    data = os.urandom(10_000)
    name = blob_id(-1)
    backend.put(name, [data])
    assert b"".join(backend.get(name, 100)) == data[100:]
    assert b"".join(backend.get(name, 100, 50)) == data[100:150]
    assert b"".join(backend.get(name, 9_990, 50)) == data[9_990:]
    assert b"".join(backend.get(name, 20_000)) == b""
    assert b"".join(backend.get(name, 5, 0)) == b""


def test_missing_blob(backend: BlobStore) -> None:
    name = blob_id(-1)
    assert not backend.exists(name)
    with pytest.raises(BlobNotFound):
        backend.get(name)  # raised at the call, not on first iteration
    backend.delete(name)  # idempotent


def test_delete_is_idempotent(backend: BlobStore) -> None:
    name = blob_id(-1)
    backend.put(name, [b"sealed bytes"])
    backend.delete(name)
    backend.delete(name)
    assert not backend.exists(name)
    assert list(backend.list_blobs()) == []
    with pytest.raises(BlobNotFound):
        backend.get(name)


def test_listing_reports_every_blob(backend: BlobStore) -> None:
    names = sorted(blob_id(-1) for _ in range(5))
    before = datetime.now(UTC) - timedelta(minutes=1)
    for name in names:
        backend.put(name, [name.encode()])
    listed = sorted(backend.list_blobs(), key=lambda b: b.blob_id)
    assert [b.blob_id for b in listed] == names
    assert all(b.size == 32 and b.modified > before for b in listed)


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "A" * 32, "", "0" * 31, "0" * 33, "ab/" + "0" * 29, "0" * 31 + "\n"]
)
def test_only_generated_ids_are_accepted(backend: BlobStore, bad: str) -> None:
    for call in (
        lambda: backend.put(bad, [b"x"]),
        lambda: backend.get(bad),
        lambda: backend.delete(bad),
        lambda: backend.exists(bad),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert list(backend.list_blobs()) == []


class Boom(Exception):
    pass


def test_exception_mid_stream_leaves_nothing(backend: BlobStore) -> None:
    name = blob_id(-1)

    def failing() -> Iterator[bytes]:
        for _ in range(20):  # 20 MiB: past the first S3 part, so a multipart upload is under way
            yield os.urandom(MiB)
        raise Boom("the client went away")

    with pytest.raises(Boom):
        backend.put(name, failing())
    assert not backend.exists(name)
    assert list(backend.list_blobs()) == []
    assert leftovers(backend) == []


def test_vault_write_interrupted_leaves_nothing(backend: BlobStore, keystore: KeyStore) -> None:
    vault = Vault(backend, keystore)
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="D")

    def failing() -> Iterator[bytes]:
        yield os.urandom(12 * MiB)
        raise Boom("upload cut")

    with pytest.raises(Boom):
        vault.write(key, failing())
    assert leftovers(backend) == []


def test_killed_writer_leaves_nothing_visible_and_no_orphan(
    backend: BlobStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if isinstance(backend, LocalFolderStore):
        target = ["local", str(backend.root)]
    else:
        assert isinstance(backend, S3Store)
        server = request.getfixturevalue("s3_server")
        target = ["s3", server.endpoint_url, backend.bucket, backend.prefix]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.interrupted_writer", str(tmp_path / "k"), *target],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"streaming\n"
        time.sleep(0.5)  # let uploads of the parts streamed so far land
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert list(backend.list_blobs()) == []
    if isinstance(backend, LocalFolderStore):
        assert leftovers(backend) == []  # an O_TMPFILE file dies with its process
    else:
        assert len(leftovers(backend)) == 1  # an invisible incomplete multipart upload ...
        assert backend.remove_incomplete(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert backend.remove_incomplete(datetime.now(UTC) + timedelta(minutes=1)) == 1
        assert leftovers(backend) == []  # ... that the sweep clears


def test_vault_destroy_removes_the_blob(backend: BlobStore, keystore: KeyStore) -> None:
    vault = Vault(backend, keystore, segment_size=4096)
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="D")
    data = os.urandom(50_000)
    stored = vault.write(key, chunked(data, 3000))
    assert (
        b"".join(vault.read(key, stored.blob_id, start=10_000, end=20_000)) == data[10_000:20_000]
    )
    vault.destroy_document(stored.blob_id)
    vault.destroy_document(stored.blob_id)
    assert not backend.exists(stored.blob_id)
    with pytest.raises(BlobNotFound):
        vault.read(key, stored.blob_id)


def test_check_passes_on_a_usable_store(backend: BlobStore) -> None:
    backend.check()


def test_check_names_a_missing_folder(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "nowhere")
    with pytest.raises(StorageUnavailable, match=r"nowhere.*does not exist"):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.put(blob_id(-1), [b"x"])


def test_check_names_a_missing_bucket(s3_server: Any) -> None:
    store = S3Store(s3_server.client(), "no-such-bucket-here")
    with pytest.raises(StorageUnavailable, match="no-such-bucket-here"):
        store.check()


def test_check_names_an_unreachable_endpoint() -> None:
    import boto3
    from botocore.config import Config

    from tests.harness.ports import free_port

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(StorageUnavailable, match="cannot be used"):
        S3Store(client, "bucket").check()


def test_delete_removes_every_version_on_a_versioned_bucket(s3_server: Any) -> None:
    client = s3_server.client()
    bucket = "versioned-" + os.urandom(4).hex()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = S3Store(client, bucket, "blobs")
    name = blob_id(-1)
    store.put(name, [b"first version"])
    store.put(name, [b"second version"])
    versions = client.list_object_versions(Bucket=bucket, Prefix=f"blobs/{name}")
    assert len(versions.get("Versions", [])) == 2
    store.delete(name)
    after = client.list_object_versions(Bucket=bucket, Prefix=f"blobs/{name}")
    assert after.get("Versions", []) == [] and after.get("DeleteMarkers", []) == []
    store.delete(name)  # idempotent, and adds no delete marker
    again = client.list_object_versions(Bucket=bucket, Prefix=f"blobs/{name}")
    assert again.get("Versions", []) == [] and again.get("DeleteMarkers", []) == []


def test_s3_multipart_memory_is_bounded(make_s3_store: Any) -> None:
    store = make_s3_store(part_size=5 * MiB, max_in_flight=2)
    data = os.urandom(23 * MiB)  # five parts, at most two in flight
    name = blob_id(-1)
    store.put(name, chunked(data, 700_000))
    assert b"".join(store.get(name)) == data


def test_local_files_are_private(local_store: LocalFolderStore) -> None:
    name = blob_id(-1)
    local_store.put(name, [b"sealed"])
    path = local_store.root / name[:2] / name
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_local_store_does_not_follow_symlinks_out_of_its_root(
    local_store: LocalFolderStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = "ab" + "0" * 30
    (local_store.root / "ab").symlink_to(outside)  # planted: the fan-out folder points outside
    with pytest.raises(StorageUnavailable):
        local_store.put(name, [b"x"])
    (outside / name).write_bytes(b"planted")
    with pytest.raises((BlobNotFound, OSError)):
        b"".join(local_store.get(name))
    assert not local_store.exists(name)
    assert list(local_store.list_blobs()) == []
    assert [p.name for p in outside.iterdir()] == [name]


def test_local_store_without_o_tmpfile(
    local_store: LocalFolderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_TMPFILE")  # a file system without it: named temporary files
    name = blob_id(-1)
    local_store.put(name, [b"content"])
    assert b"".join(local_store.get(name)) == b"content"

    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise Boom()

    with pytest.raises(Boom):
        local_store.put(blob_id(-1), failing())
    assert [p.name for p in local_store.root.rglob("*") if p.is_file()] == [name]
    stale = local_store.root / name[:2] / ".tmp-left-by-a-dead-process"
    stale.write_bytes(b"x")
    assert local_store.remove_incomplete(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert local_store.remove_incomplete(datetime.now(UTC) + timedelta(minutes=1)) == 1
    assert not stale.exists()


def test_a_durable_local_write_starts_the_disk_on_each_stretch_before_its_fsync(
    local_store: LocalFolderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import localfolder

    calls: list[tuple[str, int, int]] = []
    fadvise, fsync = os.posix_fadvise, os.fsync

    def recording(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        calls.append(("fadvise", offset, length))
        fadvise(fd, offset, length, advice)

    def syncing(fd: int) -> None:
        calls.append(("fsync", fd, 0))
        fsync(fd)

    stretch = 100_000
    monkeypatch.setattr(localfolder, "_WRITEBACK_BYTES", stretch)
    monkeypatch.setattr(os, "posix_fadvise", recording)
    monkeypatch.setattr(os, "fsync", syncing)
    data = os.urandom(1_000_000)
    blob_id = new_blob_id(os.urandom)
    local_store.put(blob_id, chunked(data, 30_000))
    written = calls[:]  # the write's (reading it back lets go of pages too)
    assert b"".join(local_store.get(blob_id)) == data
    dropped = written.index(("fadvise", 0, 0))
    during = [(at, at + length) for kind, at, length in written[:dropped] if kind == "fadvise"]
    # While writing: each stretch as soon as it is complete (the tail is left to the fsync),
    # with the two stretches before it, whose pages can leave the cache once on disk.
    ends = [end for _, end in during]
    assert during and all(b - a >= stretch for a, b in itertools.pairwise([0, *ends]))
    assert ends[-1] > len(data) - stretch - 30_000
    starts = [max(0, end - 2 * stretch) for end in [0, *ends[:-1]]]
    assert [start for start, _ in during] == starts
    # Once the blob's fsync is done, the whole file (length 0: to its end) leaves the cache.
    assert written[dropped - 1][0] == "fsync"
    assert [kind for kind, *_ in written[dropped + 1 :]] == ["fsync"]  # the folder's


def resident_pages(path: Path) -> int:
    """Pages of a file in the page cache: mincore(2) on a read-only mapping of it."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    vector = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
    with open(path, "rb") as file:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, file.fileno(), 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            libc.munmap(address, size)
    return sum(v & 1 for v in vector)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page cache advice is Linux's")
def test_a_durable_local_blob_does_not_stay_in_the_page_cache(
    local_store: LocalFolderStore,
) -> None:
    data = os.urandom(4 * 1024 * 1024)
    blob_id = new_blob_id(os.urandom)
    local_store.put(blob_id, chunked(data, 65536))
    path = local_store.root / blob_id[:2] / blob_id
    assert resident_pages(path) <= 1  # written, on disk, and out of memory
    assert b"".join(local_store.get(blob_id)) == data  # read back from the disk


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page cache advice is Linux's")
def test_a_long_read_lets_go_of_the_pages_it_read_and_a_short_one_keeps_them(
    local_store: LocalFolderStore,
) -> None:
    from storage.localfolder import _WRITEBACK_BYTES as STRETCH

    # Whole stretches: the page cache keeps a file in blocks of up to 2 MiB, and lets go of a
    # block only if the range asked for covers all of it.
    data = os.urandom(3 * STRETCH + 12345)  # and a tail that ends inside the cache's last block
    blob_id = new_blob_id(os.urandom)
    local_store.put(blob_id, chunked(data, 1024 * 1024))
    path = local_store.root / blob_id[:2] / blob_id
    everything = resident_pages_after_reading(path)
    assert everything == -(-len(data) // 4096)
    # A range shorter than a stretch (a look inside a zip): the cache is left as it was.
    short = slice(STRETCH, STRETCH + STRETCH // 4)
    assert b"".join(local_store.get(blob_id, short.start, short.stop - short.start)) == data[short]
    assert resident_pages(path) == everything
    # The whole blob (a download, a scan): read, checked, and out of memory.
    assert b"".join(local_store.get(blob_id)) == data
    assert resident_pages(path) == 0
    # A long read lets go as it goes; given up, it has let go of what it read and nothing else.
    resident_pages_after_reading(path)
    reading = local_store.get(blob_id)
    read = b"".join(next(reading) for _ in range(2 * STRETCH // (1024 * 1024)))
    assert read == data[: 2 * STRETCH]
    assert resident_pages(path) == everything - 2 * STRETCH // 4096
    reading.close()  # type: ignore[attr-defined]
    assert resident_pages(path) == everything - 2 * STRETCH // 4096


def resident_pages_after_reading(path: Path) -> int:
    """Read the file the ordinary way (into the page cache); then its resident pages."""
    with open(path, "rb") as file:
        while file.read(1024 * 1024):
            pass
    return resident_pages(path)

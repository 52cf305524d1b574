"""Benchmark of storage/: sealed write and open read against plain I/O of the same bytes.

    python bench/storage.py [--size-mib 1024]

Starts its own SeaweedFS (tests/harness/seaweedfs.py), then measures, on the local folder and on
S3, a sealed write (``Vault.write``) and an open read (``Vault.read``) against a plain write/read
(file write + fsync / boto3 ``upload_fileobj``; file read / boto3 ``download_fileobj``) of the same
bytes in the same run, and the peak RSS of a child process sealing and opening 100 MiB vs the full
size. Prints the figures and writes bench/results/storage.json.

Targets (issue 3): local sealed write >= 0.6x plain, S3 sealed upload >= 0.8x plain boto3 upload,
peak RSS < 100 MiB and independent of size.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from storage import KeyStore, LocalFolderStore, S3Store, Vault  # noqa: E402

MiB = 1024 * 1024
RESULTS = REPO / "bench" / "results" / "storage.json"
_POOL = [os.urandom(MiB) for _ in range(4)]  # incompressible, without generating 1 GiB of it


def s3_client(endpoint: str) -> Any:
    # As tests/harness/seaweedfs.py, without importing pytest into the measured child.
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="portal-bench",
        aws_secret_access_key="portal-bench-secret",  # noqa: S106 (SeaweedFS takes any)
        config=Config(s3={"addressing_style": "path"}),
    )


def plaintext(size_mib: int) -> Iterator[bytes]:
    for i in range(size_mib):
        yield _POOL[i % len(_POOL)]


class _StreamReader(io.RawIOBase):
    """A read-only file over the chunk iterator, for boto3's upload_fileobj."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            self._buffer = next(self._chunks, b"")
            if not self._buffer:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_pair(
    plain: Callable[[], Any], sealed: Callable[[], Any], reset: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Best times of ``plain`` and ``sealed``, run alternately, each from the same clean state."""
    times: dict[str, list[float]] = {"plain": [], "sealed": []}
    for _ in range(repeat):
        for name, action in (("plain", plain), ("sealed", sealed)):
            reset()
            os.sync()  # nobody pays for the previous run's dirty pages
            times[name].append(timed(action))
    return min(times["plain"]), min(times["sealed"])


def drain(chunks: Iterator[bytes]) -> int:
    return sum(len(c) for c in chunks)


def make_vault(store: Any, folder: Path) -> tuple[Vault, Any]:
    keystore = KeyStore(folder / "keys")
    keystore.create()
    vault = Vault(store, keystore)
    vault.create_review_key("BENCH")
    return vault, vault.issue_document_key(review="BENCH", document_id="DOC-BENCH")


def bench_local(size_mib: int, folder: Path, repeat: int) -> dict[str, float]:
    store = LocalFolderStore(folder / "blobs")
    store.create()
    vault, key = make_vault(store, folder)
    plain_path = folder / "plain.bin"

    def plain_write() -> None:
        with open(plain_path, "wb", buffering=0) as f:
            for chunk in plaintext(size_mib):
                f.write(chunk)
            os.fsync(f.fileno())

    def plain_read() -> None:
        with open(plain_path, "rb", buffering=0) as f:
            while f.read(MiB):
                pass

    blob_ids: list[str] = []

    def sealed_write() -> None:
        blob_ids.append(vault.write(key, plaintext(size_mib)).blob_id)

    def reset() -> None:
        plain_path.unlink(missing_ok=True)
        while blob_ids:
            store.delete(blob_ids.pop())

    plain_write_s, sealed_write_s = best_pair(plain_write, sealed_write, reset, repeat)
    plain_write()
    sealed_write()
    plain_read_s, sealed_read_s = best_pair(
        plain_read, lambda: drain(vault.read(key, blob_ids[-1])), lambda: None, repeat
    )
    reset()
    return {
        "plain_write_s": plain_write_s,
        "sealed_write_s": sealed_write_s,
        "plain_read_s": plain_read_s,
        "sealed_read_s": sealed_read_s,
    }


def bench_s3(size_mib: int, folder: Path, endpoint: str, repeat: int) -> dict[str, float]:
    client = s3_client(endpoint)
    client.create_bucket(Bucket="bench")
    store = S3Store(client, "bench", "sealed")
    vault, key = make_vault(store, folder)

    def plain_upload() -> None:
        client.upload_fileobj(_StreamReader(plaintext(size_mib)), "bench", "plain/object")

    def plain_download() -> None:
        sink = _Sink()
        client.download_fileobj("bench", "plain/object", sink)
        assert sink.size == size_mib * MiB

    blob_ids: list[str] = []

    def sealed_upload() -> None:
        blob_ids.append(vault.write(key, plaintext(size_mib)).blob_id)

    def reset() -> None:
        client.delete_object(Bucket="bench", Key="plain/object")
        while blob_ids:
            store.delete(blob_ids.pop())

    plain_write_s, sealed_write_s = best_pair(plain_upload, sealed_upload, reset, repeat)
    plain_upload()
    sealed_upload()
    plain_read_s, sealed_read_s = best_pair(
        plain_download, lambda: drain(vault.read(key, blob_ids[-1])), lambda: None, repeat
    )
    reset()
    return {
        "plain_write_s": plain_write_s,
        "sealed_write_s": sealed_write_s,
        "plain_read_s": plain_read_s,
        "sealed_read_s": sealed_read_s,
    }


def child_rss(target: str, size_mib: int, endpoint: str) -> None:
    """In a child process: seal and open ``size_mib``, print the peak RSS in MiB."""
    folder = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    if target == "local":
        store: Any = LocalFolderStore(folder / "blobs")
        store.create()
    else:
        store = S3Store(s3_client(endpoint), "bench", f"rss-{os.getpid()}")
    vault, key = make_vault(store, folder)
    stored = vault.write(key, plaintext(size_mib))
    assert drain(vault.read(key, stored.blob_id)) == size_mib * MiB
    store.delete(stored.blob_id)
    print(json.dumps({"peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """VmHWM of this process. Not ru_maxrss: Linux carries that over from the parent across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_rss(target: str, size_mib: int, endpoint: str) -> float:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-rss",
            target,
            "--size-mib",
            str(size_mib),
            "--endpoint",
            endpoint,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_mib"])


def ratios(figures: dict[str, float], size_mib: int) -> dict[str, float]:
    out = dict(figures)
    for kind in ("write", "read"):
        out[f"plain_{kind}_mib_s"] = size_mib / figures[f"plain_{kind}_s"]
        out[f"sealed_{kind}_mib_s"] = size_mib / figures[f"sealed_{kind}_s"]
        out[f"{kind}_ratio"] = figures[f"plain_{kind}_s"] / figures[f"sealed_{kind}_s"]
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best is kept")
    parser.add_argument("--child-rss", choices=["local", "s3"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_rss(args.child_rss, args.size_mib, args.endpoint)
        return

    from tests.harness.seaweedfs import stop_process
    from tests.harness.waiting import wait_for_listener

    work = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=REPO / "bench"))
    (work / "weed").mkdir()
    weed, endpoint = start_seaweedfs(work / "weed")
    try:
        wait_for_listener(int(endpoint.rsplit(":", 1)[1]), timeout=60, what="SeaweedFS")
        _wait_writable(endpoint)
        size = args.size_mib
        print(f"sealing {size} MiB; best of {args.repeat} runs each")
        local = ratios(bench_local(size, work / "local", args.repeat), size)
        print_figures("local folder", local)
        s3 = ratios(bench_s3(size, work / "s3", endpoint, args.repeat), size)
        print_figures("SeaweedFS S3", s3)
        small = min(100, size)
        rss = {
            f"{target}_{n}mib": measure_rss(target, n, endpoint)
            for target in ("local", "s3")
            for n in (small, size)
        }
        print("peak RSS (child process, MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in rss.items()))
    finally:
        stop_process(weed)
        subprocess.run(["rm", "-rf", str(work)], check=False)
    result = {
        "size_mib": size,
        "segment_size": 1024 * 1024,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "local": local,
        "s3": s3,
        "peak_rss_mib": rss,
        "targets": {
            "local_write_ratio_min": 0.6,
            "s3_write_ratio_min": 0.8,
            "peak_rss_mib_max": 100,
        },
        "targets_met": {
            "local_write": local["write_ratio"] >= 0.6,
            "s3_write": s3["write_ratio"] >= 0.8,
            "peak_rss": max(rss.values()) < 100,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {result['targets_met']}\nwrote {RESULTS.relative_to(REPO)}")


def print_figures(name: str, f: dict[str, float]) -> None:
    print(
        f"{name}: write plain {f['plain_write_mib_s']:.0f} MiB/s, sealed "
        f"{f['sealed_write_mib_s']:.0f} MiB/s (ratio {f['write_ratio']:.2f}); read plain "
        f"{f['plain_read_mib_s']:.0f} MiB/s, sealed {f['sealed_read_mib_s']:.0f} MiB/s "
        f"(ratio {f['read_ratio']:.2f})"
    )


def start_seaweedfs(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """As tests/harness/seaweedfs.py's ``start_seaweedfs``, plus ``-s3.port.lance=0``.

    SeaweedFS 4.x also opens a Lance listener on the fixed port 9101, so a second server on the
    machine (a test run at the same time) dies at start-up; the harness does not disable it yet.
    """
    from tests.harness.ports import free_port
    from tests.harness.seaweedfs import weed_binary

    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    command = [
        weed_binary(), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-filer", "-s3", "-master.telemetry=false", "-master.volumeSizeLimitMB=1024",
        "-volume.max=0", "-volume.preStopSeconds=1", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-debug.port={free_port()}", f"-iam.port={free_port()}", f"-metricsPort={free_port()}",
    ]  # fmt: skip
    for name in ports:
        command += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
    with open(folder / "weed.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{ports['s3']}"


def _wait_writable(endpoint: str, timeout: float = 60) -> None:
    client = s3_client(endpoint)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_bucket(Bucket="bench-probe")
            client.put_object(Bucket="bench-probe", Key="probe", Body=b"ok")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


if __name__ == "__main__":
    main()

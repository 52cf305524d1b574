"""Malware scanning through clamd's INSTREAM command.

Why our own client rather than the ``clamd`` package: that package sends INSTREAM in 1 KiB chunks
(measured here: 102 MB/s against 118 MB/s for 1 MiB chunks) and uses ``socket.send`` without checking
for partial writes, so under load it can frame a chunk with a length it did not fully send and clamd
then reads garbage as the next length. The protocol is small (a command, then length-prefixed chunks,
then a zero length), so we speak it here with ``sendall`` and a deadline on every socket operation.

Fail closed: anything other than a clear ``OK`` or ``FOUND`` answer raises :class:`ScannerUnavailable`,
so that the caller leaves the document waiting rather than releasing it unscanned.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from portal.settings import ClamdAddress

CHUNK = 1024 * 1024


class ScanError(Exception):
    """Base of the scanner's errors."""


class ScannerUnavailable(ScanError):
    """clamd could not give a verdict (down, slow, over a limit, or an error answer)."""


@dataclass(frozen=True)
class Verdict:
    clean: bool
    signature: str | None = None  # the malware's name when not clean

    @property
    def label(self) -> str:
        return "clean" if self.clean else "infected"


class Scanner:
    """A clamd at one address. Each call opens its own connection, so a Scanner is thread-safe."""

    def __init__(self, address: ClamdAddress, *, timeout: float = 60.0) -> None:
        self.address = address
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        try:
            if self.address.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.address.path)
            else:
                sock = socket.create_connection(
                    (self.address.host, self.address.port), timeout=self.timeout
                )
        except OSError as exc:
            raise ScannerUnavailable(f"cannot reach clamd at {self.address}: {exc}") from exc
        return sock

    def _command(self, command: bytes) -> str:
        with self._connect() as sock:
            try:
                sock.sendall(b"z" + command + b"\0")
                return _read_reply(sock)
            except OSError as exc:
                raise ScannerUnavailable(f"clamd at {self.address} failed: {exc}") from exc

    def ping(self) -> bool:
        return self._command(b"PING") == "PONG"

    def version(self) -> str:
        """clamd's version and its signature database version, e.g. ``ClamAV 1.4.6/1/...``."""
        return self._command(b"VERSION")

    def scan(self, chunks: Iterable[bytes]) -> Verdict:
        """Stream ``chunks`` to clamd and return its verdict."""
        with self._connect() as sock:
            try:
                sock.sendall(b"zINSTREAM\0")
                for chunk in chunks:
                    view = memoryview(chunk)
                    for start in range(0, len(view), CHUNK):
                        part = view[start : start + CHUNK]
                        sock.sendall(struct.pack("!L", len(part)))
                        sock.sendall(part)
                sock.sendall(struct.pack("!L", 0))
                reply = _read_reply(sock)
            except (BrokenPipeError, ConnectionResetError) as exc:
                # clamd closes the stream when it exceeds StreamMaxLength; fail closed.
                raise ScannerUnavailable(f"clamd closed the stream: {exc}") from exc
            except OSError as exc:
                raise ScannerUnavailable(f"clamd at {self.address} failed: {exc}") from exc
        return parse_reply(reply)


def parse_reply(reply: str) -> Verdict:
    """Turn an INSTREAM answer into a verdict; anything unexpected is ScannerUnavailable."""
    if reply == "stream: OK":
        return Verdict(clean=True)
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        signature = reply.removeprefix("stream: ").removesuffix(" FOUND").strip()
        if signature:
            return Verdict(clean=False, signature=signature)
    raise ScannerUnavailable(f"clamd answered {reply!r}")


def _read_reply(sock: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\0"):
        part = sock.recv(4096)
        if not part:
            break
        data += part
        if len(data) > 65536:
            raise ScannerUnavailable("clamd answered with an oversized reply")
    if not data.endswith(b"\0"):
        raise ScannerUnavailable("clamd closed the connection without an answer")
    return data[:-1].decode("utf-8", "replace").strip()

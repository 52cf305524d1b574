"""A clamd that answers badly: a real socket server speaking clamd's protocol, with chosen answers.

The real clamd (tests/harness/clamd.py) only ever answers well: ``stream: OK`` or ``… FOUND``. What
the portal's client (portal/scanning.py) must never take for "clean" is everything else a scanner,
a proxy in front of it or a broken network can send: an ``ERROR`` line, garbled bytes, an empty
answer, a connection closed without one, a clear answer with junk before it, a reply that never
ends, or no answer at all. This fake speaks the protocol as clamd does (docs: clamd(8), "INSTREAM")

* a command is ``z`` + name + NUL (or ``n`` + name + newline); replies end the same way;
* ``INSTREAM`` is followed by chunks, each a 4-byte big-endian length then that many bytes, and a
  zero length ends the stream; only then does clamd answer;
* ``PING`` answers ``PONG``; an unknown command answers ``UNKNOWN COMMAND``;

and then, instead of a verdict, sends whatever ``answer`` says. It records every stream it received,
so that a test can also check that the client framed the bytes correctly.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from portal.settings import ClamdAddress

# What the fake can answer to INSTREAM, by name. Bytes are sent as they are, then the connection
# closes; the two special values below behave instead of sending.
HANG = "hang"  # read the whole stream, then never answer (until the test ends)
RESET = "reset"  # read the whole stream, then close with a TCP reset
ANSWERS: dict[str, bytes | str] = {
    "ok": b"stream: OK\0",
    "found": b"stream: Eicar-Test-Signature FOUND\0",
    # What clamd itself sends when a stream is over StreamMaxLength, and for an internal error.
    "size_limit_error": b"INSTREAM size limit exceeded. ERROR\0",
    "error_line": b"stream: Can't allocate memory ERROR\0",
    "bare_error": b"ERROR\0",
    "garbled": b"\xff\xfe\x9c\x80\x07\x1b[31m\0",
    "empty_reply": b"\0",
    "closed_without_answer": b"",
    "ok_without_terminator": b"stream: OK",
    "junk_then_ok": b"garbage\x01stream: OK\0",
    "ok_then_junk": b"stream: OK trailing\0",
    "lowercase_ok": b"stream: ok\0",
    "found_without_a_name": b"stream:  FOUND\0",
    "other_command_reply": b"PONG\0",
    "oversized": b"A" * 70_000,
    "hang": HANG,
    "reset": RESET,
}
BAD_ANSWERS = tuple(name for name in ANSWERS if name not in ("ok", "found"))


class FakeClamd(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: str = "ok") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.streams: list[bytes] = []  # each INSTREAM's bytes, reassembled
        self.commands: list[bytes] = []
        self.released = threading.Event()  # ends a hanging answer
        self.ping_answers_badly = False  # True: PING gets ``answer`` too, instead of PONG

    @property
    def address(self) -> ClamdAddress:
        return ClamdAddress(kind="tcp", host="127.0.0.1", port=int(self.server_address[1]))


class _Handler(socketserver.BaseRequestHandler):
    def _exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            part = self.request.recv(size - len(data))
            if not part:
                raise ConnectionError("the client went away")
            data += part
        return bytes(data)

    def _command(self) -> tuple[bytes, bytes]:
        """The command's name and the terminator its replies must end with."""
        first = self._exactly(1)
        end = {b"z": b"\0", b"n": b"\n"}.get(first)
        if end is None:
            return b"", b"\0"
        name = bytearray()
        while not name.endswith(end):
            name += self._exactly(1)
            if len(name) > 64:
                return b"", end
        return bytes(name[:-1]), end

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, FakeClamd)
        try:
            name, end = self._command()
        except ConnectionError:
            return
        server.commands.append(name)
        if name == b"PING":
            if server.ping_answers_badly:
                self._reply(server)
            else:
                self.request.sendall(b"PONG" + end)
            return
        if name != b"INSTREAM":
            self.request.sendall(b"UNKNOWN COMMAND" + end)
            return
        received = bytearray()
        try:
            while size := struct.unpack("!L", self._exactly(4))[0]:
                received += self._exactly(size)
        except ConnectionError:
            return
        server.streams.append(bytes(received))
        self._reply(server)

    def _reply(self, server: FakeClamd) -> None:
        answer = ANSWERS[server.answer]
        if answer == HANG:
            server.released.wait()
        elif answer == RESET:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
        else:
            assert isinstance(answer, bytes)
            if answer:
                self.request.sendall(answer)


@contextmanager
def fake_clamd(answer: str = "ok") -> Iterator[FakeClamd]:
    """A fake clamd on a loopback port for the ``with`` block; ``server.answer`` may be changed."""
    server = FakeClamd(answer)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

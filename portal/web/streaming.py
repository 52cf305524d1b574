"""Bytes written by blocking code in a thread, sent to the browser as they come.

A writer such as ``audit.export_log`` writes to a file object; an export of a large log must not
be held in memory whole, nor spooled to disk. A bounded queue between a worker thread and the response keeps at most
a few chunks in memory, and a browser that goes away stops the writer (its next write raises).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
DEPTH = 8  # chunks in flight at most
_END = object()


class ClientGone(Exception):
    """The reader stopped: the writer gives up (and its caller records the failure)."""


class _Pipe:
    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)
        self._buffer = bytearray()
        self.closed = threading.Event()

    # Writer side (the worker thread): a minimal binary file.
    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def finish(self, error: BaseException | None) -> None:
        if error is None and self._buffer:
            self._put(bytes(self._buffer))
        self._put(error if error is not None else _END)

    def _put(self, item: Any) -> None:
        while True:
            if self.closed.is_set():
                raise ClientGone()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    # Reader side.
    def get(self) -> Any:
        # With a timeout: a reader cancelled while waiting must not leave this thread blocked.
        while not self.closed.is_set():
            try:
                return self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
        return _END


async def stream_from_thread(work: Callable[[Any], object]) -> AsyncIterator[bytes]:
    """Run ``work(out)`` in a thread and yield what it writes to ``out``.

    An exception in ``work`` ends the stream early (the browser sees a cut-off download, which an
    export's seal exposes anyway); it is not re-raised here, where the response has begun.
    """
    pipe = _Pipe()

    def run() -> None:
        error: BaseException | None = None
        try:
            work(pipe)
        except BaseException as exc:  # handed to the reader, which stops
            error = exc
            if not isinstance(exc, ClientGone):
                log.exception("a streamed response failed while it was being written")
        with contextlib.suppress(ClientGone):
            pipe.finish(error)

    thread = threading.Thread(target=run, name="streamed-response", daemon=True)
    thread.start()
    try:
        while True:
            item = await run_in_threadpool(pipe.get)
            if item is _END or isinstance(item, BaseException):
                return
            yield item
    finally:
        pipe.closed.set()

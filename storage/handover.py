"""Chunks read ahead on an event loop and consumed, as a plain iterator, by a worker thread.

An async writer (a request body) feeds a blocking one (sealing and storing in a thread). Pulling
each chunk from the thread stalls both sides: while the thread seals and writes, nobody reads the
socket, and while the loop waits for the socket, the thread idles. Here a task on the loop
(``fill``) keeps reading into a bounded buffer while the thread consumes it, so both run at once.

The bound (``limit`` bytes held, and always at least one chunk) keeps memory constant whatever
the size. Each side wakes the other only past a mark (the consumer once a quarter of the limit
is waiting for it, the reader once the buffer is half empty), not for every chunk: a wake-up per
chunk of tens of KiB handed the GIL back and forth thousands of times a second. An exception raised by the source reaches the consumer unchanged, at the point in the
stream where it happened: everything before it has been consumed first, nothing after it exists.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Iterator


class Abandoned(Exception):
    """The hand-over was cancelled: the consumer must stop and keep nothing."""


class _End:
    pass


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = _End()


def _take(items: deque[bytes | _End | _Failure]) -> bytes | None:
    """The first chunk, taken off; None at the end (which stays); a failure is raised."""
    item = items[0]
    if isinstance(item, _End):
        return None
    if isinstance(item, _Failure):
        raise item.error
    items.popleft()
    return item


class Handover(Iterator[bytes]):
    """Fed on the loop by ``fill``; iterated in one worker thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._items: deque[bytes | _End | _Failure] = deque()
        self._held = 0
        self._ready = threading.Condition(threading.Lock())
        self._space = asyncio.Event()
        self._filler_waits = False
        self._abandoned = False

    async def fill(self, chunks: AsyncIterable[bytes]) -> None:
        """Read ``chunks`` into the buffer until they end, fail, or the hand-over is abandoned."""
        try:
            async for chunk in chunks:
                while (taken := self._offer(chunk)) is False:
                    await self._space.wait()
                if taken is None:
                    return
        except asyncio.CancelledError:
            self.abandon()
            raise
        except BaseException as error:  # handed over: the consumer raises it where it happened
            self._put(_Failure(error))
        else:
            self._put(_END)

    def _offer(self, chunk: bytes) -> bool | None:
        """True: taken; False: full, wait for space; None: abandoned, stop reading."""
        with self._ready:
            if self._abandoned:
                return None
            if self._items and self._held + len(chunk) > self._limit:
                # Cleared under the lock: the consumer's wake-up is scheduled after this, never lost.
                self._space.clear()
                self._filler_waits = True
                self._ready.notify()  # whatever the mark: there is no room until it takes some
                return False
            self._items.append(chunk)
            self._held += len(chunk)
            if self._held >= self._limit // 4:
                self._ready.notify()
            return True

    def _put(self, item: _End | _Failure) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def __next__(self) -> bytes:
        with self._ready:
            while not self._items and not self._abandoned:
                self._ready.wait()
            if self._abandoned:
                raise Abandoned()
            item = _take(self._items)
            if item is None:
                raise StopIteration
            self._held -= len(item)
            if self._filler_waits and self._held <= self._limit // 2:
                self._filler_waits = False
                self._loop.call_soon_threadsafe(self._space.set)
            return item

    def abandon(self) -> None:
        """Stop both sides: the consumer raises ``Abandoned``, ``fill`` stops reading."""
        with self._ready:
            self._abandoned = True
            self._items.clear()
            self._held = 0
            self._ready.notify_all()
        self._loop.call_soon_threadsafe(self._space.set)


async def read_ahead(chunks: Iterator[bytes], *, limit: int) -> AsyncGenerator[bytes]:
    """The other way round: a blocking iterator (a blob being read and opened) read in a thread of
    its own, up to ``limit`` bytes ahead of the loop that consumes it (a response being sent).

    Without it each chunk was read, then sent, then the next read: the disk and the network took
    turns. The thread is its own, not the loop's pool, whose few workers a slow client must not
    hold. However the consumer stops (the end, an error, a client gone), the thread stops and
    ``chunks`` is closed; an exception from ``chunks`` is raised here where it happened.
    """
    reader = _ReadAhead(chunks, asyncio.get_running_loop(), limit=limit)
    try:
        while (chunk := await reader.next()) is not None:
            yield chunk
    finally:
        reader.close()


class _ReadAhead:
    def __init__(
        self, chunks: Iterator[bytes], loop: asyncio.AbstractEventLoop, *, limit: int
    ) -> None:
        self._chunks, self._loop, self._limit = chunks, loop, limit
        self._items: deque[bytes | _End | _Failure] = deque()
        self._held = 0
        self._space = threading.Condition(threading.Lock())
        self._ready = asyncio.Event()
        self._consumer_waits = False
        self._closed = False
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for chunk in self._chunks:
                if not self._put(chunk):
                    return
            self._put(_END)
        except BaseException as error:  # raised on the loop, after the chunks before it
            self._put(_Failure(error))
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()

    def _put(self, item: bytes | _End | _Failure) -> bool:
        """Queue ``item`` once there is room; False if the consumer has stopped."""
        size = len(item) if isinstance(item, bytes | bytearray | memoryview) else 0
        with self._space:
            while self._items and self._held + size > self._limit and not self._closed:
                self._space.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._held += size
            wake, self._consumer_waits = self._consumer_waits, False
        if wake:
            self._loop.call_soon_threadsafe(self._ready.set)
        return True

    async def next(self) -> bytes | None:
        """The next chunk; None at the end."""
        while True:
            with self._space:
                if self._items:
                    item = _take(self._items)
                    if item is not None:
                        self._held -= len(item)
                        self._space.notify()
                    return item
                # Cleared under the lock: the producer's wake-up is scheduled after this.
                self._ready.clear()
                self._consumer_waits = True
            await self._ready.wait()

    def close(self) -> None:
        with self._space:
            self._closed = True
            self._items.clear()
            self._held = 0
            self._space.notify_all()

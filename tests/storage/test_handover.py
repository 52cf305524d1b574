"""The hand-over from an event loop to a worker thread: order, bound, failures, abandonment."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from storage import IntegrityError
from storage.handover import Abandoned, Handover, read_ahead
from tests.harness.loops import run_async

T = TypeVar("T")


async def consume_in_thread(
    chunks: AsyncIterator[bytes], limit: int, consume: Callable[[Handover], T]
) -> T:
    loop = asyncio.get_running_loop()
    handover = Handover(loop, limit=limit)
    filling = asyncio.ensure_future(handover.fill(chunks))
    try:
        return await loop.run_in_executor(None, consume, handover)
    finally:
        handover.abandon()
        await asyncio.wait([filling])


def test_every_chunk_arrives_in_order() -> None:
    chunks = [bytes([i % 256]) * (1 + i * 37 % 5000) for i in range(500)]

    async def source() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(chunks):
            if i % 7 == 0:
                await asyncio.sleep(0)
            yield chunk

    got = run_async(lambda: consume_in_thread(source(), 64 * 1024, list))
    assert got == chunks


def test_the_reader_stays_within_the_limit_of_a_slow_consumer() -> None:
    produced = 0
    size, limit = 10_000, 100_000

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(200):
            produced += 1
            yield b"x" * size

    def slow(handover: Handover) -> int:
        import time

        furthest = 0
        for consumed, _ in enumerate(handover, start=1):
            time.sleep(0.001)
            furthest = max(furthest, produced - consumed)
        return furthest

    furthest = run_async(lambda: consume_in_thread(source(), limit, slow))
    # Held: at most ``limit`` bytes, plus the chunk the reader has in hand.
    assert furthest <= limit // size + 1


def test_a_chunk_larger_than_the_limit_still_passes() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"a" * 10
        yield b"b" * 1_000_000
        yield b"c" * 10

    got = run_async(lambda: consume_in_thread(source(), 1000, list))
    assert got == [b"a" * 10, b"b" * 1_000_000, b"c" * 10]


def test_a_trickle_below_the_wake_up_mark_is_delivered_at_the_end() -> None:
    async def source() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.01)
            yield b"t"

    assert run_async(lambda: consume_in_thread(source(), 1 << 20, list)) == [b"t"] * 3


def test_the_source_failure_reaches_the_consumer_after_what_came_before() -> None:
    failure = ConnectionResetError("client went away")

    async def source() -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"
        raise failure

    def consume(handover: Handover) -> tuple[list[bytes], BaseException | None]:
        got = []
        try:
            for chunk in handover:
                got.append(chunk)
        except ConnectionResetError as exc:
            return got, exc
        return got, None

    got, raised = run_async(lambda: consume_in_thread(source(), 1 << 20, consume))
    assert got == [b"one", b"two"]
    assert raised is failure


async def running(
    chunks: AsyncIterator[bytes], limit: int
) -> tuple[Handover, asyncio.Future[None], asyncio.Future[None]]:
    """A hand-over being filled from ``chunks`` and drained in a thread: (it, filling, draining)."""
    loop = asyncio.get_running_loop()
    handover = Handover(loop, limit=limit)
    filling = asyncio.ensure_future(handover.fill(chunks))

    def drain() -> None:
        for _ in handover:
            pass

    return handover, filling, loop.run_in_executor(None, drain)


def test_abandoning_stops_the_consumer_and_the_reader() -> None:
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        while True:
            read += 1
            await asyncio.sleep(0.001)
            yield b"y" * 1000

    async def scenario() -> tuple[int, int]:
        handover, filling, draining = await running(endless(), 10_000)
        await asyncio.sleep(0.05)
        handover.abandon()
        with pytest.raises(Abandoned):
            await draining
        await asyncio.wait_for(filling, 5)
        stopped_at = read
        await asyncio.sleep(0.05)
        return stopped_at, read

    stopped_at, later = run_async(scenario)
    assert stopped_at == later  # nothing read once abandoned


def test_cancelling_the_reader_abandons_the_consumer() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.001)
            yield b"z"

    async def scenario() -> None:
        _, filling, draining = await running(endless(), 1 << 20)
        await asyncio.sleep(0.02)
        filling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await filling
        with pytest.raises(Abandoned):
            await asyncio.wait_for(draining, 5)

    run_async(scenario)


# --- read_ahead: a blocking iterator read in a thread, ahead of an async consumer ---------------


class Source:
    """A blocking iterator that records how far it has been read and whether it was closed."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks, self.fail_at = chunks, fail_at
        self.taken = 0
        self.closed = threading.Event()
        self.thread: str | None = None

    def __iter__(self) -> Source:
        return self

    def __next__(self) -> bytes:
        self.thread = threading.current_thread().name
        if self.taken == self.fail_at:
            raise IntegrityError()
        if self.taken == len(self.chunks):
            raise StopIteration
        self.taken += 1
        return self.chunks[self.taken - 1]

    def close(self) -> None:
        self.closed.set()


def test_read_ahead_gives_every_chunk_in_order_from_another_thread_and_closes_the_source() -> None:
    source = Source([bytes([i % 256]) * (1 + i * 37 % 5000) for i in range(300)])

    async def consume() -> list[bytes]:
        return [chunk async for chunk in read_ahead(source, limit=16 * 1024)]

    assert run_async(consume) == source.chunks
    assert source.thread == "read-ahead"
    assert source.closed.wait(5)


def test_read_ahead_holds_at_most_its_limit_for_a_slow_consumer() -> None:
    source = Source([b"x" * 1000] * 200)
    most_ahead = 0

    async def consume() -> int:
        nonlocal most_ahead
        got = 0
        async for _ in read_ahead(source, limit=10_000):
            got += 1
            await asyncio.sleep(0.001)  # the producer has all the time it wants to run ahead
            most_ahead = max(most_ahead, source.taken - got)
        return got

    assert run_async(consume) == 200
    # At most the limit waiting (10 chunks) and one more read and waiting for room.
    assert 5 <= most_ahead <= 11


def test_read_ahead_raises_a_source_error_after_the_chunks_before_it() -> None:
    source = Source([b"a", b"b", b"c"], fail_at=2)
    got: list[bytes] = []

    async def consume() -> None:
        async for chunk in read_ahead(source, limit=1024):
            got.append(chunk)

    with pytest.raises(IntegrityError):
        run_async(consume)
    assert got == [b"a", b"b"]
    assert source.closed.wait(5)


def test_a_consumer_that_stops_early_stops_the_thread_and_closes_the_source() -> None:
    source = Source([b"y" * 1000] * 1000)

    async def consume() -> None:
        chunks = read_ahead(source, limit=5000)
        async for _ in chunks:
            break
        await chunks.aclose()  # what a response does when its client goes away

    run_async(consume)
    assert source.closed.wait(5)
    assert source.taken < 20  # it stopped reading: nothing near the 1,000 chunks
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_a_consumer_cancelled_while_waiting_stops_the_thread() -> None:
    release = threading.Event()

    class Stalled(Source):
        def __next__(self) -> bytes:
            if self.taken == 1:
                release.wait(10)  # a disk that hangs
            return super().__next__()

    source = Stalled([b"z"] * 10)

    async def consume() -> None:
        async def reading() -> None:
            async for _ in read_ahead(source, limit=1024):
                pass

        task = asyncio.ensure_future(reading())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The disk answers again while the loop still runs: the thread must stop by itself.
        release.set()
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, source.closed.wait, 5)
        assert source.taken <= 2

    run_async(consume)

"""The hand-over from an event loop to a worker thread: order, bound, failures, abandonment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from storage.handover import Abandoned, Handover
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

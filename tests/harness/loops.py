"""Run a coroutine on an event loop of its own, in a thread of its own.

The browser tests' Playwright (sync API) keeps an event loop running in the main thread for the
whole session, so ``asyncio.run`` in a later test would fail with "already running".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()

"""Leases: work claimed in the database for a while, and renewed while it runs.

A process that takes a document to scan, or an upload to turn into a document, writes into the row
until when it holds it. Another process takes the work over only once that moment has passed. The
holder renews its lease every third of its length from a thread of its own, so a long piece of
work (a 2 GiB scan takes about 25 s) never loses it, while the lease of a process that was killed
(SIGKILL, a power cut, an out-of-memory kill) runs out within one lease length: its work is taken
over by the next worker round after that, within a minute.

Renewing is a compare-and-set on what the holder wrote last: once another process has taken the
work over, the old holder's renewals change nothing, and its final write (which checks the lease
too) records nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

Clock = Callable[[], datetime]

log = logging.getLogger(__name__)


def moving_clock(start: datetime) -> Clock:
    """A clock that reads ``start`` now and then moves on in real time.

    For work given only the moment it started (``now``): a test's fixed clock stays the base,
    real seconds are added to it.
    """
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


@contextmanager
def renewed(
    renew: Callable[[datetime], bool], *, length: timedelta, clock: Clock
) -> Iterator[None]:
    """Run the ``with`` block while a thread calls ``renew(until)`` every third of ``length``.

    ``renew`` writes the new end of the lease if the lease is still this holder's, and says
    whether it was. Once it says no (the work was taken over), renewing stops. A renewal that
    fails (the database away for a moment) is tried again at the next turn: with three turns per
    lease, one missed renewal does not lose it.
    """
    stop = threading.Event()
    every = length.total_seconds() / 3

    def keep() -> None:
        while not stop.wait(every):
            try:
                if not renew(clock() + length):
                    return
            except Exception:
                log.warning("could not renew a lease; trying again in %.0f s", every, exc_info=True)

    thread = threading.Thread(target=keep, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=length.total_seconds())

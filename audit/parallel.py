"""Verifying a long log on several cores (PostgreSQL): the range is cut at signed checkpoints and
each part is walked by a process of its own, all in the verifier's database snapshot.

Why the parts add up to one walk: a signed checkpoint fixes the link at its sequence number. A
part that starts from checkpoint ``a``'s signed hash, whose events all chain, and whose last
event ``b`` carries exactly checkpoint ``b``'s signed hash (the walk checks that at every
checkpoint it passes) proves what a walk from the beginning would have found between ``a`` and
``b``; the next part starts from that same hash. So an unbroken result is taken from the parts
only if every part verified from its first event to its last. If any part did not (or a process
failed), ``walk_in_parts`` returns None and the caller walks the range in one process, which
finds and names the first break exactly as always.

Each part is a task of a ``concurrent.futures.ProcessPoolExecutor`` whose processes fork from a
fresh server that has imported this module alone (``forkserver``): never a fork of this process,
whose children would hold copies of its database connections (closing one there would end the
parent's session), and without what ``spawn`` costs, a new interpreter per part that imports the
caller's ``__main__`` (the whole portal, for ``portal audit verify``). The task is the job as plain data (the database address,
the exported snapshot's id, the public keys, the part's bounds) and its answer is counts and
hashes only.
"""

from __future__ import annotations

import bisect
import multiprocessing
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from sqlalchemy import Connection, NullPool, create_engine

from .signing import PublicKey
from .verification import CheckpointRow, Verification, load_checkpoints, walk_stored

# PostgreSQL's exported snapshot ids look like 00000003-0000001B-1.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{8}-[0-9]{1,10}")
Job = dict[str, object]
Answer = dict[str, object]


def walk_in_parts(
    connection: Connection,
    keys: Sequence[PublicKey],
    *,
    start: int,
    end: int,
    stop: int | None,
    checkpoints: dict[int, CheckpointRow],
    processes: int,
    min_part: int,
    batch: int,
) -> Verification | None:
    """Walk the events after ``start`` in up to ``processes`` parts at once; None if the range is
    too short to split or any part did not verify (then walk it in one process instead).

    ``end``: where the range is expected to end (the head, or ``stop``), to size the parts; the
    last part is walked here, up to ``stop`` or the end of the log, whatever ``end`` said.
    """
    cuts = choose_cuts(start, end, sorted(checkpoints), processes, min_part)
    if not cuts:
        return None
    snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    job = {
        "url": connection.engine.url.render_as_string(hide_password=False),
        "snapshot": snapshot,
        "keys": [key.to_pem().decode("ascii") for key in keys],
        "batch": batch,
    }
    bounds = [start, *cuts]
    walker = _part_walker()
    pool = ProcessPoolExecutor(max_workers=len(cuts), mp_context=_pool_context())
    try:
        running = [
            pool.submit(walker, {**job, "part": [a, b]}) for a, b in zip(bounds, cuts, strict=False)
        ]
        tail = walk_stored(
            connection,
            keys,
            start=cuts[-1],
            stop=stop,
            checkpoints={seq: cp for seq, cp in checkpoints.items() if seq > cuts[-1]},
            anchor_cp=checkpoints[cuts[-1]],
            batch=batch,
        )
        answers = [_answer(future) for future in running]
    except BaseException:
        # Parts not started yet are dropped; those walking end on their own (a part only
        # reads) and the pool's processes exit after them, without holding this caller up.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()  # every part has answered: this only sees the processes out
    events = tail.events
    passed = tail.checkpoints
    for (a, b), answer in zip(zip(bounds, cuts, strict=False), answers, strict=True):
        if answer is None or not _part_verified(answer, a, b, checkpoints[b]):
            return None
        events += b - a
        passed += int(str(answer["checkpoints"]))
    if tail.broken is not None:
        return None
    return Verification(
        first_seq=start + 1,
        last_seq=tail.last_seq,
        events=events,
        checkpoints=passed,
        last_checkpoint=tail.last_checkpoint,
        last_hash=tail.last_hash,
        parts=len(cuts) + 1,
    )


def choose_cuts(
    start: int, end: int, checkpoint_seqs: Sequence[int], processes: int, min_part: int
) -> list[int]:
    """Checkpoints at which to cut (start, end] into up to ``processes`` parts of about equal
    size, none planned shorter than ``min_part`` events; [] if it is not worth splitting."""
    count = min(processes, (end - start) // max(1, min_part))
    if count < 2:
        return []
    inside = [seq for seq in checkpoint_seqs if start < seq < end]
    cuts: list[int] = []
    for i in range(1, count):
        target = start + (end - start) * i // count
        at = bisect.bisect_left(inside, target)
        near = [inside[j] for j in (at - 1, at) if 0 <= j < len(inside)]
        if not near:
            continue
        best = min(near, key=lambda seq: abs(seq - target))
        if not cuts or best > cuts[-1]:
            cuts.append(best)
    return cuts


def _part_verified(answer: dict[str, object], a: int, b: int, at_b: CheckpointRow) -> bool:
    return (
        answer.get("broken") is False
        and answer.get("first_seq") == a + 1
        and answer.get("last_seq") == b
        and answer.get("events") == b - a
        and answer.get("last_hash") == at_b.hash
        and isinstance(answer.get("checkpoints"), int)
    )


def _pool_context() -> multiprocessing.context.BaseContext:
    """Where the parts' processes come from (see the module's docstring)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # not __main__: only what a part runs
    return context


def _part_walker() -> Callable[[Job], Answer]:
    """What a part's process runs (the tests put a failing or a lying one in its place)."""
    return walk_part


def _answer(future: Future[Answer]) -> Answer | None:
    try:
        answer = future.result()
    except Exception:  # the part failed or its process died: the range is walked in one
        return None
    return answer if isinstance(answer, dict) else None


def walk_part(job: Job) -> Answer:
    """In a part's process: import the snapshot and walk (a, b]."""
    snapshot = job["snapshot"]
    if not isinstance(snapshot, str) or not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError("not a snapshot id")
    part, pems, batch = job["part"], job["keys"], job["batch"]
    if not (isinstance(part, list) and len(part) == 2 and isinstance(pems, list)):
        raise ValueError("not a part")
    a, b = int(part[0]), int(part[1])
    keys = [PublicKey.from_pem(str(pem).encode("ascii")) for pem in pems]
    engine = create_engine(str(job["url"]), poolclass=NullPool, hide_parameters=True)
    try:
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection,
            connection.begin(),
        ):
            # Checked against the pattern above: nothing but hex digits, dashes and digits.
            connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            # The part's checkpoints and, at ``a`` (0: the genesis), the one it starts from.
            checkpoints = load_checkpoints(connection, a, b)
            anchor = checkpoints.pop(a) if a > 0 else None
            result = walk_stored(
                connection,
                keys,
                start=a,
                stop=b,
                checkpoints=checkpoints,
                anchor_cp=anchor,
                batch=int(str(batch)),
            )
    finally:
        engine.dispose()
    return {
        "broken": result.broken is not None,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "events": result.events,
        "checkpoints": result.checkpoints,
        "last_hash": result.last_hash,
    }

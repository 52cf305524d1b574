"""Benchmark of hostile request bodies: how much memory a real server holds under them.

    python bench/hostile_bodies.py [--size-mib 900] [--concurrency 20] [--output FILE]
                                   [--portal-tree DIR] [--targets sign_in,form,json]

Starts everything itself, on 127.0.0.1 only: a temporary PORTAL_HOME with SQLite (``portal init``),
a lead with a personal access token and a signed-in web session (made through the services), and
the portal under uvicorn in a subprocess (``portal serve``, as in production behind nginx).

Then fires CONCURRENCY hostile bodies of SIZE at once at each target in turn, and finally at all
of them together:

  sign_in  ``POST /sign-in``, urlencoded, no session: before any authentication;
  form     ``POST /reviews/new``, urlencoded, with the lead's session cookie: a signed-in page;
  json     ``POST /api/v1/reviews``, JSON, with the lead's bearer token: an API route.

once with a ``Content-Length`` of SIZE (the issue's attack) and once chunked (no length: the
server must count). Each body is streamed from a generator that hands out the same 1 MiB again
and again, so the client holds 1 MiB, not SIZE; a client stops sending when its answer arrives,
as a real one would (and nginx would have refused the body in the first place).

Each round runs against a freshly started server. Reports, per round, its peak RSS (VmHWM, reset
before the round; its idle RSS beside it), the answers, how many bytes the clients got to send
before the answer (an upper bound of what the server read: the sockets' buffers take a few MiB),
and the wall time; writes bench/results/hostile_bodies.json (or --output).

``--portal-tree DIR`` runs the server from another checkout (``git archive main | tar -x -C DIR``)
with this checkout's virtualenv: the figures before a change. Keep --concurrency low there: the
old code held every body (issue 18, item 3: 424 MB -> 1,019 MB for one 900 MB body).

Target (issue 18): peak RSS < 200 MiB in every round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from bench.servers import PORTAL, Server, free_port, start_server  # noqa: E402

MiB = 1024 * 1024
RESULTS = REPO / "bench" / "results" / "hostile_bodies.json"
TARGET_PEAK_RSS_MIB = 200
# One 1 MiB field, handed out again and again: 900 MiB is 900 fields of 1 MiB (the attack).
CHUNK = b"&f=" + b"b" * (MiB - 3)
ANSWER_TIMEOUT = 120.0


def chunks(size: int) -> Iterator[bytes]:
    """``size`` bytes of a urlencoded body, 1 MiB at a time, never held whole."""
    sent = 0
    while sent < size:
        piece = CHUNK if size - sent >= len(CHUNK) else CHUNK[: size - sent]
        sent += len(piece)
        yield piece


# --- Set-up through the services ---------------------------------------------------------------


def start_portal(tree: Path, port: int, env: dict[str, str], log: Path) -> Server:
    """``portal serve`` run in ``tree``: that checkout's portal is the one served."""
    argv = [*PORTAL, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return start_server("portal", argv, env=env, url=f"http://127.0.0.1:{port}", log=log, cwd=tree)


def prepare(env: dict[str, str], tree: Path) -> dict[str, str]:
    """``portal init``, a lead with a token and a signed-in session; their credentials."""
    from sqlmodel import Session

    from portal.accounts import sessions, tokens, users
    from portal.accounts.models import Role
    from portal.db import make_engine
    from portal.models import OrganisationKind
    from portal.settings import Settings

    subprocess.run(
        [*PORTAL, "init"], env=env, check=True, capture_output=True, timeout=120, cwd=tree
    )
    settings = Settings.from_environ(env)
    now = datetime.now(UTC)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            inspectorate = users.add_organisation(
                db, slug="bench", name="Bench", kind=OrganisationKind.inspectorate, now=now
            )
            lead, _ = users.add_user(
                db, email="lead@bench.invalid", role=Role.lead, organisation=inspectorate, now=now
            )
            _, token = tokens.create_token(db, lead, name="bench", days=1, now=now)
            session = sessions.start_session(db, lead, mfa_done=True, now=now)
            db.commit()
    finally:
        engine.dispose()
    return {"token": token, "session": session}


# --- One hostile request -----------------------------------------------------------------------


async def hostile(
    port: int, path: str, headers: dict[str, str], size: int, *, declared: bool
) -> dict[str, Any]:
    """POST ``size`` bytes to ``path`` over a raw connection; stop sending when answered."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = {"Content-Length": str(size)} if declared else {"Transfer-Encoding": "chunked"}
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in {**headers, **framing}.items()
    )
    writer.write(head.encode("latin-1") + b"\r\n")
    answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    sent = 0
    try:
        for piece in chunks(size):
            if answer.done():
                break
            writer.write(piece if declared else b"%x\r\n" % len(piece) + piece + b"\r\n")
            drained = asyncio.ensure_future(writer.drain())
            # The server may stop reading (and answer) while a write is pending: whichever first.
            await asyncio.wait({drained, answer}, return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()
                break
            drained.result()
            sent += len(piece)
        else:
            if not declared:
                writer.write(b"0\r\n\r\n")
    except (ConnectionError, OSError):
        pass  # the server closed the connection on a refused body: its answer may be read still
    status: int | str
    try:
        status_line = (await asyncio.wait_for(answer, ANSWER_TIMEOUT)).split(b"\r\n", 1)[0]
        status = int(status_line.split()[1])
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        status = "closed"
    except TimeoutError:
        status = "timeout"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return {"status": status, "sent": sent, "seconds": time.perf_counter() - start}


def targets(credentials: dict[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    form = "application/x-www-form-urlencoded"
    return {
        "sign_in": ("/sign-in", {"Content-Type": form, "Cookie": "portal_csrf=bench"}),
        "form": (
            "/reviews/new",
            {
                "Content-Type": form,
                "Cookie": f"portal_session={credentials['session']}; portal_csrf=bench",
            },
        ),
        "json": (
            "/api/v1/reviews",
            {"Content-Type": "application/json", "Authorization": f"Bearer {credentials['token']}"},
        ),
    }


async def volley(
    port: int, chosen: list[tuple[str, dict[str, str]]], count: int, size: int, declared: bool
) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(
            *(
                hostile(port, path, headers, size, declared=declared)
                for path, headers in chosen
                for _ in range(count)
            )
        )
    )


def round_figures(server: Server, results: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for result in results:
        statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
    return {
        "requests": len(results),
        "answers": statuses,
        "peak_rss_mib": round(server.peak_mib(), 1),
        "max_sent_before_answer_mib": round(max(r["sent"] for r in results) / MiB, 2),
        "total_sent_mib": round(sum(r["sent"] for r in results) / MiB, 1),
        "slowest_answer_s": round(max(r["seconds"] for r in results), 3),
        "wall_s": round(wall, 3),
    }


def measure(
    tree: Path,
    env: dict[str, str],
    work: Path,
    credentials: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Every round against a server of its own, freshly started: memory one round made the
    process keep (glibc returns little to the system) is not counted in the next one's peak."""
    size = args.size_mib * MiB
    table = targets(credentials)
    chosen = [name.strip() for name in args.targets.split(",") if name.strip()]
    rounds: dict[str, Any] = {}
    for declared in (True, False):
        framing = "content_length" if declared else "chunked"
        plan = [(name, [table[name]]) for name in chosen]
        if len(chosen) > 1:
            plan.append(("all_at_once", [table[name] for name in chosen]))
        for name, picked in plan:
            port = free_port()
            server = start_portal(tree, port, env, work / f"portal-{framing}-{name}.log")
            try:
                idle = server.rss_mib()
                server.reset_peak()
                start = time.perf_counter()
                results = asyncio.run(volley(port, picked, args.concurrency, size, declared))
                figures = round_figures(server, results, time.perf_counter() - start)
            finally:
                server.stop()
            figures["idle_rss_mib"] = round(idle, 1)
            rounds[f"{framing}/{name}"] = figures
            print(
                f"{framing:>14} {name:<12} {figures['requests']:>3} x {args.size_mib} MiB"
                f"  answers {figures['answers']}  peak RSS {figures['peak_rss_mib']:>7} MiB"
                f" (idle {figures['idle_rss_mib']})"
                f"  sent before the answer <= {figures['max_sent_before_answer_mib']} MiB"
                f"  wall {figures['wall_s']} s",
                flush=True,
            )
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=900)
    parser.add_argument("--concurrency", type=int, default=20, help="bodies at once per target")
    parser.add_argument("--targets", default="sign_in,form,json")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--portal-tree", type=Path, default=None, help="run this checkout's portal")
    parser.add_argument("--folder", type=Path, default=None, help="where PORTAL_HOME goes")
    args = parser.parse_args()
    tree = (args.portal_tree or REPO).resolve()
    work = Path(tempfile.mkdtemp(prefix="portal-bench-hostile-", dir=args.folder))
    started = time.perf_counter()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "MALLOC_"))}
        env.update(
            {
                "PORTAL_HOME": str(work / "home"),
                # No scan is made: nothing is uploaded. The address only has to be well formed.
                "PORTAL_CLAMD": f"unix://{work / 'no-clamd.sock'}",
                "PORTAL_LOG_LEVEL": "warning",
                "PYTHONPATH": str(tree),
            }
        )
        credentials = prepare(env, tree)
        print(f"portal from {tree}", flush=True)
        rounds = measure(tree, env, work, credentials, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = max(r["peak_rss_mib"] for r in rounds.values())
    results = {
        "size_mib": args.size_mib,
        "concurrency_per_target": args.concurrency,
        "targets": args.targets.split(","),
        "portal_tree": str(tree),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "idle_rss_mib": max(r["idle_rss_mib"] for r in rounds.values()),
        "rounds": rounds,
        "peak_rss_mib": peak,
        "target_peak_rss_mib": TARGET_PEAK_RSS_MIB,
        "target_met": peak < TARGET_PEAK_RSS_MIB,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"\npeak RSS over all rounds {peak} MiB (idle {results['idle_rss_mib']}): "
        f"target < {TARGET_PEAK_RSS_MIB} MiB "
        f"{'ok' if results['target_met'] else 'MISSED'}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output} in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

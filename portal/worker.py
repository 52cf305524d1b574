"""``portal worker``: the work that runs behind the web app.

Each round: finish resumable uploads whose completing process died (portal.uploads.recovery),
scan documents that are due (new ones, retries with back-off, and scans whose process died),
expire abandoned resumable uploads and sweep blobs that nothing refers to, chain audit events that a request
committed but could not chain (the web app chains its own right after each commit), seal the
audit log with a signed checkpoint if it has been quiet, give the witness its checkpoints, and
raise and mail the audit log's alerts (portal.console.alerts). Several
workers may run at once: they coordinate through the database (row locks with SKIP LOCKED).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import audit
from portal.console import alerts
from portal.destruction.notices import Mailer
from portal.destruction.rounds import DestructionRound, destruction_round
from portal.exchange import scans
from portal.exchange.sweep import sweep_orphan_blobs
from portal.runtime import Runtime
from portal.uploads.recovery import Recovered, finish_abandoned_uploads
from portal.uploads.sweep import expire_uploads, part_blob_ids

_log = logging.getLogger(__name__)


@dataclass
class Round:
    recovered: Recovered = field(default_factory=Recovered)
    scanned: list[scans.ScanOutcome] = field(default_factory=list)
    swept: int = 0
    expired_uploads: int = 0
    checkpoint: int | None = None
    # Checkpoints given to the witness this round, and why it could not take them, if so.
    witnessed: int = 0
    witness_problem: str | None = None
    # The database contradicts the witness (not merely: the witness could not be reached).
    witness_contradicted: bool = False
    # Alerts raised this round, and alerts e-mailed to the DPOs.
    alerts: int = 0
    alerts_mailed: int = 0
    chained: int = 0
    destruction: DestructionRound = field(default_factory=DestructionRound)

    def summary(self) -> str:
        states: dict[str, int] = {}
        for outcome in self.scanned:
            states[outcome.state.value] = states.get(outcome.state.value, 0) + 1
        scanned = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
        return (
            f"uploads finished: {len(self.recovered.documents)}; "
            f"scanned: {scanned}; uploads expired: {self.expired_uploads}; "
            f"blobs swept: {self.swept}; audit events chained: {self.chained}; "
            f"alerts: {self.alerts} new, {self.alerts_mailed} mailed; "
            f"{self.destruction.summary()}"
        )


@dataclass
class Worker:
    runtime: Runtime
    sweep_every: timedelta = timedelta(minutes=10)
    # A quiet log is sealed and witnessed at least this often: the unsigned tail (events a
    # database writer could still cut unnoticed) is never older than this (docs/audit-format.md).
    checkpoint_every: timedelta = timedelta(seconds=60)
    # The anomaly rules run this often (over the last day) and raise what they find as alerts.
    alert_every: timedelta = timedelta(seconds=60)
    _last_sweep: datetime | None = None
    _last_checkpoint: datetime | None = None
    _last_alerts: datetime | None = None

    def run_round(self, *, force: bool = False) -> Round:
        runtime = self.runtime
        done = Round()
        # Before the scans, so that a document made here is scanned in this round.
        done.recovered = finish_abandoned_uploads(
            runtime.engine,
            runtime.vault,
            runtime.auditor,
            clock=runtime.clock,
            max_bytes=runtime.settings.max_upload_bytes,
        )
        done.scanned = scans.scan_due(
            runtime.engine, runtime.vault, runtime.scanner, runtime.auditor, clock=runtime.clock
        )
        now = runtime.clock()
        # What a request committed and then failed to chain (the database went away between).
        done.chained = runtime.auditor.log.chain_committed(runtime.engine, now=now)
        # Destruction and its notices, before the checkpoint so that it seals their events.
        done.destruction = destruction_round(runtime, now=now)
        if force or self._last_sweep is None or now - self._last_sweep >= self.sweep_every:
            # Expired resumable uploads first, so their parts become orphans the sweep removes.
            done.expired_uploads = expire_uploads(runtime.engine, runtime.vault, now=now)
            done.swept = sweep_orphan_blobs(
                runtime.engine, runtime.vault, now=now, also_in_use=part_blob_ids
            )
            self._last_sweep = now
        found: list[alerts.Finding] = []
        if (
            force
            or self._last_checkpoint is None
            or now - self._last_checkpoint >= self.checkpoint_every
        ):
            with runtime.engine.begin() as connection:
                # Before signing: a tail left unsigned for more than twice the interval means
                # nothing signed the log for that long (the worker was stopped, or held back).
                tail = audit.unsigned_tail(connection)
                every = self.checkpoint_every.total_seconds()
                if tail.since_us is not None and audit.to_us(now) - tail.since_us > 2e6 * every:
                    found.append(alerts.unsigned_tail_finding(tail.events, tail.since_us, now=now))
                done.checkpoint = runtime.auditor.log.checkpoint(connection, now=now)
            self._last_checkpoint = now
        done.witnessed, done.witness_problem, done.witness_contradicted = witness(runtime)
        if done.witness_contradicted and done.witness_problem:
            found.append(alerts.witness_finding(done.witness_problem, now=now))
        if (
            found
            or force
            or self._last_alerts is None
            or now - self._last_alerts >= self.alert_every
        ):
            self._raise_alerts(done, now, found)
        return done

    def _raise_alerts(self, done: Round, now: datetime, found: list[alerts.Finding]) -> None:
        settings = self.runtime.settings
        raised = alerts.raise_alerts(
            self.runtime.engine, now=now, thresholds=settings.alert_thresholds, extra=found
        )
        done.alerts = len(raised)
        self._last_alerts = now
        if settings.smtp is not None:
            done.alerts_mailed = alerts.mail_alerts(
                self.runtime.engine,
                Mailer(settings.smtp),
                now=now,
                sender=settings.notice_from,
                public_url=settings.public_url,
            )

    def run_forever(self, *, interval: float, report: Callable[[str], None]) -> None:
        while True:
            done = self.run_round()
            busy = done.recovered.documents or done.scanned or done.swept or done.chained
            if busy or done.destruction.busy:
                report(done.summary())
            if done.witness_problem:
                report(done.witness_problem)
            time.sleep(interval)


def witness(runtime: Runtime) -> tuple[int, str | None, bool]:
    """Give the witness the checkpoints it does not hold yet: how many, or what stopped it, and
    whether that was the database contradicting the witness.

    A witness that cannot be reached is tried again next round; a database that contradicts
    the witness is the attack the witness is there for (issue 17): it is reported, never papered
    over by extending the witness.
    """
    log = runtime.auditor.log
    try:
        with runtime.engine.connect() as connection:
            return (
                audit.witness_checkpoints(connection, runtime.witness, log.public_keys),
                None,
                False,
            )
    except audit.ChainBroken as broken:
        log_problem = f"audit witness: the database contradicts it: {broken}"
        _log.error("%s", log_problem)
        return 0, log_problem, True
    except audit.WitnessError as failure:
        _log.warning("audit witness unavailable: %s", failure)
        return 0, f"audit witness unavailable: {failure}", False

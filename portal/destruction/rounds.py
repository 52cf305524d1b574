"""The worker's share of destruction: record and send notices, destroy what is due."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from portal.destruction import notices
from portal.destruction.execution import RunReport
from portal.destruction.services import destroyer_for

if TYPE_CHECKING:
    from portal.runtime import Runtime


@dataclass
class DestructionRound:
    report: RunReport = field(default_factory=RunReport)
    notices: int = 0
    mailed: int = 0

    def summary(self) -> str:
        return f"{self.report.summary()}; notices: {self.notices} new, {self.mailed} mailed"

    @property
    def busy(self) -> bool:
        return bool(
            self.report.destroyed or self.report.certificates or self.report.failed or self.notices
        )


def destruction_round(runtime: Runtime, *, now: datetime) -> DestructionRound:
    done = DestructionRound()
    done.notices = len(notices.record_notices(runtime.engine, now=now))
    settings = runtime.settings
    if settings.smtp is not None:
        done.mailed = notices.send_notices(
            runtime.engine,
            notices.Mailer(settings.smtp),
            now=now,
            sender=settings.notice_from,
            public_url=settings.public_url,
        )
    done.report = destroyer_for(runtime).run_due(now=now)
    return done

"""Who is acting, from where, and when: passed to every service call of the exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import audit
from portal.accounts.caller import Caller
from portal.accounts.models import Role
from portal.auditing import Auditor, Origin


@dataclass(frozen=True)
class Acting:
    """``caller`` is None for a process with the operator's rights (who holds the keys anyway):
    the demo's set-up, and reads at the command line that record nothing. Audited commands act as
    a named person instead (``Acting.of``, portal/accounts/operators.py), never as ``cli``.

    ``refusals``: where a refusal of this caller is recorded (``portal.refusals``); the web
    requests' callers carry the portal's auditor, so that every lookup that refuses an object that
    exists records it, wherever it is made."""

    caller: Caller | None
    actor: audit.Actor
    now: datetime
    origin: Origin = field(default_factory=Origin)
    refusals: Auditor | None = None

    @classmethod
    def operator(cls, now: datetime, *, actor: audit.Actor) -> Acting:
        return cls(caller=None, actor=actor, now=now)

    @classmethod
    def of(
        cls,
        *,
        user_id: int,
        role: Role,
        organisation_id: int,
        now: datetime,
        origin: Origin,
        refusals: Auditor | None = None,
    ) -> Acting:
        return cls.as_caller(
            Caller(user_id=user_id, role=role, organisation_id=organisation_id),
            now=now,
            origin=origin,
            refusals=refusals,
        )

    @classmethod
    def as_caller(
        cls, caller: Caller, *, now: datetime, origin: Origin, refusals: Auditor | None = None
    ) -> Acting:
        return cls(caller=caller, actor=caller.actor, now=now, origin=origin, refusals=refusals)

    @property
    def user_id(self) -> int | None:
        return self.caller.user_id if self.caller else None

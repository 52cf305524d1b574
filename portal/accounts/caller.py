"""Who is calling: a person, with the role and organisation every access rule looks at."""

from __future__ import annotations

from dataclasses import dataclass

import audit
from portal.accounts.models import Role


@dataclass(frozen=True)
class Caller:
    """Who is calling, as every rule below sees them: the one type for it. A web request's
    ``Principal`` (how they signed in) and a service call's ``Acting`` (when, from where) each
    carry one."""

    user_id: int
    role: Role
    organisation_id: int

    @property
    def actor(self) -> audit.Actor:
        """The same person as the audit log records them."""
        return audit.Actor(
            user_id=self.user_id, role=self.role.value, organisation_id=self.organisation_id
        )

"""Errors of destruction: exchange errors (portal.exchange.errors), turned into responses in one
place (portal.app) like theirs.

    Refused (exchange)
    └── Conflict                 409: the review or hold is not in a state that allows it
        └── SecondPersonRequired 409: the requester cannot approve their own request
    DestructionIncomplete        a run could not verify what it destroyed (the command exits 1)
"""

from __future__ import annotations

from portal.exchange.errors import Refused


class Conflict(Refused):
    status = 409
    code = "conflict"


class SecondPersonRequired(Conflict):
    code = "second_person_required"


class DestructionIncomplete(Exception):
    """Verification found a blob or a key still present: no certificate; the next run retries."""

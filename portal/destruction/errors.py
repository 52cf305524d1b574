"""Errors of destruction: leaves of the portal's one tree (portal.errors, where it is drawn).

Conflict (portal.errors)     the review or hold is not in a state that allows it
└── SecondPersonRequired     the requester cannot approve their own request
Failure
└── DestructionIncomplete    a run could not verify what it destroyed (the command exits 1)
"""

from __future__ import annotations

from portal.errors import Conflict, Failure

__all__ = ["Conflict", "DestructionIncomplete", "SecondPersonRequired"]


class SecondPersonRequired(Conflict):
    code = "second_person_required"


class DestructionIncomplete(Failure):
    """Verification found a blob or a key still present: no certificate; the next run retries."""

"""TOTP (RFC 6238): 30-second steps, 6 digits, SHA-1, as every authenticator app expects.

The time is passed in, never read here, so tests set the clock instead of patching it. A code is
matched to its time step; the caller records the step and refuses it (and older ones) afterwards.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

from portal.text import is_whole_number

DIGITS = 6
# One step either side of now: clocks on phones drift, and typing a code takes time.
WINDOW = 1


def new_secret() -> str:
    """A 160-bit secret in Base32 (RFC 4226 recommends 160 bits; pyotp refuses under 112)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def matching_step(secret: str, typed: str, now: datetime) -> int | None:
    """The time step whose code ``typed`` is, within the window around ``now``; else None."""
    code = "".join(ch for ch in typed if not ch.isspace())
    if len(code) != DIGITS or not is_whole_number(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    # Compare against every step in the window, in constant time, without stopping early.
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def group_secret(secret: str) -> str:
    """The secret in groups of four letters, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))

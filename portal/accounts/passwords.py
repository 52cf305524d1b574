"""Passwords: Argon2id hashes, and the rules a new password must meet (NIST SP 800-63B style).

No composition rules (they push people to predictable patterns); instead a minimum length and a
refusal of common and guessable passwords, judged by zxcvbn's offline dictionaries.
"""

from __future__ import annotations

import argon2
import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 256  # Argon2 takes any length; this only bounds the work an attacker can ask for.


class PasswordHasher:
    """Argon2id with argon2-cffi's RFC 9106 defaults; tests may pass cheaper parameters."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        # Verified against when the e-mail is unknown, so that the answer takes as long as for a
        # real user with a wrong password (no user enumeration through timing).
        self._decoy = self._hasher.hash("decoy password that nobody has")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        if len(password) > MAX_LENGTH:
            password = password[:MAX_LENGTH]
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False


def password_problem(password: str, *, email: str) -> str | None:
    """Why ``password`` may not be used, in plain English, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Enter a password of at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Enter a password of at most {MAX_LENGTH} characters."
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in password.lower():
        return "Choose a password that does not contain your email address."
    result = zxcvbn.zxcvbn(password[:100], user_inputs=[email, local_part])
    if result["score"] < 3:
        warning = result["feedback"].get("warning") or "This password is too easy to guess."
        return f"{warning.rstrip('.')}. Choose a longer password, for example three or four unrelated words."
    return None

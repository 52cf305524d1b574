"""Passwords: Argon2id hashes, and the rules a new password must meet (NIST SP 800-63B style).

No composition rules (they push people to predictable patterns); instead a minimum length and a
refusal of common and guessable passwords, judged by zxcvbn's offline dictionaries: a password
must reach zxcvbn's top score (4), or be a passphrase of at least 15 characters that zxcvbn does not
find guessable (score 3 or more). ``Summer2026!!`` (score 3, 12 characters) is refused.
"""

from __future__ import annotations

import argon2
import zxcvbn

MIN_LENGTH = 12
PASSPHRASE_LENGTH = 15  # from this length a score of 3 is enough; below it, only 4
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
    score = int(result["score"])
    if score >= 4 or (len(password) >= PASSPHRASE_LENGTH and score >= 3):
        return None
    warning = result["feedback"].get("warning") or "This password is too easy to guess."
    if len(password) >= PASSPHRASE_LENGTH:
        return (
            f"{warning.rstrip('.')}. Choose a passphrase that is harder to guess, for example "
            "three or four unrelated words."
        )
    return (
        f"{warning.rstrip('.')}. Choose a passphrase of at least {PASSPHRASE_LENGTH} characters "
        "(for example three or four unrelated words), or a password that is much harder to guess."
    )

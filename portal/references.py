"""References for documents, cases and certificates: random, readable aloud, self-checking.

Format: 11 random Crockford Base32 characters (55 bits) and one check character, in three groups of
four: ``7KQ2-M9XD-3TPW``. Random, so nobody can enumerate references or infer volumes from them.

The check character is Damm's algorithm over the quasigroup ``x * y = 2x + y`` in GF(32) (modulus
x^5 + x^2 + 1). That quasigroup is totally anti-symmetric, so the check catches every single wrong
character and every swap of two neighbours, the check character included, and the check character
comes from the same 32-letter alphabet (unlike Crockford's mod-37 symbols ``*~$=U``, awkward to
read aloud).

Typing is forgiving: case, spaces and hyphens are ignored; O is read as 0, and I and L as 1.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from portal.errors import Invalid

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_ALIASES = {"O": "0", "I": "1", "L": "1"}
RANDOM_CHARS = 11
LENGTH = RANDOM_CHARS + 1
_IGNORED = frozenset(" -\t")


class InvalidReference(Invalid):
    """Not a reference: wrong length, a character outside the alphabet, or a failed check.

    The message is for the person who typed it (``kind`` names what they meant to type);
    ``reason`` says which rule failed, for tests and logs (never shown: it would say nothing more
    useful than "type it again")."""

    code = "invalid_reference"

    def __init__(self, kind: str = "reference", *, reason: str = "") -> None:
        super().__init__(
            f"That is not a valid {kind}: a character is wrong or two are swapped. "
            "Check it against the receipt and type it again."
        )
        self.reason = reason


def _times_two(value: int) -> int:
    value <<= 1
    return value ^ 0b100101 if value & 0b100000 else value


def _interim(values: list[int]) -> int:
    interim = 0
    for value in values:
        interim = _times_two(interim) ^ value
    return interim


def _group(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def new_reference(random_bits: Callable[[int], int] = secrets.randbits) -> str:
    number = random_bits(5 * RANDOM_CHARS)
    values = [(number >> (5 * i)) & 31 for i in range(RANDOM_CHARS)]
    # The check character c makes the whole run end at 0: 2*interim + c = 0, so c = 2*interim.
    values.append(_times_two(_interim(values)))
    return _group("".join(ALPHABET[v] for v in values))


def parse_reference(typed: str, kind: str = "reference") -> str:
    """The canonical form of a typed reference, or ``InvalidReference`` naming ``kind`` (what the
    person meant to type: "document reference", "case reference", ...)."""
    if len(typed) > 64:
        raise InvalidReference(kind, reason="too long")
    cleaned = []
    for ch in typed.upper():
        if ch in _IGNORED:
            continue
        ch = _ALIASES.get(ch, ch)
        if ch not in _VALUE:
            raise InvalidReference(kind, reason="a character that is not used in references")
        cleaned.append(ch)
    if len(cleaned) != LENGTH:
        raise InvalidReference(kind, reason=f"{len(cleaned)} characters instead of {LENGTH}")
    if _interim([_VALUE[ch] for ch in cleaned]) != 0:
        raise InvalidReference(kind, reason="the check character does not match")
    return _group("".join(cleaned))

"""Free text typed by people (titles, instructions, names): checked once, the same way everywhere.

Control characters are refused rather than stored: they are never meaningful in these fields, they
can hide text in a terminal or a log (ANSI escapes, right-to-left overrides), and PostgreSQL
refuses NUL outright, which must be a clear 400 and not a server error.
"""

from __future__ import annotations

import unicodedata

from portal.errors import Invalid


class TextRefused(Invalid):
    code = "invalid_text"


def is_whole_number(value: str) -> bool:
    """Whether ``value`` is a whole number written in ASCII digits.

    ``str.isdigit()`` alone is also true of "³" (which ``int()`` refuses: a server error instead
    of a clear answer) and of other scripts' digits (which ``int()`` reads as a number nobody
    typed). Header values are Latin-1, so "³" can arrive in a Content-Length too.
    """
    return value.isascii() and value.isdigit()


def has_control_characters(value: str, *, allow_newlines: bool = False) -> bool:
    allowed = "\n\r\t" if allow_newlines else ""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in allowed for ch in value)


def clean_text(
    value: str, *, what: str, shortest: int = 1, longest: int, multiline: bool = False
) -> str:
    """``value`` normalised (NFC, trimmed), or TextRefused with a message naming ``what``."""
    text = unicodedata.normalize("NFC", value).strip()
    if has_control_characters(text, allow_newlines=multiline):
        raise TextRefused(f"The {what} contains characters that cannot be used. Type it again.")
    if not shortest <= len(text) <= longest:
        if shortest:
            raise TextRefused(f"Give the {what} in {shortest} to {longest:,} characters.")
        raise TextRefused(f"Keep the {what} to at most {longest:,} characters.")
    return text

"""Who calls, and what each kind of route answers them, for the access table."""

from __future__ import annotations

WHO = ("anonymous", "uploader", "inspector", "lead", "dpo", "admin")
SIGNED_IN = WHO[1:]


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(WHO, status)


def page_for(*allowed: str, ok: int = 200) -> dict[str, int]:
    """A page: anonymous callers are sent to sign in; other roles see 'not found'."""
    return {who: ok if who in allowed else (303 if who == "anonymous" else 404) for who in WHO}


def api_for(*allowed: str, ok: int = 200) -> dict[str, int]:
    """An API route: no token is 401; a role that may not use it sees 'not found'."""
    return {who: ok if who in allowed else (401 if who == "anonymous" else 404) for who in WHO}

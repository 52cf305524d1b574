"""Device cookies (OWASP, "Slow down online guessing attacks with device cookies").

A browser that has fully signed in to an account (password and second factor) is given a
long-lived cookie naming that account, HMAC-signed with a key from the key store
(``sign-in-devices``). When it presents the cookie with that account's e-mail, the sign-in is not
held up by the pauses an attacker's failures cause for the account or for the client address
(portal/accounts/throttle.py); its own failures count against the cookie alone.

The cookie is not a credential: the password and the second factor are still required. It holds
the account's id, when it was issued and a random part, ``d1.<user id>.<issued>.<random>.<mac>``,
and is HttpOnly, Secure behind TLS, SameSite=Lax and ``__Host-`` prefixed behind TLS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

LIFETIME = timedelta(days=365)
KEY_NAME = "sign-in-devices"
_VERSION = "d1"


@dataclass(frozen=True)
class DeviceClaim:
    user_id: int
    nonce: str


@dataclass(frozen=True)
class DeviceCookies:
    key: bytes

    def issue(self, user_id: int, now: datetime) -> str:
        body = f"{_VERSION}.{user_id}.{int(now.timestamp())}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._mac(body)}"

    def claim(self, raw: str | None, now: datetime) -> DeviceClaim | None:
        """The account a cookie names, if it is this installation's, well formed and not expired."""
        if not raw or len(raw) > 200:
            return None
        body, _, mac = raw.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        version, user_id, issued, nonce = [*body.split("."), "", "", "", ""][:4]
        if version != _VERSION or not user_id.isdigit() or not issued.isdigit() or not nonce:
            return None
        issued_at = datetime.fromtimestamp(int(issued), UTC)
        if not issued_at - timedelta(minutes=5) <= now < issued_at + LIFETIME:
            return None
        return DeviceClaim(user_id=int(user_id), nonce=nonce)

    def _mac(self, body: str) -> str:
        return hmac.new(self.key, b"device-cookie|" + body.encode(), hashlib.sha256).hexdigest()

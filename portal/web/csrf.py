"""CSRF protection: a signed double-submit token on every state-changing request from a browser.

Each browser holds a random value in an HttpOnly cookie; our pages embed an HMAC (the key lives in
the key store) in every form (``csrf_token``) and our scripts send it as ``X-CSRF-Token``. Another
site can make the browser send the cookie but cannot read it or compute the HMAC, so it cannot
forge the field. The value is replaced at sign-in and sign-out.

What the HMAC covers: before sign-in, the cookie's value (the anonymous pre-session); with a
session (half or fully signed in), the session's secret id as well. Threat (issue 18, item 6): a
token bound to the cookie alone worked in any session that browser cookie was sent with, so a
token taken from one session (an attacker's own, with a CSRF cookie planted in the victim's
browser) was good in another user's session. Now a token is good only in the session it was made
for, and signing in or out makes every earlier token worthless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from portal.errors import NotAllowed
from portal.web.principal import session_cookie_name
from portal.web.requests import submitted_form

FIELD = "csrf_token"
HEADER = "x-csrf-token"


def cookie_name(request: Request) -> str:
    return "__Host-portal_csrf" if request.state.runtime.settings.uses_tls else "portal_csrf"


def browser_value(request: Request) -> str:
    """This browser's CSRF value: the cookie's, or a new one (set on the response by middleware)."""
    value = getattr(request.state, "csrf_value", None)
    if value is None:
        value = request.cookies.get(cookie_name(request)) or secrets.token_urlsafe(32)
        request.state.csrf_value = value
    return str(value)


def _session_secret(request: Request) -> str | None:
    """The raw id of the live session this request is signed in with (half or fully), if any.

    Only when web.access.route found a live session for it: a stale or forged session cookie
    binds nothing, and the request counts as anonymous, as it does everywhere else.
    """
    principal = getattr(request.state, "principal", None)
    if principal is None or not principal.via_session:
        return None
    if getattr(request.state, "csrf_renewed", False):
        return None  # signed in or out during this request: its pages are for the next one
    return request.cookies.get(session_cookie_name(request)) or None


def token_for(request: Request) -> str:
    key: bytes = request.state.runtime.csrf_key
    session = _session_secret(request)
    if session is None:
        bound = b"pre-session\0" + browser_value(request).encode()
    else:
        bound = b"session\0" + session.encode() + b"\0" + browser_value(request).encode()
    return hmac.new(key, bound, hashlib.sha256).hexdigest()


def renew(request: Request) -> None:
    """A new value for this browser (at sign-in and sign-out, and when a session is ended): what
    the rest of this request renders is for the anonymous pre-session with the new value; a
    session just started binds the tokens of the pages that follow."""
    request.state.csrf_value = secrets.token_urlsafe(32)
    request.state.csrf_renewed = True


def require_valid_token(request: Request) -> None:
    """The token in the header or the form (parsed already, bounded, by web.access.route), made
    for this browser and this session; else a 403. A streamed upload form's token is its first
    field, checked by web.access.check_form_token."""
    sent = request.headers.get(HEADER, "")
    if not sent:
        field = submitted_form(request).get(FIELD)
        sent = field if isinstance(field, str) else ""
    require_sent_token(request, sent)


def require_sent_token(request: Request, sent: str) -> None:
    """``sent`` is this browser's and this session's token; else a 403. Never read from the
    address: a token in a URL ends up in the address bar, history and logs."""
    cookie = request.cookies.get(cookie_name(request))
    if not cookie or not sent or not hmac.compare_digest(sent, token_for(request)):
        raise NotAllowed(
            "This form has expired or did not come from the portal. Go back, reload the page and "
            "try again.",
            code="csrf_failed",
        )


def set_cookie(request: Request, response: Response) -> None:
    """Send the browser its CSRF cookie if it has none yet or it was renewed."""
    if getattr(request.state, "csrf_value", None) is None:
        return
    if request.cookies.get(cookie_name(request)) and not getattr(
        request.state, "csrf_renewed", False
    ):
        return
    response.set_cookie(
        cookie_name(request),
        request.state.csrf_value,
        httponly=True,
        secure=request.state.runtime.settings.uses_tls,
        samesite="strict",
        path="/",
    )

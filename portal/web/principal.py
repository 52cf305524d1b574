"""Who is calling: a browser session (cookie) or an API client (personal access token)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session
from starlette.requests import Request

from audit import Actor
from portal.accounts import sessions, tokens
from portal.accounts.caller import Caller
from portal.accounts.models import Role, User
from portal.errors import Unauthenticated


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    role: Role
    organisation_id: int
    mfa_done: bool
    session_id: int | None = None
    token_id: int | None = None

    @property
    def via_session(self) -> bool:
        return self.session_id is not None

    @property
    def caller(self) -> Caller:
        return Caller(user_id=self.user_id, role=self.role, organisation_id=self.organisation_id)

    @property
    def actor(self) -> Actor:
        return self.caller.actor

    @classmethod
    def of(
        cls,
        user: User,
        *,
        mfa_done: bool,
        session_id: int | None = None,
        token_id: int | None = None,
    ) -> Principal:
        assert user.id is not None
        return cls(
            user_id=user.id,
            email=user.email,
            role=user.role,
            organisation_id=user.organisation_id,
            mfa_done=mfa_done,
            session_id=session_id,
            token_id=token_id,
        )


def session_cookie_name(request: Request) -> str:
    # The __Host- prefix (only over TLS) stops a sibling sub-domain from planting a session cookie.
    return "__Host-portal_session" if request.state.runtime.settings.uses_tls else "portal_session"


def authenticate(request: Request, *, api: bool) -> Principal | None:
    """Find the caller. Runs in a worker thread (it queries the database)."""
    runtime = request.state.runtime
    now = runtime.clock()
    header = request.headers.get("authorization", "")
    with Session(runtime.engine) as db:
        if header:
            if not api:
                return None  # pages are for browsers; tokens are for the API
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                raise Unauthenticated("Use Authorization: Bearer TOKEN.")
            found_token = tokens.find_token(db, raw.strip(), now=now)
            if found_token is None:
                _audit_refused_token(db, request, raw.strip(), now)
                raise Unauthenticated(
                    "This token is not valid: it may have expired or been revoked."
                )
            token, user = found_token
            return Principal.of(user, mfa_done=True, token_id=token.id)
        raw_session = request.cookies.get(session_cookie_name(request), "")
        if not raw_session:
            return None
        found = sessions.find_session(db, raw_session, now=now, policy=runtime.session_policy)
        if found is None:
            return None
        web_session, user = found
        return Principal.of(user, mfa_done=web_session.mfa_done, session_id=web_session.id)


def _audit_refused_token(db: Session, request: Request, raw: str, now: datetime) -> None:
    """A refused bearer token is a failed sign-in (outcome denied), with the client's address as
    the others have; the token's id and owner when it is one of ours, never the token itself."""
    from audit import Outcome, Target
    from portal.audit_vocabulary import Action, TargetKind
    from portal.web.requests import origin_of

    reason, token, user = tokens.why_refused(db, raw, now=now)
    actor = Actor()
    if user is not None and user.id is not None:
        actor = Actor(user_id=user.id, role=user.role.value, organisation_id=user.organisation_id)
    request.state.runtime.auditor.record(
        db,
        Action.SIGN_IN_FAILED,
        actor=actor,
        now=now,
        origin=origin_of(request),
        outcome=Outcome.DENIED,
        target=Target(TargetKind.TOKEN, str(token.id)) if token is not None else None,
        details={"factor": "token", "reason": reason},
    )
    db.commit()

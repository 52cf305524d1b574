"""The API of one's own account: who am I, and one's personal access tokens."""

from __future__ import annotations

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts import schemas, tokens
from portal.accounts.models import ApiToken, Role
from portal.models import Organisation
from portal.web.access import ANY_API_USER, principal_of, route
from portal.web.jsonbody import json_reply
from portal.web.requests import origin_of, path_id, runtime_of


def api_me(request: Request) -> Response:
    principal = principal_of(request)
    with Session(runtime_of(request).engine) as db:
        organisation = db.get(Organisation, principal.organisation_id)
        assert organisation is not None
    me = schemas.Me(
        id=principal.user_id,
        email=principal.email,
        role=principal.role,
        organisation=schemas.OwnOrganisation(
            code=organisation.slug, name=organisation.name, kind=organisation.kind
        ),
    )
    return json_reply(me)


def _token(token: ApiToken) -> schemas.Token:
    assert token.id is not None  # a token listed is a token stored
    return schemas.Token(
        id=token.id,
        name=token.name,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
    )


def api_tokens(request: Request) -> Response:
    principal = principal_of(request)
    with Session(runtime_of(request).engine) as db:
        listed = tokens.list_tokens(db, principal.user_id)
    return json_reply(schemas.Tokens(items=[_token(t) for t in listed], next=None))


def api_token_revoke(request: Request) -> Response:
    revoke_token(request, any_owner=principal_of(request).role is Role.admin)
    return Response(status_code=204)


def revoke_token(request: Request, *, any_owner: bool) -> None:
    """Revoke the route's ``token_id``: the caller's own, or (``any_owner``) anyone's; the API
    and the account and admin pages all revoke through here."""
    principal = principal_of(request)
    runtime = runtime_of(request)
    with Session(runtime.engine) as db:
        tokens.revoke_token_of(
            db,
            runtime.auditor,
            path_id(request, "token_id"),
            owner_id=None if any_owner else principal.user_id,
            actor=principal.actor,
            now=runtime.clock(),
            origin=origin_of(request),
        )
        db.commit()


ROUTES = [
    route("/api/v1/me", api_me, rule=ANY_API_USER, methods=["GET"]),
    route("/api/v1/tokens", api_tokens, rule=ANY_API_USER, methods=["GET"]),
    route("/api/v1/tokens/{token_id}", api_token_revoke, rule=ANY_API_USER, methods=["DELETE"]),
]

"""The accounts API's shapes (web.schemas): who the caller is, and their API tokens (never the
tokens themselves: a token is shown once, on the page that creates it)."""

from __future__ import annotations

from portal.accounts.models import Role
from portal.models import OrganisationKind
from portal.schemas import Reply, Time


class OwnOrganisation(Reply):
    code: str
    name: str
    kind: OrganisationKind


class Me(Reply):
    id: int
    email: str
    role: Role
    organisation: OwnOrganisation


class Token(Reply):
    id: int
    name: str
    created_at: Time
    expires_at: Time
    revoked_at: Time | None
    last_used_at: Time | None


class Tokens(Reply):
    items: list[Token]
    next: None

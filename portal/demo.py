"""``portal demo``: organisations and one user per role, ready to sign in on this machine.

Demo only: it prints passwords and TOTP secrets, and running it again gives the demo users new ones.
It refuses to touch a database that holds users it did not make.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from portal.accounts import totp, users
from portal.accounts.models import Role, User
from portal.accounts.passwords import PasswordHasher
from portal.accounts.secrets import SecretBox
from portal.models import Organisation, OrganisationKind

DEMO_DOMAIN = "demo.example"

ORGANISATIONS = [
    ("care-inspectorate", "Care Inspectorate", OrganisationKind.inspectorate),
    ("aberdeen-city", "Aberdeen City Council", OrganisationKind.authority),
    ("dundee-city", "Dundee City Council", OrganisationKind.authority),
    ("dumfries-galloway", "Dumfries and Galloway Council", OrganisationKind.authority),
    ("na-h-eileanan-siar", "Comhairle nan Eilean Siar", OrganisationKind.authority),
]

PEOPLE = [
    ("uploader.aberdeen", Role.uploader, "aberdeen-city"),
    ("uploader.dundee", Role.uploader, "dundee-city"),
    ("inspector", Role.inspector, "care-inspectorate"),
    ("lead", Role.lead, "care-inspectorate"),
    ("dpo", Role.dpo, "care-inspectorate"),
    ("admin", Role.admin, "care-inspectorate"),
]


class DemoRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoUser:
    email: str
    role: Role
    organisation: str
    password: str
    totp_secret: str
    otpauth_uri: str


def _password() -> str:
    words = [
        "heather", "puffin", "thistle", "loch", "granite", "harbour", "bothy", "selkie",
        "machair", "ferry", "curlew", "bramble", "tweed", "otter", "skerry", "kelp",
    ]  # fmt: skip
    return "-".join(secrets.choice(words) for _ in range(4)) + "-" + str(secrets.randbelow(100))


def create_demo(
    db: Session, *, hasher: PasswordHasher, box: SecretBox, now: datetime, issuer: str
) -> list[DemoUser]:
    """Create (or refresh) the demo organisations and users; returns their credentials."""
    strangers = db.exec(select(User).where(col(User.email).not_like(f"%@{DEMO_DOMAIN}"))).first()
    if strangers is not None:
        raise DemoRefused(
            "This database has users that the demo did not create. Run the demo with its own "
            "PORTAL_HOME (e.g. PORTAL_HOME=./var-demo) so no real account is changed."
        )
    for slug, name, kind in ORGANISATIONS:
        if db.exec(select(Organisation).where(Organisation.slug == slug)).first() is None:
            users.add_organisation(db, slug=slug, name=name, kind=kind, now=now)
    created = []
    for local, role, slug in PEOPLE:
        email = f"{local}@{DEMO_DOMAIN}"
        user = db.exec(select(User).where(User.email == email)).first()
        if user is None:
            user, _ = users.add_user(
                db, email=email, role=role, organisation=users.find_organisation(db, slug), now=now
            )
        password = _password()
        user.password_hash = hasher.hash(password)
        secret = users.start_totp(db, user, box=box)
        user.enrolled_at = now
        user.disabled_at = None
        db.add(user)
        created.append(
            DemoUser(
                email=email,
                role=role,
                organisation=slug,
                password=password,
                totp_secret=secret,
                otpauth_uri=totp.provisioning_uri(secret, account=email, issuer=issuer),
            )
        )
    db.flush()
    return created


def describe(people: list[DemoUser], url: str) -> Iterator[str]:
    yield f"Demo users (sign in at {url}/sign-in; codes from any authenticator app, or"
    yield "  python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"):"
    for person in people:
        yield ""
        yield f"  {person.role.value:<9} {person.email}  ({person.organisation})"
        yield f"            password     {person.password}"
        yield f"            TOTP secret  {person.totp_secret}"
        yield f"            {person.otpauth_uri}"

"""``portal demo``: organisations, one user per role and an open review, ready on this machine.

Demo only: it prints passwords and TOTP secrets, and running it again gives the demo users new ones.
It refuses to touch a database that holds users it did not make.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

import audit
from portal.accounts import totp, users
from portal.accounts.models import Role, User
from portal.accounts.passwords import PasswordHasher
from portal.accounts.secrets import SecretBox
from portal.auditing import Auditor
from portal.errors import Conflict
from portal.exchange import reviews
from portal.exchange.acting import Acting
from portal.exchange.models import Review
from portal.models import Organisation, OrganisationKind
from storage import Vault

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


class DemoRefused(Conflict):
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


REVIEW_CODE = "CSR26"


def create_demo(
    db: Session,
    *,
    hasher: PasswordHasher,
    box: SecretBox,
    now: datetime,
    issuer: str,
    auditor: Auditor,
    vault: Vault,
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
                db,
                email=email,
                role=role,
                organisation=users.find_organisation(db, slug),
                now=now,
                name=f"{local.replace('.', ' ').replace('-', ' ').title()} (demo)",
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
    _demo_review(db, auditor=auditor, now=now, vault=vault)
    return created


def _demo_review(db: Session, *, auditor: Auditor, now: datetime, vault: Vault) -> None:
    """An open review asking every authority for records, with the demo inspector on its team."""
    if db.exec(select(Review).where(Review.code == REVIEW_CODE)).first() is not None:
        return
    acting = Acting.operator(now, actor=audit.Actor.system("demo"))
    plan = reviews.ReviewPlan(
        code=REVIEW_CODE,
        title="Thematic review of records for children in need of care and protection",
        legal_basis="Public Services Reform (Scotland) Act 2010, section 53 (demo)",
        opens_on=now.date() - timedelta(days=7),
        closes_on=now.date() + timedelta(days=60),
        retention_days=90,
    )
    lead = reviews.user_by_email(db, f"lead@{DEMO_DOMAIN}")
    review = reviews.create_review(db, auditor, acting, plan, lead=lead, vault=vault)
    reviews.add_member(
        db, auditor, acting, review, reviews.user_by_email(db, f"inspector@{DEMO_DOMAIN}")
    )
    for slug, _, kind in ORGANISATIONS:
        if kind is OrganisationKind.authority:
            organisation = reviews.organisation_by_code(db, slug)
            reviews.add_organisation(db, auditor, acting, review, organisation)
            reviews.create_request(
                db,
                auditor,
                acting,
                vault,
                review,
                organisation=organisation,
                title="Records of the 5 selected young people",
                instructions=(
                    "For each young person on the list sent separately: the current child's plan, "
                    "the most recent assessment, and minutes of the last two reviews. Create one "
                    "case reference per young person and upload their records under it."
                ),
                due_on=now.date() + timedelta(days=21),
                expected_items=15,
            )
    reviews.open_review(db, auditor, acting, review)


def describe(people: list[DemoUser], url: str) -> Iterator[str]:
    yield f"Demo users (sign in at {url}/sign-in; codes from any authenticator app, or"
    yield "  python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"):"
    for person in people:
        yield ""
        yield f"  {person.role.value:<9} {person.email}  ({person.organisation})"
        yield f"            password     {person.password}"
        yield f"            TOTP secret  {person.totp_secret}"
        yield f"            {person.otpauth_uri}"

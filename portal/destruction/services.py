"""Certificates as the API, the pages and the command line find them; the destroyer of a runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

import audit
from portal import keys, policy, refusals
from portal.accounts.models import Role
from portal.audit_vocabulary import Action, TargetKind
from portal.destruction.certificates import Signed
from portal.destruction.execution import DESTRUCTION, Destroyer
from portal.destruction.models import Certificate
from portal.exchange.acting import Acting
from portal.exchange.errors import InvalidReference, NotFound
from portal.exchange.models import Review
from portal.references import parse_reference

if TYPE_CHECKING:
    from portal.runtime import Runtime
    from portal.settings import Settings


def destroyer_for(runtime: Runtime, *, actor: audit.Actor | None = None) -> Destroyer:
    """Certificates are signed with the portal's one signing key (the audit log's): one key to
    publish, exported by ``portal audit public-key``. ``actor``: the person at the command line
    (the worker's run is the process's own)."""
    return Destroyer(
        engine=runtime.engine,
        vault=runtime.vault,
        auditor=runtime.auditor,
        signing_key=keys.signing_key(runtime.keys),
        public_url=runtime.settings.public_url,
        clock=runtime.clock,
        actor=actor if actor is not None else DESTRUCTION,
    )


def signing_key(settings: Settings) -> audit.SigningKey:
    return keys.signing_key(keys.checked_keys(settings))


def _may_see(db: Session, acting: Acting, review: Review | None) -> bool:
    caller = acting.caller
    if caller is None:
        return True
    if review is None:
        return False
    return caller.role is Role.dpo or (
        caller.role is Role.lead and policy.is_team_member(db, caller, review)
    )


def _why_not(acting: Acting) -> str:
    caller = acting.caller
    return "not_member" if caller is not None and caller.role is Role.lead else "role"


def _refuse(db: Session, acting: Acting, certificate: Certificate, reason: str) -> None:
    """Audit a refusal of a certificate that exists (portal.refusals); the caller then raises."""
    review = db.get(Review, certificate.review_id)
    refusals.record(
        db,
        acting,
        Action.ACCESS_DENIED,
        target=audit.Target(TargetKind.CERTIFICATE, certificate.reference),
        review=review.code if review is not None else None,
        reason=reason,
    )


def _lookup(db: Session, typed_reference: str) -> Certificate | None:
    reference = parse_reference(typed_reference, "certificate reference")
    return db.exec(select(Certificate).where(Certificate.reference == reference)).first()


def find_certificate(db: Session, acting: Acting, typed_reference: str) -> Certificate:
    """A certificate the caller may see, or NotFound; a refusal of one that exists is audited."""
    certificate = _lookup(db, typed_reference)
    if certificate is None:
        raise NotFound("There is no certificate with that reference that you can see.")
    if not _may_see(db, acting, db.get(Review, certificate.review_id)):
        _refuse(db, acting, certificate, _why_not(acting))
        raise NotFound("There is no certificate with that reference that you can see.")
    return certificate


def audit_role_refusal(db: Session, acting: Acting, typed_reference: str) -> None:
    """A route refused the caller's role (portal.web.access): audit it if the certificate exists."""
    try:
        certificate = _lookup(db, typed_reference)
    except InvalidReference:
        return
    if certificate is not None:
        _refuse(db, acting, certificate, "role")


def list_certificates(db: Session, acting: Acting) -> list[Certificate]:
    rows = db.exec(select(Certificate).order_by(col(Certificate.issued_at).desc())).all()
    return [c for c in rows if _may_see(db, acting, db.get(Review, c.review_id))]


def signed(certificate: Certificate) -> Signed:
    return Signed(
        body=certificate.body.encode("utf-8"),
        signature=certificate.signature,
        key_fingerprint=certificate.key_fingerprint,
    )

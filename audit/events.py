"""What an event says: typed fields only, each held to a pattern, and details on an allow-list.

SPEC §5: the log never holds file names, passwords, codes, tokens or keys. There is no free-text
field: every string is held to a short pattern (no spaces, no dots in references, no lower/upper
mix where a secret would need one), and ``details`` accepts only the keys of ``DETAIL_KEYS``, each
with one kind of scalar value. A value that does not fit is refused with ``ForbiddenDetail``
rather than stored, truncated or escaped.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypeVar

from .actions import Action, Outcome, TargetKind
from .errors import EventRejected, ForbiddenDetail

MAX_INT = 2**63 - 1  # a BIGINT everywhere
MAX_DETAILS = 16

ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")
TARGET_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
REVIEW_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}")
# Crockford Base32 groups with hyphens and the check character (which may be * ~ $ = U).
REFERENCE = re.compile(r"[0-9A-Z][0-9A-Z*~$=-]{0,47}")
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class DetailKind(enum.Enum):
    COUNT = "a whole number from 0 to 2**63-1"
    FLAG = "true or false"
    WORD = "a lower-case word: a-z, 0-9 and _, at most 40 characters, starting with a letter"
    CONTENT_TYPE = "a media type such as application/pdf"
    MALWARE_NAME = "a scanner signature name such as Win.Test.EICAR_HDB-1"
    ACTION = "an action name from audit.Action"
    REVIEW = "a review code such as SWG24"
    REFERENCE = "a reference in upper-case Crockford Base32 such as 7KQ2-M9XD-4"


_PATTERNS = {
    DetailKind.WORD: re.compile(r"[a-z][a-z0-9_]{0,39}"),
    DetailKind.CONTENT_TYPE: re.compile(r"[a-z]{1,20}/[a-z0-9][a-z0-9.+-]{0,63}"),
    DetailKind.MALWARE_NAME: re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}"),
    DetailKind.REVIEW: REVIEW_CODE,
    DetailKind.REFERENCE: REFERENCE,
}

# The allow-list of details keys: THE place to extend. A key must name a fact, never carry
# user-chosen text; pick the narrowest kind that fits.
DETAIL_KEYS: Mapping[str, DetailKind] = MappingProxyType(
    {
        "attempts": DetailKind.COUNT,
        "failures": DetailKind.COUNT,
        "count": DetailKind.COUNT,
        "events": DetailKind.COUNT,
        "size_bytes": DetailKind.COUNT,
        "first_sequence": DetailKind.COUNT,
        "last_sequence": DetailKind.COUNT,
        "broken_sequence": DetailKind.COUNT,
        "approved_by": DetailKind.COUNT,
        "key_version": DetailKind.COUNT,
        "retention_days": DetailKind.COUNT,
        "expires_in_days": DetailKind.COUNT,
        "filter_actor": DetailKind.COUNT,
        "since_us": DetailKind.COUNT,
        "until_us": DetailKind.COUNT,
        "broken_kind": DetailKind.WORD,
        "reason": DetailKind.WORD,
        "verdict": DetailKind.WORD,
        "method": DetailKind.WORD,
        "format": DetailKind.WORD,
        "factor": DetailKind.WORD,
        "state": DetailKind.WORD,
        "previous_state": DetailKind.WORD,
        "granted_role": DetailKind.WORD,
        "scope": DetailKind.WORD,
        "lift_reason": DetailKind.WORD,
        "rule": DetailKind.WORD,
        "mfa": DetailKind.FLAG,
        "filtered": DetailKind.FLAG,
        "early": DetailKind.FLAG,
        "dry_run": DetailKind.FLAG,
        "offline": DetailKind.FLAG,
        "content_type": DetailKind.CONTENT_TYPE,
        "malware_signature": DetailKind.MALWARE_NAME,
        "filter_action": DetailKind.ACTION,
        "filter_review": DetailKind.REVIEW,
        "filter_document": DetailKind.REFERENCE,
        "case": DetailKind.REFERENCE,
        "filter_case": DetailKind.REFERENCE,
    }
)

DetailValue = int | bool | str
E = TypeVar("E", bound=enum.StrEnum)


@dataclass(frozen=True)
class Actor:
    """Who acted: a user (id, role, organisation id), or a process with a role and no user."""

    user_id: int | None = None
    role: str | None = None
    organisation_id: int | None = None

    @classmethod
    def system(cls, role: str = "system") -> Actor:
        return cls(user_id=None, role=role, organisation_id=None)


@dataclass(frozen=True)
class Target:
    """What was acted on: a kind from the registry and its reference or id (never a name)."""

    kind: TargetKind
    ref: str


@dataclass(frozen=True)
class AuditEvent:
    """One event as the caller states it; validated on construction.

    The log adds the sequence number, the time and the chain hash when it stores it.
    """

    action: Action
    actor: Actor
    outcome: Outcome = Outcome.SUCCESS
    target: Target | None = None
    review: str | None = None
    document: str | None = None
    client: str | None = None
    request_id: str | None = None
    details: Mapping[str, DetailValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are stored once, here
        set_(self, "action", _member(Action, self.action, "action"))
        set_(self, "outcome", _member(Outcome, self.outcome, "outcome"))
        _check_actor(self.actor)
        if self.target is not None:
            kind = _member(TargetKind, self.target.kind, "target kind")
            _check("target reference", self.target.ref, TARGET_REF)
            set_(self, "target", Target(kind, self.target.ref))
        _check("review code", self.review, REVIEW_CODE)
        _check("document reference", self.document, REFERENCE)
        set_(self, "client", _client_address(self.client))
        _check("request id", self.request_id, REQUEST_ID)
        set_(self, "details", MappingProxyType(check_details(self.details)))


@dataclass(frozen=True)
class AuditRecord:
    """One stored event, as read back (not re-validated: a tampered row must still be readable)."""

    seq: int
    at: datetime
    actor: Actor
    action: str
    outcome: str
    target: Target | None
    review: str | None
    document: str | None
    client: str | None
    request_id: str | None
    details: Mapping[str, DetailValue]
    hash: str


def check_details(details: Mapping[str, object]) -> dict[str, DetailValue]:
    """The details, checked against ``DETAIL_KEYS``; raise ``ForbiddenDetail`` otherwise."""
    if not isinstance(details, Mapping):
        raise ForbiddenDetail(f"details must be a mapping, not {type(details).__name__}")
    if len(details) > MAX_DETAILS:
        raise ForbiddenDetail(f"details has {len(details)} keys; at most {MAX_DETAILS} allowed")
    checked: dict[str, DetailValue] = {}
    for key, value in details.items():
        kind = DETAIL_KEYS.get(key) if isinstance(key, str) else None
        if kind is None:
            # The key is not echoed in full: a caller may have used a secret as a key.
            shown = repr(key)[:24]
            raise ForbiddenDetail(
                f"details key {shown} is not allowed; allowed keys are listed in "
                "audit.events.DETAIL_KEYS"
            )
        checked[key] = _detail_value(key, kind, value)
    return checked


def _detail_value(key: str, kind: DetailKind, value: object) -> DetailValue:
    if kind is DetailKind.FLAG:
        if type(value) is bool:
            return value
    elif kind is DetailKind.COUNT:
        if type(value) is int and 0 <= value <= MAX_INT:
            return value
    elif kind is DetailKind.ACTION:
        if isinstance(value, str) and value in Action._value2member_map_:
            return str(value)
    elif type(value) is str or isinstance(value, enum.StrEnum):
        text = str(value)
        if _PATTERNS[kind].fullmatch(text):
            return text
    # Never echo the value: it may be exactly the secret this check keeps out of the log.
    raise ForbiddenDetail(
        f"details[{key!r}] must be {kind.value}; the value given ({type(value).__name__}) "
        "was refused"
    )


def _member(enum_type: type[E], value: object, name: str) -> E:
    try:
        return enum_type(value)  # type: ignore[arg-type]  # any value: refused below if bad
    except ValueError:
        raise EventRejected(
            f"{name} {str(value)[:40]!r} is not registered in audit.{enum_type.__name__}"
        ) from None


def _check(name: str, value: str | None, pattern: re.Pattern[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise EventRejected(
            f"{name} is not valid: it must match {pattern.pattern} (value refused, not stored)"
        )


def _check_actor(actor: Actor) -> None:
    if not isinstance(actor, Actor):
        raise EventRejected(f"actor must be an audit.Actor, not {type(actor).__name__}")
    for name in ("user_id", "organisation_id"):
        value = getattr(actor, name)
        if value is not None and not (type(value) is int and 0 <= value <= MAX_INT):
            raise EventRejected(f"actor {name} must be a whole number, not {type(value).__name__}")
    _check("actor role", actor.role, ROLE)


def _client_address(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "%" in value:  # an IPv6 zone id is free text: refused
        raise EventRejected("client address is not an IPv4 or IPv6 address")
    try:
        # Canonical text form: the same address is always written the same way.
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise EventRejected("client address is not an IPv4 or IPv6 address") from None

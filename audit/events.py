"""What an event says: typed fields only, each held to a pattern, and details on an allow-list.

SPEC §5: the log never holds file names, passwords, codes, tokens or keys. There is no free-text
field: every string is held to a short pattern (no spaces, no dots in references, no lower/upper
mix where a secret would need one), and ``details`` accepts only the keys of the application's
``Vocabulary``, each with one kind of scalar value. A value that does not fit is refused with
``ForbiddenDetail`` rather than stored, truncated or escaped.

An event is checked in two steps: on construction, what holds for every application (the
outcome, the actor, the target's reference, the client address, the request id, the shape of the
details); then, by the log it is appended to, against that log's ``Vocabulary`` (the action, the
kind of target, review codes, references and the details' keys and values: ``audit.vocabulary``).
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

from .errors import EventRejected, ForbiddenDetail

MAX_INT = 2**63 - 1  # a BIGINT everywhere
MAX_DETAILS = 16

ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")
TARGET_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # attempted and failed (wrong password, scanner error, broken chain)
    DENIED = "denied"  # refused by an authorisation check


class DetailKind(enum.Enum):
    COUNT = "a whole number from 0 to 2**63-1"
    FLAG = "true or false"
    WORD = "a lower-case word: a-z, 0-9 and _, at most 40 characters, starting with a letter"
    CONTENT_TYPE = "a media type such as application/pdf"
    MALWARE_NAME = "a scanner signature name such as Win.Test.EICAR_HDB-1"
    ACTION = "an action name from the vocabulary's registry"
    REVIEW = "a review code such as SWG24"
    REFERENCE = "a reference in upper-case Crockford Base32 such as 7KQ2-M9XD-4"


# The kinds whose pattern is the same for every application (the vocabulary has the others).
PATTERNS: Mapping[DetailKind, re.Pattern[str]] = MappingProxyType(
    {
        DetailKind.WORD: re.compile(r"[a-z][a-z0-9_]{0,39}"),
        DetailKind.CONTENT_TYPE: re.compile(r"[a-z]{1,20}/[a-z0-9][a-z0-9.+-]{0,63}"),
        DetailKind.MALWARE_NAME: re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}"),
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
    """What was acted on: a kind from the vocabulary's registry and its reference or id (never
    a name)."""

    kind: str
    ref: str


@dataclass(frozen=True)
class AuditEvent:
    """One event as the caller states it; validated on construction.

    The log adds the sequence number, the time and the chain hash when it stores it.
    """

    action: str  # a member of the vocabulary's registry (checked by the log)
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
        set_(self, "outcome", member(Outcome, self.outcome, "outcome"))
        _check_actor(self.actor)
        if self.target is not None:
            check_field("target reference", self.target.ref, TARGET_REF)
        set_(self, "client", _client_address(self.client))
        check_field("request id", self.request_id, REQUEST_ID)
        set_(self, "details", MappingProxyType(_details_shape(self.details)))


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


def _details_shape(details: Mapping[str, DetailValue]) -> dict[str, DetailValue]:
    """A mapping of at most ``MAX_DETAILS`` entries (its keys and values: the vocabulary's)."""
    if not isinstance(details, Mapping):
        raise ForbiddenDetail(f"details must be a mapping, not {type(details).__name__}")
    if len(details) > MAX_DETAILS:
        raise ForbiddenDetail(f"details has {len(details)} keys; at most {MAX_DETAILS} allowed")
    return dict(details)


def member(enum_type: type[E], value: object, name: str) -> E:
    """``value`` as a member of ``enum_type``; raise ``EventRejected`` if it is none."""
    try:
        return enum_type(value)  # type: ignore[arg-type]  # any value: refused below if bad
    except ValueError:
        raise EventRejected(
            f"{name} {str(value)[:40]!r} is not registered in {enum_type.__name__}"
        ) from None


def check_field(name: str, value: str | None, pattern: re.Pattern[str]) -> None:
    """Raise ``EventRejected`` unless ``value`` (if given) matches ``pattern`` in full."""
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
    check_field("actor role", actor.role, ROLE)


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

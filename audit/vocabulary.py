"""What an application may say in its audit log: its actions, its kinds of target, the shape of its
review codes and references, and its details keys.

The log knows the form of an event (``audit.events``); the words are the application's. It hands
them to ``AuditLog`` as one ``Vocabulary``, and every event the log stores is checked against it
first: nothing else accepts an action name, so a typo cannot create a new kind of event that a
DPO's search would miss, and a details key must be on the allow-list, with one kind of value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .errors import ForbiddenDetail
from .events import (
    MAX_INT,
    PATTERNS,
    AuditEvent,
    DetailKind,
    DetailValue,
    Target,
    check_field,
    member,
)


@dataclass(frozen=True)
class Vocabulary:
    """The application's registry of actions and kinds of target, its review-code and reference
    patterns, and its details keys, each with the kind of value it holds."""

    actions: type[enum.StrEnum]
    target_kinds: type[enum.StrEnum]
    review_code: re.Pattern[str]
    reference: re.Pattern[str]
    detail_keys: Mapping[str, DetailKind]

    def check(self, event: AuditEvent) -> AuditEvent:
        """``event`` with its action and target kind as registry members; raise
        ``EventRejected`` or ``ForbiddenDetail`` if it says anything the vocabulary does not."""
        action = member(self.actions, event.action, "action")
        target = event.target
        if target is not None:
            target = Target(member(self.target_kinds, target.kind, "target kind"), target.ref)
        check_field("review code", event.review, self.review_code)
        check_field("document reference", event.document, self.reference)
        return replace(
            event, action=action, target=target, details=self.check_details(event.details)
        )

    def check_details(self, details: Mapping[str, object]) -> dict[str, DetailValue]:
        """The details, checked against ``detail_keys``; raise ``ForbiddenDetail`` otherwise."""
        checked: dict[str, DetailValue] = {}
        for key, value in details.items():
            kind = self.detail_keys.get(key) if isinstance(key, str) else None
            if kind is None:
                # The key is not echoed in full: a caller may have used a secret as a key.
                shown = repr(key)[:24]
                raise ForbiddenDetail(
                    f"details key {shown} is not allowed; allowed keys are the vocabulary's "
                    "detail_keys"
                )
            checked[key] = self._detail_value(key, kind, value)
        return checked

    def _detail_value(self, key: str, kind: DetailKind, value: object) -> DetailValue:
        if kind is DetailKind.FLAG:
            if type(value) is bool:
                return value
        elif kind is DetailKind.COUNT:
            if type(value) is int and 0 <= value <= MAX_INT:
                return value
        elif kind is DetailKind.ACTION:
            if isinstance(value, str) and value in self.actions._value2member_map_:
                return str(value)
        elif type(value) is str or isinstance(value, enum.StrEnum):
            text = str(value)
            if self._pattern(kind).fullmatch(text):
                return text
        # Never echo the value: it may be exactly the secret this check keeps out of the log.
        raise ForbiddenDetail(
            f"details[{key!r}] must be {kind.value}; the value given ({type(value).__name__}) "
            "was refused"
        )

    def _pattern(self, kind: DetailKind) -> re.Pattern[str]:
        if kind is DetailKind.REVIEW:
            return self.review_code
        if kind is DetailKind.REFERENCE:
            return self.reference
        return PATTERNS[kind]

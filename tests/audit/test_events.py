"""Events hold typed fields only: nothing free-form through which a secret could slip in."""

from __future__ import annotations

import pytest

from audit import Actor, AuditEvent, DetailKind, EventRejected, ForbiddenDetail, Outcome, Target
from portal.audit_vocabulary import DETAIL_KEYS, VOCABULARY, Action, TargetKind


def event(**kwargs: object) -> AuditEvent:
    """An event as a log with the portal's vocabulary stores it (checked on construction, then
    against the vocabulary)."""
    fields: dict[str, object] = {"action": Action.SIGN_IN, "actor": Actor(1, "uploader", 3)}
    fields.update(kwargs)
    return VOCABULARY.check(AuditEvent(**fields))  # type: ignore[arg-type]


def test_a_valid_event_is_normalised() -> None:
    made = event(
        action="document.downloaded",
        outcome="denied",
        target=Target("document", "7KQ2-M9XD-4"),
        client="2001:DB8:0:0::1",
        details={"size_bytes": 12, "mfa": False, "reason": "not_on_team"},
    )
    assert made.action is Action.DOCUMENT_DOWNLOADED
    assert made.outcome is Outcome.DENIED
    assert made.target == Target(TargetKind.DOCUMENT, "7KQ2-M9XD-4")
    assert made.client == "2001:db8::1"


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2"},  # a key not on the allow-list
        {"file_name": "report.pdf"},
        {"token": "abc"},
        {"totp": 123456},
        {"reason": "Report of J Smith.pdf"},  # spaces, capitals, a dot
        {"reason": "JBSWY3DPEHPK3PXP"},  # a TOTP secret (upper-case Base32)
        {"reason": "a" * 41},  # too long
        {"reason": 5},  # wrong kind
        {"size_bytes": "12"},  # a string where a number belongs
        {"size_bytes": -1},
        {"size_bytes": 2**63},
        {"size_bytes": True},  # a bool is not a count
        {"mfa": 1},  # a count is not a bool
        {"size_bytes": 1.5},
        {"filter_action": "drop.table"},
        {"content_type": "text/html; charset=utf-8"},
        {"malware_signature": "Eicar test\nsecond line"},
        {"reason": ["a", "b"]},
        {i: 1 for i in range(3)},
    ],
)
def test_forbidden_details_are_refused(details: dict[object, object]) -> None:
    with pytest.raises(ForbiddenDetail) as caught:
        event(details=details)
    # The refusal never echoes the value it keeps out of the log.
    assert "hunter2" not in str(caught.value) and "JBSWY3DP" not in str(caught.value)


def test_too_many_details_are_refused() -> None:
    with pytest.raises(ForbiddenDetail):
        counts: dict[str, object] = {
            key: 1 for key, kind in DETAIL_KEYS.items() if kind is DetailKind.COUNT
        }
        counts.update(mfa=True, filtered=True, early=True)
        assert len(counts) > 16
        event(details=counts)
    with pytest.raises(ForbiddenDetail):
        event(details="reason=x")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": "document.teleported"},
        {"outcome": "maybe"},
        {"target": Target("person", "1")},
        {"target": Target(TargetKind.DOCUMENT, "secret report.pdf")},
        {"target": Target(TargetKind.DOCUMENT, "report.pdf")},
        {"review": "swg 24"},
        {"document": "7kq2-m9xd"},  # references are stored in canonical upper case
        {"client": "not-an-address"},
        {"client": "fe80::1%eth0"},
        {"request_id": "a b"},
        {"actor": Actor(1, "Inspector Jane", 3)},
        {"actor": Actor("1", "inspector", 3)},  # type: ignore[arg-type]
        {"actor": "admin"},
    ],
)
def test_fields_outside_their_pattern_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(EventRejected):
        event(**kwargs)


def test_every_detail_key_has_a_kind_and_accepts_its_kind() -> None:
    made = event(
        details={
            "content_type": "application/pdf",
            "malware_signature": "Win.Test.EICAR_HDB-1",
            "filter_action": "audit.exported",
            "filter_review": "SWG24",
            "filter_document": "7KQ2-M9XD-4",
            "verdict": "infected",
        }
    )
    assert made.details["verdict"] == "infected"
    with pytest.raises(TypeError):
        made.details["verdict"] = "clean"  # type: ignore[index]

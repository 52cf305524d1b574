"""The destruction API's shapes: each model parses a body or writes a response, and is its schema
in the OpenAPI document (web.schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictStr, WithJsonSchema

from portal.destruction.models import EarlyState, HoldReason, HoldScope, HoldState, LiftReason
from portal.destruction.schedule import Status
from portal.exchange.models import ReviewState
from portal.schemas import Body, Day, Reply, Time

# The reasons are parsed as text and chosen by the service (holds.py), whose refusal
# (invalid_reason, invalid_lift_reason) names the choices; the schema lists them.
HoldReasonText = Annotated[StrictStr, WithJsonSchema({"enum": [r.value for r in HoldReason]})]
LiftReasonText = Annotated[StrictStr, WithJsonSchema({"enum": [r.value for r in LiftReason]})]


class NewHold(Body):
    """A hold on a review, on one of its documents, or on every document of one of its cases."""

    review: StrictStr = Field(description="The review's code.")
    document: StrictStr | None = Field(
        None, description="A document's reference: hold that document only."
    )
    case: StrictStr | None = Field(
        None,
        description="A case's reference (of this review): hold every document of the case, "
        "those uploaded later too. Not with `document`.",
    )
    reason: HoldReasonText
    order_reference: StrictStr | None = Field(
        None,
        # Checked by the service, whose refusal (invalid_order_reference) says what to send.
        json_schema_extra={"maxLength": 40, "pattern": "^[A-Za-z0-9][A-Za-z0-9/._-]{0,39}$"},
        description="The reference of the order behind the hold; no names, no notes.",
    )


class LiftHold(Body):
    reason: LiftReasonText


class Hold(Reply):
    id: int
    review: str | None
    document: str | None
    reason: HoldReason
    order_reference: str | None
    state: HoldState
    requested_by: int | None
    requested_at: Time | None
    placed_by: int | None
    placed_at: Time | None
    lifted_by: int | None
    lifted_at: Time | None
    scope: HoldScope
    case: str | None = Field(description="The case held (scope case).")
    lift_reason: LiftReason | None


class Holds(Reply):
    items: list[Hold]
    next: None


class ScheduleEntry(Reply):
    """One review on the schedule."""

    review: str
    state: ReviewState
    closes_on: Day
    retention_days: int
    destroy_on: Day
    status: Status
    documents: int = Field(description="Documents not yet destroyed.")
    held_documents: list[str] = Field(
        description="Documents kept by a hold on them or on their case (during an early "
        "destruction, by a lead's pending request too)."
    )
    review_holds: list[int] = Field(
        description="Holds that keep the whole review now (during an early destruction, "
        "leads' pending requests too)."
    )
    requested_holds: list[int]
    early_destruction: EarlyState | None


class Schedule(Reply):
    items: list[ScheduleEntry]
    next: None


class EarlyDestruction(Reply):
    review: str
    state: EarlyState
    requested_by: int
    approved_by: int | None


class CertificateSummary(Reply):
    reference: str
    review: str | None
    issued_at: Time
    documents: int
    key_fingerprint: str


class Certificates(Reply):
    items: list[CertificateSummary]
    next: None


class SignedCertificate(Reply):
    """Canonical JSON (docs/destruction.md); the signature covers the canonical JSON of
    `certificate`. Served byte for byte as ``portal certificate export`` writes it."""

    algorithm: Literal["Ed25519"]
    certificate: dict[str, object]
    public_key_fingerprint: str
    signature: str

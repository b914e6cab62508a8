"""The shapes of the data-protection routes (legal holds, erasures, proof records).

Nothing here carries personal data: reasons, requesters and hold bases are codes, and a
reference is a short identifier (a ticket or case-file number), never free text.
"""

from __future__ import annotations

from datetime import datetime

from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict, Field

from casework.contracts.intake import ErasureReason, HoldBasis, Requester

_STRICT_INPUT = ConfigDict(str_strip_whitespace=True, extra="forbid")

REFERENCE = Field(
    default=None,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
    description="Your own reference (a ticket or file number: letters, digits, `._/-`; no "
    "names — it is kept in the proof record after the client is erased)",
    examples=["DPO-2026-0042"],
)


class ErasureIn(BaseModel):
    """Erase a client."""

    model_config = _STRICT_INPUT

    reason: ErasureReason = Field(
        description="The legal ground: `data_subject_request`, `consent_withdrawn`, "
        "`no_longer_necessary`, `unlawful_processing`, `legal_obligation`"
    )
    requester: Requester = Field(
        description="Who asked: `data_subject`, `representative`, `agency`, `supervisory_authority`"
    )
    reference: str | None = REFERENCE


ERASURE_EXAMPLES: dict[str, Example] = {
    "the client asked": {
        "summary": "The client asked to be erased",
        "value": {
            "reason": "data_subject_request",
            "requester": "data_subject",
            "reference": "DPO-2026-0042",
        },
    }
}


class HoldIn(BaseModel):
    """Place a legal hold on a client's records."""

    model_config = _STRICT_INPUT

    basis: HoldBasis = Field(
        description="Why the records must be kept: `safeguarding_child`, "
        "`safeguarding_adult`, `litigation`, `investigation`"
    )
    reference: str | None = REFERENCE


HOLD_EXAMPLES: dict[str, Example] = {
    "safeguarding": {
        "summary": "A child safeguarding enquiry",
        "value": {"basis": "safeguarding_child", "reference": "SG-2026-17"},
    }
}


class HoldFoundOut(BaseModel):
    kind: str = Field(description="`open_case` or `legal_hold`")
    id: str = Field(description="The case id or the hold id")
    basis: HoldBasis | None = None
    site: str | None = None


class ErasureOut(BaseModel):
    """The proof record of an erasure: who asked, who decided, when, which keys. No personal
    data: it stays readable after the client is erased."""

    erasure_id: str
    client_id: str
    subject: str = Field(description="The data subject, `client:<client_id>`")
    record_class: str | None = Field(
        description="The record class erased (retention), or null: everything"
    )
    status: str = Field(
        description="`refused`, `carrying_out`, `keys_destroyed` (blind index pending) or "
        "`completed`"
    )
    reason: ErasureReason
    requester: Requester
    reference: str | None
    rule: str | None = Field(description="The retention rule that asked, e.g. `notes:8y`")
    requested_by: str
    requested_at: datetime
    outcome: str | None = Field(description="`carried_out` or `refused`")
    decided_by: str | None
    decided_at: datetime | None
    holds: list[HoldFoundOut] = Field(description="What refused the erasure, if anything")
    key_ids: list[str] = Field(description="The data keys destroyed")
    keys_destroyed_at: datetime | None
    index_entries_deleted: int | None
    completed_at: datetime | None


class HoldOut(BaseModel):
    hold_id: str
    basis: HoldBasis
    reference: str | None
    site: str | None
    placed_by: str
    placed_at: datetime


class ClientHoldsOut(BaseModel):
    """What would refuse an erasure of the client now — the holds standing and the client's
    open cases — and the client's erasures so far."""

    client_id: str
    holds: list[HoldOut]
    open_cases: list[str] = Field(
        description="Ids of the client's open cases, as intake knows them (a case closed a "
        "moment ago may still be listed for a second)"
    )
    erasures: list[str] = Field(description="Ids of the client's erasures, oldest first")
    erased: bool = Field(description="Whether the whole client has been erased")

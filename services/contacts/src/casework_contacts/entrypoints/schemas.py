"""What the contacts API takes: request bodies, each with the example the Swagger UI shows."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from casework.contracts.contacts import (
    AttemptReason,
    CancelReason,
    CorrectionKind,
    Medium,
    MissReason,
    Outcome,
    ParticipantKind,
)
from casework.requests import StrictBool

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
PersonId = Annotated[
    str,
    StringConstraints(
        pattern=r"^person:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ),
]
Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_ -]{0,39}$")]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
Minutes = Annotated[int, Field(ge=0, le=24 * 60, strict=True)]


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        str_strip_whitespace=True, extra="forbid", json_schema_extra={"examples": [example]}
    )


class ParticipantIn(BaseModel):
    """The client; a family member or carer by `person:<uuid>` id; a professional by role."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    kind: ParticipantKind
    person_id: PersonId | None = Field(
        default=None, description="For a family member or carer: their `person:<uuid>` id"
    )
    role: Role | None = Field(default=None, description="For a professional: gp, teacher, ...")


CLIENT_ONLY: list[dict[str, Any]] = [{"kind": "client"}]


class ScheduleIn(BaseModel):
    model_config = _example(
        {
            "medium": "home_visit",
            "planned_for": "2026-03-03T10:00:00Z",
            "participants": CLIENT_ONLY,
            "purpose": "Review the safety plan",
            "expected_duration_minutes": 60,
        }
    )

    contact_id: Id | None = Field(default=None, description="Omit to have one generated")
    medium: Medium
    planned_for: AwareDatetime
    window_ends_at: AwareDatetime | None = Field(
        default=None, description="When the contact is due within a window: its end"
    )
    participants: list[ParticipantIn] = Field(min_length=1, max_length=20)
    assigned_to: Id | None = Field(default=None, description="Who makes it; omit: you")
    purpose: Text | None = None
    expected_duration_minutes: Minutes | None = None
    follow_up_of: Id | None = Field(
        default=None, description="The logged contact that asked for this follow-up"
    )


class LogIn(BaseModel):
    model_config = _example(
        {
            "medium": "home_visit",
            "occurred_at": "2026-03-03T10:05:00Z",
            "duration_minutes": 50,
            "travel_minutes": 20,
            "participants": CLIENT_ONLY,
            "outcome": "made",
            "notes": "Alex showed me the letter from the landlord; we called the council.",
            "wellbeing": "Calmer than last week; sleeping five hours.",
            "safety_plan_reviewed": True,
            "follow_up_needed": False,
        }
    )

    contact_id: Id | None = Field(
        default=None, description="For an unscheduled contact: omit to have one generated"
    )
    medium: Medium
    occurred_at: AwareDatetime = Field(description="When it happened; never in the future")
    duration_minutes: Minutes | None = None
    travel_minutes: Minutes | None = None
    participants: list[ParticipantIn] = Field(min_length=1, max_length=20)
    outcome: Outcome
    attempt_reason: AttemptReason | None = Field(
        default=None, description="Required when the outcome is `attempted`"
    )
    notes: Text | None = None
    wellbeing: Text | None = Field(default=None, description="The client's wellbeing as observed")
    safety_plan_reviewed: StrictBool = False
    follow_up_needed: StrictBool = False


class MissedIn(BaseModel):
    model_config = _example({"reason": "no_show"})

    reason: MissReason
    missed_at: AwareDatetime | None = Field(default=None, description="Omit: now")


class CancelIn(BaseModel):
    model_config = _example({"reason": "client_request"})

    reason: CancelReason


class CorrectionIn(BaseModel):
    model_config = _example(
        {"kind": "addendum", "text": "Her sister was also present for the last ten minutes."}
    )

    correction_id: Id | None = Field(default=None, description="Omit to have one generated")
    kind: CorrectionKind
    text: Text


class CheckInIn(BaseModel):
    model_config = _example({"expected_duration_minutes": 60})

    expected_duration_minutes: Annotated[int, Field(ge=1, le=12 * 60, strict=True)]

"""What the cases API takes: request bodies, each with the example the Swagger UI shows."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from casework.contracts.cases import CaseOutcome, GoalProgress
from casework.contracts.common import RiskLevel
from casework.requests import IsoDate

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
StaffId = Annotated[str, Field(pattern=ID_PATTERN, description="A staff member's id (`sub`)")]
Team = Annotated[str, Field(pattern=ID_PATTERN, description="The team's code")]
Reason = Annotated[str, Field(min_length=1, max_length=2_000)]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
# Need domains become keys of a stored document: no `.` and no leading `$` (DESIGN §7).
NeedDomain = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9 _-]{0,63}$")]
Factor = Annotated[str, StringConstraints(min_length=1, max_length=500)]


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        str_strip_whitespace=True, extra="forbid", json_schema_extra={"examples": [example]}
    )


class AssignmentIn(BaseModel):
    model_config = _example(
        {"caseworker_id": "carl", "team": "north-adults", "reason": "Allocation meeting"}
    )

    caseworker_id: StaffId
    team: Team | None = Field(
        default=None, description="If sent, must be the assignee's team in the directory"
    )
    reason: Reason | None = None
    capacity_override_reason: Reason | None = Field(
        default=None,
        description="Required when the case takes the worker's weighted caseload into red",
    )


class CaseloadMoveIn(BaseModel):
    model_config = _example(
        {"to_caseworker_id": "cara", "to_team": "north-adults", "reason": "Carl on leave"}
    )

    to_caseworker_id: StaffId
    to_team: Team | None = Field(
        default=None, description="If sent, must be the new worker's team in the directory"
    )
    capacity_override_reason: Reason | None = Field(
        default=None, description="Required for the cases that take the worker into red"
    )
    reason: Reason


class TransferIn(BaseModel):
    model_config = _example({"to_site": "south", "reason": "The client moved to Southport"})

    to_site: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Receiving site code")
    reason: Reason


class ReasonIn(BaseModel):
    """Why: a return, a rejection, a reopening."""

    model_config = _example({"reason": "Why, in a sentence or two"})

    reason: Reason


class TransferRejectionIn(ReasonIn):
    model_config = _example({"reason": "Southport has no adult team until March"})


class ReopenIn(ReasonIn):
    model_config = _example({"reason": "Alex asked for help again after losing her job"})


class AssessmentIn(BaseModel):
    model_config = _example(
        {
            "needs": {
                "housing": "Rent arrears; an eviction notice was served last week",
                "health": "Low mood for three months, sleeping four hours a night",
            },
            "risk_factors": ["recent job loss", "lives alone"],
            "protective_factors": ["close to her sister", "engaged with her GP"],
            "narrative": "Alex describes feeling trapped by the arrears ...",
        }
    )

    needs: dict[NeedDomain, Text] = Field(
        min_length=1, description="Needs by domain, e.g. housing, health, family"
    )
    risk_factors: list[Factor] = Field(default_factory=list, max_length=50)
    protective_factors: list[Factor] = Field(default_factory=list, max_length=50)
    narrative: Text


class GoalIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    goal_id: Id | None = Field(
        default=None,
        description="Omit for a new goal (an id is generated); repeat an id to carry a goal "
        "over into a revision; interventions name goals by id",
    )
    description: Annotated[str, Field(min_length=1, max_length=1_000)]
    target_date: IsoDate


class InterventionIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    intervention_id: Id | None = None
    description: Annotated[str, Field(min_length=1, max_length=1_000)]
    responsible: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="Who carries it out: a staff id, or a named other (the client, a GP)"
    )
    frequency: Annotated[str, Field(max_length=200)] | None = None
    goal_ids: list[Id] = Field(default_factory=list, description="The goals it serves")


class PlanIn(BaseModel):
    model_config = _example(
        {
            "goals": [
                {
                    "goal_id": "keep-tenancy",
                    "description": "Keep the tenancy",
                    "target_date": "2026-06-30",
                },
                {
                    "goal_id": "sleep",
                    "description": "Sleep six hours on most nights",
                    "target_date": "2026-04-30",
                },
            ],
            "interventions": [
                {
                    "description": "Weekly home visit",
                    "responsible": "carl",
                    "frequency": "weekly",
                    "goal_ids": ["keep-tenancy", "sleep"],
                },
                {
                    "description": "Apply for housing benefit",
                    "responsible": "client",
                    "goal_ids": ["keep-tenancy"],
                },
            ],
        }
    )

    goals: list[GoalIn] = Field(min_length=1, max_length=50)
    interventions: list[InterventionIn] = Field(default_factory=list, max_length=100)


class GoalProgressIn(BaseModel):
    model_config = _example(
        {"progress": "in_progress", "note": "Benefit claim submitted; arrears plan agreed"}
    )

    progress: GoalProgress
    note: Text | None = None


class RiskIn(BaseModel):
    model_config = _example(
        {"risk_level": "high", "reason": "Disclosed stockpiling medication at the home visit"}
    )

    risk_level: RiskLevel
    reason: Reason


class CrisisIn(BaseModel):
    model_config = _example(
        {"summary": "Called the duty line saying she has taken an overdose; ambulance called"}
    )

    crisis_id: Id | None = Field(default=None, description="Omit to have one generated")
    summary: Text


class CrisisResolutionIn(BaseModel):
    model_config = _example(
        {"resolution": "Admitted overnight, medically cleared; safety plan agreed with her sister"}
    )

    resolution: Text


class NoteIn(BaseModel):
    model_config = _example(
        {"text": "Phoned Alex: she attended the housing appointment.", "addendum_to": None}
    )

    note_id: Id | None = Field(default=None, description="Omit to have one generated")
    text: Text
    addendum_to: Id | None = Field(
        default=None, description="The id of the note this corrects or adds to"
    )


class ClosureIn(BaseModel):
    model_config = _example(
        {
            "outcome": "goals_met",
            "evaluation": "Tenancy secure, sleeping better, back at work part time.",
        }
    )

    outcome: CaseOutcome
    evaluation: Text


class InpatientAdmissionIn(BaseModel):
    model_config = _example({"admitted_at": "2026-03-02T14:00:00Z"})

    admission_id: Id | None = Field(default=None, description="Omit to have one generated")
    admitted_at: AwareDatetime = Field(description="When the client was admitted (not future)")


class InpatientDischargeIn(BaseModel):
    model_config = _example({"discharged_at": "2026-03-09T11:00:00Z"})

    discharged_at: AwareDatetime = Field(
        description="When the client left inpatient care (between the admission and now)"
    )

"""Case summaries: one document per case, fed by the cases topic.

The caseworker caseload is a query over these documents, and so is most of the site register.
Each document is written only by this projection and keyed by the case id, so the partition
that owns the case's stream owns the document; `ReadModel.apply` makes every event count once
(by the case stream's version), so redelivered or older events change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, Field
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.cases import (
    AssessmentRecorded,
    BreakGlassUsed,
    CaseClosed,
    CaseEvent,
    CaseOpened,
    CasePlanApproved,
    CasePlanProposed,
    CasePlanReturned,
    CaseReopened,
    CaseTransferAccepted,
    CaseTransferRejected,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    GoalProgress,
    GoalProgressRecorded,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.counters import CountedDocuments, Counts, duration_bucket, is_counter
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_cases.adapters.read_models.documents import (
    UNRATED,
    as_utc,
    enum_value,
    hours_between,
    iso_week,
    maybe_utc,
    quarter_key,
)

# The phases as the case contracts name them (contracts/cases.py).
ASSESSMENT: Final = "assessment"
PLANNING: Final = "planning"
ACTIVE: Final = "active"
REVIEW: Final = "review"
CLOSED: Final = "closed"
PHASES: Final = (ASSESSMENT, PLANNING, ACTIVE, REVIEW, CLOSED)

RISK_LEVELS: Final = tuple(level.value for level in RiskLevel)
CASELOAD_OF: Final = "caseload_of"
CRISIS_AT: Final = "crisis_at"
TO_ASSIGNMENT: Final = "to_assignment"
_RISK_RANK: Final = {"imminent": 0, "high": 1, "medium": 2, "low": 3}
_FINISHED_GOALS: Final = frozenset({GoalProgress.ACHIEVED.value, GoalProgress.ABANDONED.value})


class PlanStatus(StrEnum):
    """Where the case plan stands.

    `returned` is a first plan sent back for revision (nothing approved yet). A revision that
    is sent back leaves the approved plan in force, so the status returns to `approved`.
    """

    NONE = "none"
    PROPOSED = "proposed"
    RETURNED = "returned"
    APPROVED = "approved"
    REVISION_PROPOSED = "revision_proposed"


def _goals(goals: Sequence[Any]) -> list[Document]:
    return [
        {
            "goal_id": g.goal_id,
            "description": g.description,
            # BSON has no date type; ISO dates sort as strings.
            "target_date": g.target_date.isoformat(),
        }
        for g in goals
    ]


def _next_activity(doc: Document) -> tuple[str | None, str | None]:
    """The earliest target date of an approved goal neither achieved nor abandoned."""
    progress = {p["goal_id"]: p["progress"] for p in doc.get("goal_progress", [])}
    open_goals = [
        g for g in doc.get("goals", []) if progress.get(g["goal_id"]) not in _FINISHED_GOALS
    ]
    if not open_goals:
        return None, None
    first = min(open_goals, key=lambda g: (g["target_date"], g["goal_id"]))
    return first["target_date"], f"Goal: {first['description']}"


def evolve(doc: Document, event: DomainEvent, envelope: Envelope) -> Document:
    """The summary after one event of the case's stream; `doc` itself is not changed.

    `doc` is `{"_id": case_id}` for a case not seen before.
    """
    new: Document = dict(doc)
    new["last_activity_at"] = envelope.time
    match event:
        case CaseOpened():
            new.update(
                case_id=event.case_id,
                site=event.site,
                opened_site=event.site,
                client_id=event.client_id,
                client_name=event.client_name,
                referral_id=event.referral_id,
                referral_received_at=event.referral_received_at,
                phase=ASSESSMENT,
                risk_level=enum_value(event.risk_level),
                opened_at=event.opened_at,
            )
            new.setdefault("plan_status", PlanStatus.NONE.value)
            new.setdefault("open_crises", [])
        case CaseworkerAssigned():
            new.update(caseworker_id=event.caseworker_id, team=event.team)
            if new.get("first_assigned_at") is None:
                new["first_assigned_at"] = event.assigned_at
        case CaseTransferRequested():
            new["transfer_requested_to"] = event.to_site
        case CaseTransferAccepted():
            # The receiving site takes the case; it waits for one of their caseworkers.
            new.update(site=event.to_site, caseworker_id=None, team=None)
            new["transfer_requested_to"] = None
        case CaseTransferRejected():
            new["transfer_requested_to"] = None
        case AssessmentRecorded():
            new["phase"] = PLANNING
        case CasePlanProposed():
            approved = new.get("approved_plan_version") is not None
            new["proposed_plan"] = {"version": event.plan_version, "goals": _goals(event.goals)}
            new["plan_status"] = (
                PlanStatus.REVISION_PROPOSED.value if approved else PlanStatus.PROPOSED.value
            )
        case CasePlanApproved():
            proposed = new.get("proposed_plan") or {}
            if proposed.get("version") == event.plan_version:
                new["goals"] = list(proposed.get("goals", []))
            new["approved_plan_version"] = event.plan_version
            new["proposed_plan"] = None
            new["plan_status"] = PlanStatus.APPROVED.value
            new["phase"] = ACTIVE  # the first plan starts the work; a revision keeps it going
        case CasePlanReturned():
            approved = new.get("approved_plan_version") is not None
            new["proposed_plan"] = None
            new["plan_status"] = (
                PlanStatus.APPROVED.value if approved else PlanStatus.RETURNED.value
            )
        case GoalProgressRecorded():
            others = [p for p in new.get("goal_progress", []) if p["goal_id"] != event.goal_id]
            new["goal_progress"] = [
                *others,
                {"goal_id": event.goal_id, "progress": event.progress.value},
            ]
        case RiskLevelChanged():
            new["risk_level"] = event.risk_level.value
        case CrisisDeclared():
            crises = [c for c in new.get("open_crises", []) if c["crisis_id"] != event.crisis_id]
            new["open_crises"] = [
                *crises,
                {
                    "crisis_id": event.crisis_id,
                    "risk_level": event.risk_level.value,
                    "declared_at": event.declared_at,
                    "declared_by": event.declared_by,
                },
            ]
        case CrisisResolved():
            new["open_crises"] = [
                c for c in new.get("open_crises", []) if c["crisis_id"] != event.crisis_id
            ]
        case ClosureRequested():
            new["phase"] = REVIEW
        case ClosureReturned():
            new["phase"] = ACTIVE
        case CaseClosed():
            new.update(phase=CLOSED, closed_at=event.closed_at, outcome=event.outcome.value)
        case BreakGlassUsed():
            # An access, not care: the case's activity stays as it was.
            new["last_activity_at"] = doc.get("last_activity_at")
            uses = [
                *doc.get("break_glass", []),
                {"used_by": event.used_by, "used_at": event.used_at},
            ]
            new["break_glass"] = uses[-_BREAK_GLASS_KEPT:]
        case CaseReopened():
            # A new assessment and a new plan follow: the old plan's goals no longer bind.
            new.update(
                phase=ASSESSMENT,
                closed_at=None,
                outcome=None,
                reopened_at=event.reopened_at,
                plan_status=PlanStatus.NONE.value,
                approved_plan_version=None,
                proposed_plan=None,
                goals=[],
                goal_progress=[],
            )
    # Derived once here, so that queries can filter and sort on them.
    new["crisis_open"] = bool(new.get("open_crises"))
    new["next_activity_due"], new["next_activity"] = _next_activity(new)
    # The keys of the lists, each read by equality alone (FerretDB hands equality on an
    # indexed field to PostgreSQL, but not `$ne`): the worker whose caseload holds the case
    # (none once closed), and the site whose open crises include it.
    new[CASELOAD_OF] = new.get("caseworker_id") if new.get("phase") != CLOSED else None
    new[CRISIS_AT] = new.get("site") if new["crisis_open"] else None
    return new


_BREAK_GLASS_KEPT = 20


def contributions(doc: Mapping[str, Any]) -> Counts:
    """What one case counts for in the site register's counters (`casework.counters`):

    - at its current site: its phase, its risk if open (`unrated` without one), and its
      open crises;
    - at the site that opened it, in the ISO week of its first assignment: the hours from
      the referral's arrival (as the opening repeated it) to that assignment, as a histogram
      bucket. A case whose opening did not carry the arrival time is not timed.
    """
    out: dict[str, dict[str, int]] = {}
    site = doc.get("site")
    if site:
        phase = doc.get("phase") or "unknown"
        counts = {f"phase|{phase}": 1}
        if phase != CLOSED:
            counts[f"risk|{doc.get('risk_level') or UNRATED}"] = 1
        crises = len(doc.get("open_crises") or ())
        if crises:
            counts["crises"] = crises
        out[site] = counts
    opened_site, assigned = doc.get("opened_site"), maybe_utc(doc.get("first_assigned_at"))
    hours = hours_between(doc.get("referral_received_at"), assigned)
    if opened_site and assigned is not None and hours is not None:
        week = iso_week(assigned)
        out[quarter_key(opened_site, week)] = {
            f"{week}|{TO_ASSIGNMENT}|{duration_bucket(hours)}": 1
        }
    return out


def _risk_rank(risk_level: str | None) -> int:
    return _RISK_RANK.get(risk_level or "", len(_RISK_RANK))


def caseload_order(case: Mapping[str, Any]) -> tuple[bool, int, str, str]:
    """Sort key of a caseload: crises first, then by risk (imminent, high, medium, low,
    unrated), then the soonest next activity (none last)."""
    due = case.get("next_activity_due")
    due_text = due.isoformat() if isinstance(due, date) else (due or "9999-12-31")
    return (not case.get("crisis_open"), _risk_rank(case.get("risk_level")), due_text, case["_id"])


class BreakGlassUse(BaseModel):
    """An emergency access to the case by someone outside its reach, for its supervisor to
    review (the reason is on the case timeline)."""

    used_by: str
    used_at: datetime


class CaseSummary(BaseModel):
    """One case as a caseload or a register shows it."""

    case_id: str
    site: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    referral_id: str | None = None
    phase: str | None = Field(
        default=None, description="assessment, planning, active, review, closed"
    )
    risk_level: RiskLevel | None = None
    crisis_open: bool = Field(default=False, description="A crisis is declared and not resolved")
    plan_status: PlanStatus = PlanStatus.NONE
    approved_plan_version: int | None = None
    caseworker_id: str | None = None
    team: str | None = None
    transfer_requested_to: str | None = Field(
        default=None, description="The site a pending transfer request names"
    )
    opened_at: datetime | None = None
    first_assigned_at: datetime | None = None
    last_activity_at: datetime | None = Field(
        default=None, description="When the case's latest event happened"
    )
    next_activity_due: date | None = Field(
        default=None,
        description=(
            "For now the earliest target date of an approved-plan goal not yet achieved or "
            "abandoned; scheduled contacts will count too once the contacts service publishes "
            "them"
        ),
    )
    next_activity: str | None = Field(default=None, description="What is due then")
    closed_at: datetime | None = None
    outcome: str | None = None
    break_glass: list[BreakGlassUse] = Field(
        default_factory=list,
        description="Break-glass accesses to the case (the latest 20), for its supervisor to "
        "review",
    )

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> CaseSummary:
        due = doc.get("next_activity_due")
        return cls(
            case_id=doc["_id"],
            site=doc.get("site"),
            client_id=doc.get("client_id"),
            client_name=doc.get("client_name"),
            referral_id=doc.get("referral_id"),
            phase=doc.get("phase"),
            risk_level=doc.get("risk_level"),
            crisis_open=bool(doc.get("crisis_open")),
            plan_status=doc.get("plan_status") or PlanStatus.NONE,
            approved_plan_version=doc.get("approved_plan_version"),
            caseworker_id=doc.get("caseworker_id"),
            team=doc.get("team"),
            transfer_requested_to=doc.get("transfer_requested_to"),
            opened_at=maybe_utc(doc.get("opened_at")),
            first_assigned_at=maybe_utc(doc.get("first_assigned_at")),
            last_activity_at=maybe_utc(doc.get("last_activity_at")),
            next_activity_due=date.fromisoformat(due) if isinstance(due, str) else None,
            next_activity=doc.get("next_activity"),
            closed_at=maybe_utc(doc.get("closed_at")),
            outcome=doc.get("outcome"),
            break_glass=[
                BreakGlassUse(used_by=u["used_by"], used_at=as_utc(u["used_at"]))
                for u in doc.get("break_glass", [])
            ],
        )


class CaseSummaries(Projection):
    """`case_summaries`: one document per case, from the cases topic, and the site
    register's counters of them (`casework.counters`) in the same collection."""

    name = "case_summaries"
    concurrent = True  # writes only through its read model: casework.projections
    topics = (events_topic("cases"),)

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        super().__init__(database, collection)
        self.documents = CountedDocuments(self.read_model.collection, contributions)
        self.counters = self.documents.counters

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        case_id = getattr(event, "case_id", None)
        if not isinstance(event, CaseEvent) or not isinstance(case_id, str):
            return False
        return await self.documents.apply(
            case_id, envelope, lambda doc: evolve(doc, event, envelope)
        )

    async def ensure_indexes(self) -> None:
        c = self.read_model.collection
        await c.create_index([(CASELOAD_OF, ASCENDING)])
        await c.create_index([(CRISIS_AT, ASCENDING)])
        await self.counters.ensure_indexes()

    async def get(self, case_id: str) -> Document | None:
        """One case's summary, by `_id` (the cheapest lookup on every server), with the
        versions applied per source stream under `APPLIED`."""
        doc = await self.read_model.collection.find_one({"_id": case_id})
        return dict(doc) if doc and not is_counter(doc) else None

    async def open_cases_of(self, worker_id: str) -> list[Document]:
        """The cases the worker is assigned to and that are not closed: equality on one
        indexed field, as many documents as the worker carries."""
        cursor = self.read_model.collection.find({CASELOAD_OF: worker_id}, {APPLIED: 0})
        return [dict(d) async for d in cursor]

    async def open_crises_at(self, site: str) -> list[Document]:
        """The cases at the site with a crisis declared and not resolved."""
        cursor = self.read_model.collection.find({CRISIS_AT: site}, {APPLIED: 0})
        return [dict(d) async for d in cursor]

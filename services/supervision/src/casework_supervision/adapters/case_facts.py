"""Supervision's one local copy of the cases service's facts (DESIGN §2), used by approvals
and by sessions alike: per case its client, site, team, caseworker, phase, open or closed,
risk, since when a crisis is open, when it opened, and the latest assessment, plan version
and closure request (so that a closed, reopened or transferred case's waiting approvals can
be named and withdrawn).

One document per case (`case_facts`), keyed by case id. Invariants:

- *One writer per document.* Only the approvals policy on the cases topic
  (`WhenCaseChangedRequestApprovals`) writes it, through `apply`, in the same handler that
  then requests or withdraws approvals, so that a request always sees the facts its own
  event wrote (site, team, caseworker, risk as at that point of the case's stream). The
  cases topic is keyed by the case's stream, so one partition, in order, feeds each
  document. Sessions, the agenda and the boards only read it.
- *Idempotent by stream version* (`ReadModel.apply`): a redelivered or older event of the
  case changes nothing.
- *One fold for every reader*: `change_of` is the only place that says what a cases event
  sets; the approvals view (`CaseFacts`) and the documents the boards read come from the
  same document.

It is a `Projection` (not consumed by a group of its own) so that it can be rebuilt from the
cases topic offline like any read model, with the same code (`casework.rebuild`; tried by
`tests/integration/supervision/test_sessions_rebuild.py`). Read by `_id`, and by equality on
`caseworker_id` (a worker's caseload) and `site` (indexed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING

from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CaseOpened,
    CasePlanApproved,
    CasePlanProposed,
    CaseReopened,
    CaseTransferAccepted,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    RiskLevelChanged,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic


@dataclass(frozen=True)
class CaseFacts:
    """What approvals need of a case."""

    case_id: str
    site: str
    team: str | None
    caseworker_id: str | None
    risk_level: str | None
    client_id: str | None
    assessment_id: str | None
    plan_version: int | None
    closure_version: int | None


def _value(risk: Any) -> str | None:
    return None if risk is None else str(getattr(risk, "value", risk))


def change_of(envelope: Envelope, event: DomainEvent) -> dict[str, Any] | None:
    """The fields an event of the cases service sets, or None when it sets none."""
    match event:
        case CaseOpened():
            return {
                "client_id": event.client_id,
                "site": event.site,
                "phase": "assessment",
                "open": True,
                "risk_level": _value(event.risk_level),
                "caseworker_id": None,
                "team": None,
                "crisis_open_since": None,
                "opened_at": event.opened_at,
            }
        case CaseworkerAssigned():
            return {"caseworker_id": event.caseworker_id, "team": event.team}
        case CaseTransferAccepted():
            return {"site": event.to_site, "caseworker_id": None, "team": None}
        case AssessmentRecorded():
            return {"phase": "planning", "assessment_id": event.assessment_id}
        case CasePlanProposed():
            return {"plan_version": event.plan_version}
        case CasePlanApproved() | ClosureReturned():
            return {"phase": "active"}
        case ClosureRequested():
            return {"phase": "review", "closure_version": envelope.stream_version}
        case CaseClosed():
            return {"phase": "closed", "open": False, "crisis_open_since": None}
        case CaseReopened():
            return {"phase": "assessment", "open": True, "opened_at": event.reopened_at}
        case RiskLevelChanged():
            return {"risk_level": _value(event.risk_level)}
        case CrisisDeclared():
            return {"crisis_open_since": event.declared_at, "risk_level": _value(event.risk_level)}
        case CrisisResolved():
            return {"crisis_open_since": None}
    return None


class CaseFactsStore(Projection):
    """The `case_facts` collection: written by the approvals policy only (`apply`), read by
    approvals (`facts`), sessions, the agenda and the boards (`get`, `of_worker`,
    `at_site`)."""

    name = "case_facts"
    topics = (events_topic("cases"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("caseworker_id", ASCENDING)])
        await self.read_model.collection.create_index([("site", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        return await self.apply(envelope, event)

    async def apply(self, envelope: Envelope, event: DomainEvent) -> bool:
        """Apply a cases event; False for a duplicate or an event that changes nothing."""
        changed, _ = await self.apply_and_keep(envelope, event)
        return changed

    async def apply_and_keep(
        self, envelope: Envelope, event: DomainEvent
    ) -> tuple[bool, Document | None]:
        """`apply`, and the case's document as this call wrote it (None when it wrote
        nothing: a duplicate, or an event that sets nothing), so that the caller need not
        read back what it has just written (`facts_of`)."""
        change = change_of(envelope, event)
        case_id = getattr(event, "case_id", None)
        if change is None or not isinstance(case_id, str):
            return False, None
        written: list[Document] = []

        def update(doc: Document) -> Document:
            new = {**doc, **change}
            if isinstance(event, CrisisDeclared):
                # a second crisis declared while one is open keeps the first one's start
                new["crisis_open_since"] = doc.get("crisis_open_since") or event.declared_at
            written.append(new)  # the last call is what was stored (apply retries a race)
            return new

        changed = await self.read_model.apply(case_id, envelope, update)
        return changed, (written[-1] if changed and written else None)

    async def facts(self, case_id: str) -> CaseFacts | None:
        """What approvals need of the case (None until it is known with a site)."""
        return self.facts_of(case_id, await self.read_model.get(case_id))

    @staticmethod
    def facts_of(case_id: str, doc: Document | None) -> CaseFacts | None:
        """What approvals need of the case, from its document (None without a site)."""
        if doc is None or not doc.get("site"):
            return None
        return CaseFacts(
            case_id=case_id,
            site=str(doc["site"]),
            team=doc.get("team"),
            caseworker_id=doc.get("caseworker_id"),
            risk_level=doc.get("risk_level"),
            client_id=doc.get("client_id"),
            assessment_id=doc.get("assessment_id"),
            plan_version=doc.get("plan_version"),
            closure_version=doc.get("closure_version"),
        )

    async def get(self, case_id: str) -> Document | None:
        return await self.read_model.get(case_id)

    async def of_worker(self, worker_id: str) -> list[Document]:
        """The open cases a worker holds (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"caseworker_id": worker_id}, {APPLIED: 0})
        return [dict(d) async for d in cursor if d.get("phase") != "closed"]

    async def at_site(self, site: str) -> list[Document]:
        """The open cases at a site (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"site": site}, {APPLIED: 0})
        return [dict(d) async for d in cursor if d.get("phase") != "closed"]

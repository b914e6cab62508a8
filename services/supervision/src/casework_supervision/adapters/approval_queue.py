"""The approval queue read model (`approval_queue`): one document per approval, from the
supervision topic's approval events (keyed by approval stream: one partition writes each
document; idempotent by stream version).

While an approval waits, `waiting_worker` holds the case's caseworker (`-` when the case has
none) and `waiting_site` its site; both are cleared once it is granted, returned or
withdrawn. A supervisor's queue is read by equality on `waiting_worker` (one indexed query per
supervisee), a site's by equality on `waiting_site` — never a scan of every approval.

Once granted or returned, `decided_on` holds `<site>/<UTC date of the decision>` and
`turnaround_s` the seconds from the request to the decision (a withdrawal is no decision:
neither is set). The site manager view's turnaround over the last N days reads the site's
N + 1 day buckets by equality on `decided_on` (indexed), so a request reads the approvals
decided in the window, never the site's whole history. Both come from the approval's own
stream (its request, then its decision), so a rebuild equals the live document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from casework.contracts.supervision import (
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

NO_WORKER = "-"


class ApprovalQueue(Projection):
    """Approvals by who waits for them: the approval queue per supervisor and per site."""

    name = "approval_queue"
    topics = (events_topic("supervision"),)
    concurrent = True

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("waiting_worker", ASCENDING)])
        await self.read_model.collection.create_index([("waiting_site", ASCENDING)])
        await self.read_model.collection.create_index([("decided_on", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ApprovalRequested():
                requested = event

                def opened(doc: Document) -> Document:
                    return {
                        **doc,
                        "approval_id": requested.approval_id,
                        "kind": requested.kind,
                        "case_id": requested.case_id,
                        "client_id": requested.client_id,
                        "site": requested.site,
                        "team": requested.team,
                        "caseworker_id": requested.caseworker_id,
                        "subject_version": requested.subject_version,
                        "requested_by": requested.requested_by,
                        "requested_at": requested.requested_at,
                        "due_at": requested.due_at,
                        "status": "requested",
                        "waiting_worker": requested.caseworker_id or NO_WORKER,
                        "waiting_site": requested.site,
                    }

                return await self.read_model.apply(event.approval_id, envelope, opened)
            case ApprovalGranted() | ApprovalReturned():
                status = "granted" if isinstance(event, ApprovalGranted) else "returned"
                decided = event

                def decide(doc: Document) -> Document:
                    requested_at = doc.get("requested_at") or decided.requested_at
                    site = doc.get("site")
                    return {
                        **doc,
                        "status": status,
                        "decided_by": decided.decided_by,
                        "on_behalf_of": decided.on_behalf_of,
                        "decided_at": decided.decided_at,
                        "waiting_worker": None,
                        "waiting_site": None,
                        "decided_on": decided_on(site, decided.decided_at) if site else None,
                        "turnaround_s": (
                            (_aware(decided.decided_at) - _aware(requested_at)).total_seconds()
                            if requested_at is not None
                            else None
                        ),
                    }

                return await self.read_model.apply(event.approval_id, envelope, decide)
            case ApprovalWithdrawn():
                withdrawn = event

                def withdraw(doc: Document) -> Document:
                    return {
                        **doc,
                        "status": "withdrawn",
                        "decided_at": withdrawn.withdrawn_at,
                        "waiting_worker": None,
                        "waiting_site": None,
                    }

                return await self.read_model.apply(event.approval_id, envelope, withdraw)
            case ApprovalOverdue():
                overdue = event

                def late(doc: Document) -> Document:
                    return {**doc, "overdue_at": overdue.raised_at}

                return await self.read_model.apply(event.approval_id, envelope, late)
        return False

    async def waiting_for_workers(self, workers: list[str]) -> list[Document]:
        """The waiting approvals of these workers' cases (one indexed query each)."""
        found: list[Document] = []
        for worker in dict.fromkeys(workers):
            cursor = self.read_model.collection.find({"waiting_worker": worker}, {APPLIED: 0})
            found.extend([dict(d) async for d in cursor])
        return found

    async def pending_for(self, worker_id: str) -> list[Document]:
        """The waiting approvals asked while `worker_id` held their case (the board and the
        agenda read `waiting_for_cases`: a case reassigned since is its new worker's)."""
        return await self.waiting_for_workers([worker_id])

    async def waiting_for_cases(self, cases: Sequence[Mapping[str, Any]]) -> list[Document]:
        """The waiting approvals of these cases (`case_facts` documents: `_id`, `site`),
        whoever held each case when its approval was asked: a case reassigned while an
        approval waits brings it to its new worker's board and agenda (`waiting_worker` stays
        the worker at request time). One indexed query per site of the cases (equality on
        `waiting_site`: a site's waiting approvals, never its decided history), filtered by
        case id."""
        wanted = {str(c["_id"]) for c in cases}
        found: list[Document] = []
        for site in sorted({str(c["site"]) for c in cases if c.get("site")}):
            found.extend(d for d in await self.waiting_at(site) if d.get("case_id") in wanted)
        return found

    async def waiting_at(self, site: str) -> list[Document]:
        """The waiting approvals of a site's cases."""
        cursor = self.read_model.collection.find({"waiting_site": site}, {APPLIED: 0})
        return [dict(d) async for d in cursor]

    async def decided_at_site(self, site: str, since: datetime, until: datetime) -> list[Document]:
        """The site's approvals granted or returned in `(since, until]`: one indexed equality
        query per UTC day of the window."""
        found: list[Document] = []
        day = _aware(since).date()
        while day <= _aware(until).date():
            cursor = self.read_model.collection.find(
                {"decided_on": _bucket(site, day)}, {APPLIED: 0}
            )
            found.extend(
                [
                    dict(d)
                    async for d in cursor
                    if _aware(since) < _aware(d["decided_at"]) <= _aware(until)
                ]
            )
            day += timedelta(days=1)
        return found


def decided_on(site: str, at: datetime) -> str:
    """The day bucket of a decision: `<site>/<UTC date>`."""
    return _bucket(site, _aware(at).astimezone(UTC).date())


def _bucket(site: str, day: date) -> str:
    return f"{site}/{day.isoformat()}"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)

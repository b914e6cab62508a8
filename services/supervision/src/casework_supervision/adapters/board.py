"""The supervisor board and the site manager view, read from the local projections at
request time (no figure is stored twice, so nothing can drift).

Supervisor board, per worker the directory says the supervisor supervises now (delegations
included): caseload by risk, crises open, overdue contact obligations, missed 72-hour
follow-ups, contacts due soon, case reviews due (within the window) and overdue, approvals
waiting, action items open and overdue, the last supervision held, the next one planned and
when supervision is due by the cadence, and the weighted caseload against the worker's
capacity with its band (the agency's caseload policy, `casework.directory.CaseloadPolicy`: the
cases service refuses an assignment into red without a reason by the same figures); and the
team's totals, workers per band included. Reads per worker: their cases
(equality on `caseworker_id`), then the cases' obligations and review cadences by `_id`,
the waiting approvals of those cases (`approval_queue`, the approvals' own read model, by
equality on `waiting_site` per site of the cases, filtered by case id: a case reassigned
while an approval waits counts on its new worker's line), action items and sessions by
equality on `worker_id`.

Site manager view: coverage — the share of the site's open cases whose review is within
cadence (not past its due time), by risk, and the share of the site's supervised workers
whose supervision is within cadence; and the concerns escalated at the site, open first.
Read by equality on `site` in `cadence_view` and `concerns` (one document per open case and
per supervised worker: at ~2,000 open cases per site, a few thousand documents per request;
see the report's known limits). Also, from events only:

- *approval turnaround*: of the site's approvals granted or returned in the last
  `turnaround_days` (30), how many, and the median, 90th percentile (nearest rank) and
  longest time from request to decision (`approval_queue`, by its daily `decided_on`
  buckets; a withdrawal is not a decision and does not count);
- *approvals waiting per approver*: each approval waiting at the site counts once for every
  approver the directory names for it now — the case's caseworker's supervisor and whoever
  delegates for them — never for the one who asked (four eyes); one with nobody named (no
  caseworker, or no supervisor in the directory: a supervisor of the site and team decides)
  counts under `approvals_waiting_unassigned`. The figures per approver therefore add up to
  at least the waiting total minus the unassigned ones (a delegated approval counts twice);
- *capacity bands*: the site's caseworkers per band of their weighted caseload (their open
  cases at the site and elsewhere, by `caseworker_id` in `case_facts`);
- *supervisor-to-worker ratio*: active staff of the site holding `supervisor`, and active
  practitioners (`caseworker`, `crisis_worker`, `intake_worker`) who do not, per site and per
  team (`known_staff`, by equality on `sites`), each with its band against the agency's target
  (`CASEWORK_SUPERVISION_RATIO_TARGET_MIN`/`_MAX`, default 5 to 10 practitioners per supervisor).

Every figure is computed at request time from documents the projections keep, so nothing is
stored twice and nothing can drift from the events.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from casework.clock import Clock
from casework.directory import DEFAULT_CASELOAD_POLICY, CaseloadPolicy

from casework_supervision.adapters.approval_queue import NO_WORKER, ApprovalQueue
from casework_supervision.adapters.case_facts import CaseFactsStore
from casework_supervision.adapters.contact_facts import ContactObligations, is_follow_up
from casework_supervision.adapters.session_read_models import (
    ActionItems,
    CadenceView,
    Concerns,
    SupervisionSessions,
)
from casework_supervision.application.sessions import StaffDirectory

RISKS = ("imminent", "high", "medium", "low", "unrated")
BANDS = ("green", "amber", "red")
PRACTITIONERS = frozenset({"caseworker", "crisis_worker", "intake_worker"})
"""Roles supervised as practitioners (a supervisor who also holds one counts as a
supervisor)."""


class Caseload(BaseModel):
    imminent: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    unrated: int = 0
    total: int = 0


class WorkerLine(BaseModel):
    worker_id: str
    caseload: Caseload
    case_ids: list[str]
    crises: int
    overdue_contacts: int
    missed_follow_ups: int
    contacts_due_soon: int
    reviews_due: int
    reviews_overdue: int
    approvals_waiting: int
    action_items_open: int
    action_items_overdue: int
    last_supervision_at: datetime | None
    next_supervision_planned_for: datetime | None
    supervision_due_at: datetime | None
    supervision_overdue: bool
    weighted_load: int
    """Points of the open cases the worker holds (risk, +bonus in crisis)."""
    capacity: int
    load_percent: float
    band: str
    """`green`, `amber` (at capacity) or `red` (past the policy's red line)."""


class Totals(BaseModel):
    workers: int = 0
    caseload: Caseload = Field(default_factory=Caseload)
    crises: int = 0
    overdue_contacts: int = 0
    missed_follow_ups: int = 0
    contacts_due_soon: int = 0
    reviews_due: int = 0
    reviews_overdue: int = 0
    approvals_waiting: int = 0
    action_items_open: int = 0
    action_items_overdue: int = 0
    supervision_overdue: int = 0
    bands: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(BANDS, 0))
    """Workers per capacity band."""


class SupervisorBoard(BaseModel):
    supervisor_id: str
    at: datetime
    workers: list[WorkerLine]
    totals: Totals


class Coverage(BaseModel):
    total: int
    within_cadence: int
    share: float | None


class ConcernLine(BaseModel):
    concern_id: str
    worker_id: str | None
    case_id: str | None
    raised_by: str
    raised_at: datetime
    status: str
    summary: str


class Turnaround(BaseModel):
    """Request → decision of the approvals granted or returned in the last `days`."""

    days: int
    decided: int
    median_hours: float | None
    p90_hours: float | None
    longest_hours: float | None


class ApproverLoad(BaseModel):
    approver_id: str
    waiting: int
    oldest_requested_at: datetime


class Ratio(BaseModel):
    """Supervisors and the practitioners they supervise, and practitioners per supervisor."""

    supervisors: int
    workers: int
    workers_per_supervisor: float | None
    target: tuple[int, int]
    """The agency's aim, practitioners per supervisor (least, most)."""
    band: str
    """`within` the target, `stretched` (more practitioners per supervisor than the most),
    `underused` (fewer than the least), `unsupervised` (practitioners, no supervisor), or
    `empty` (neither)."""


class SiteSupervisionView(BaseModel):
    site: str
    at: datetime
    cases_reviewed_within_cadence: dict[str, Coverage]
    workers_supervised_within_cadence: Coverage
    escalations_open: list[ConcernLine]
    approval_turnaround: Turnaround
    approvals_waiting: int
    approvals_waiting_by_approver: list[ApproverLoad]
    approvals_waiting_unassigned: int
    supervisor_to_worker: Ratio
    supervisor_to_worker_by_team: dict[str, Ratio]
    capacity_bands: dict[str, int]
    """The site's caseworkers per band of their weighted caseload."""


def _load(
    policy: CaseloadPolicy, capacity_points: int | None, cases: list[Any]
) -> tuple[int, int, float, str]:
    """A worker's weighted load over the open cases they hold (`case_facts` documents), their
    capacity, the percent and the band."""
    load = sum(policy.weight(c.get("risk_level"), bool(c.get("crisis_open_since"))) for c in cases)
    capacity = policy.capacity_of(capacity_points)
    return load, capacity, policy.percent(load, capacity), policy.band(load, capacity)


def _coverage(total: int, within: int) -> Coverage:
    return Coverage(total=total, within_cadence=within, share=within / total if total else None)


@dataclass
class BoardQueries:
    staff: StaffDirectory
    caseload: CaseFactsStore
    obligations: ContactObligations
    cadence: CadenceView
    approvals: ApprovalQueue
    action_items: ActionItems
    sessions: SupervisionSessions
    concerns: Concerns
    clock: Clock
    review_window: timedelta = timedelta(days=7)
    turnaround_days: int = 30
    ratio_target: tuple[int, int] = (5, 10)
    caseload_policy: Callable[[], Awaitable[CaseloadPolicy]] | None = None
    """The agency's caseload weighting as last set (the defaults when None or unset)."""

    async def _policy(self) -> CaseloadPolicy:
        return (
            DEFAULT_CASELOAD_POLICY
            if self.caseload_policy is None
            else (await self.caseload_policy())
        )

    async def board(self, supervisor_id: str) -> SupervisorBoard:
        now = self.clock.now()
        workers = await self.staff.supervisees_of(supervisor_id, now)
        lines = [await self.worker_line(w, now) for w in sorted(workers)]
        totals = Totals(workers=len(lines))
        for line in lines:
            for risk in (*RISKS, "total"):
                setattr(
                    totals.caseload,
                    risk,
                    getattr(totals.caseload, risk) + getattr(line.caseload, risk),
                )
            for name in (
                "crises",
                "overdue_contacts",
                "missed_follow_ups",
                "contacts_due_soon",
                "reviews_due",
                "reviews_overdue",
                "approvals_waiting",
                "action_items_open",
                "action_items_overdue",
            ):
                setattr(totals, name, getattr(totals, name) + getattr(line, name))
            totals.supervision_overdue += int(line.supervision_overdue)
            totals.bands[line.band] += 1
        return SupervisorBoard(supervisor_id=supervisor_id, at=now, workers=lines, totals=totals)

    async def worker_line(self, worker_id: str, now: datetime) -> WorkerLine:
        cases = await self.caseload.of_worker(worker_id)
        case_ids = sorted(str(c["_id"]) for c in cases)
        caseload = Caseload(total=len(cases))
        for case in cases:
            risk = case.get("risk_level") or "unrated"
            if risk in RISKS:
                setattr(caseload, risk, getattr(caseload, risk) + 1)
        obligations = await self.obligations.of_cases(case_ids)
        overdue = missed = soon = 0
        for doc in obligations.values():
            for ob in doc.get("open", {}).values():
                if ob.get("overdue"):
                    if is_follow_up(ob):
                        missed += 1
                    else:
                        overdue += 1
                elif ob.get("due_soon"):
                    soon += 1
        reviews = await self.cadence.many([f"case:{c}" for c in case_ids])
        reviews_overdue = reviews_due = 0
        for review in reviews.values():
            due = review.get("due_at")
            if due is None:
                continue
            if _aware(due) <= now:
                reviews_overdue += 1
            elif _aware(due) <= now + self.review_window:
                reviews_due += 1
        approvals = await self.approvals.waiting_for_cases(cases)
        items = [a for a in await self.action_items.of_worker(worker_id) if a["status"] == "open"]
        items_overdue = sum(1 for a in items if _aware(a["due_at"]) <= now)
        sessions = await self.sessions.of_worker(worker_id)
        held = [_aware(s["held_at"]) for s in sessions if s.get("held_at")]
        planned = [
            _aware(s["planned_for"])
            for s in sessions
            if s.get("status") in ("scheduled", "prepared")
        ]
        cadence = await self.cadence.get(f"worker:{worker_id}")
        due_at = _aware(cadence["due_at"]) if cadence and cadence.get("due_at") else None
        facts = await self.staff.get(worker_id)
        load, capacity, percent, band = _load(
            await self._policy(), facts.capacity_points if facts else None, cases
        )
        return WorkerLine(
            worker_id=worker_id,
            caseload=caseload,
            case_ids=case_ids,
            crises=sum(1 for c in cases if c.get("crisis_open_since")),
            overdue_contacts=overdue,
            missed_follow_ups=missed,
            contacts_due_soon=soon,
            reviews_due=reviews_due,
            reviews_overdue=reviews_overdue,
            approvals_waiting=len(approvals),
            action_items_open=len(items),
            action_items_overdue=items_overdue,
            last_supervision_at=max(held) if held else None,
            next_supervision_planned_for=min(planned) if planned else None,
            supervision_due_at=due_at,
            supervision_overdue=due_at is not None and due_at <= now,
            weighted_load=load,
            capacity=capacity,
            load_percent=round(percent, 1),
            band=band,
        )

    async def site_view(self, site: str) -> SiteSupervisionView:
        now = self.clock.now()
        docs = await self.cadence.at_site(site)
        by_risk: dict[str, list[bool]] = {r: [] for r in RISKS}
        workers: list[bool] = []
        for doc in docs:
            due = doc.get("due_at")
            if due is None:
                continue
            within = _aware(due) > now
            if doc.get("kind") == "case":
                by_risk.setdefault(doc.get("risk_level") or "unrated", []).append(within)
            elif doc.get("kind") == "worker":
                workers.append(within)
        concerns = sorted(
            await self.concerns.at_site(site),
            key=lambda c: (c.get("status") != "open", c.get("raised_at")),
        )
        return SiteSupervisionView(
            site=site,
            at=now,
            cases_reviewed_within_cadence={
                risk: _coverage(len(v), sum(v)) for risk, v in by_risk.items()
            },
            workers_supervised_within_cadence=_coverage(len(workers), sum(workers)),
            escalations_open=[_concern(c) for c in concerns if c.get("status") == "open"],
            approval_turnaround=await self.turnaround(site, now),
            **(await self.approvals_by_approver(site, now)),
            **(await self.ratios(site)),
            capacity_bands=await self.capacity_bands(site),
        )

    async def capacity_bands(self, site: str) -> dict[str, int]:
        """The site's active caseworkers per band of the open cases each holds."""
        policy = await self._policy()
        bands = dict.fromkeys(BANDS, 0)
        for worker in await self.staff.with_role(site, "caseworker"):
            cases = await self.caseload.of_worker(worker.staff_id)
            bands[_load(policy, worker.capacity_points, cases)[3]] += 1
        return bands

    async def turnaround(self, site: str, now: datetime) -> Turnaround:
        """Request → decision over the site's approvals decided in the last days."""
        since = now - timedelta(days=self.turnaround_days)
        decided = await self.approvals.decided_at_site(site, since, now)
        hours = sorted(
            d["turnaround_s"] / 3600 for d in decided if d.get("turnaround_s") is not None
        )
        return Turnaround(
            days=self.turnaround_days,
            decided=len(hours),
            median_hours=statistics.median(hours) if hours else None,
            p90_hours=hours[math.ceil(0.9 * len(hours)) - 1] if hours else None,
            longest_hours=hours[-1] if hours else None,
        )

    async def approvals_by_approver(self, site: str, now: datetime) -> dict[str, Any]:
        """The site's waiting approvals per approver the directory names now (see module)."""
        waiting = await self.approvals.waiting_at(site)
        by_approver: dict[str, list[datetime]] = {}
        unassigned = 0
        for doc in waiting:
            worker = doc.get("caseworker_id") or NO_WORKER
            approvers = () if worker == NO_WORKER else await self.staff.supervisors_of(worker, now)
            approvers = tuple(a for a in approvers if a != doc.get("requested_by"))
            if not approvers:
                unassigned += 1
            for approver in approvers:
                by_approver.setdefault(approver, []).append(_aware(doc["requested_at"]))
        return {
            "approvals_waiting": len(waiting),
            "approvals_waiting_by_approver": [
                ApproverLoad(approver_id=a, waiting=len(at), oldest_requested_at=min(at))
                for a, at in sorted(by_approver.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            ],
            "approvals_waiting_unassigned": unassigned,
        }

    async def ratios(self, site: str) -> dict[str, Any]:
        """Supervisors and practitioners of the site, in all and per team."""
        whole = [0, 0]  # supervisors, practitioners
        by_team: dict[str, list[int]] = {}
        for member in await self.staff.at_site(site):
            roles = set(member.roles)
            if "supervisor" in roles:
                kind = 0
            elif roles & PRACTITIONERS:
                kind = 1
            else:
                continue
            whole[kind] += 1
            if member.team:
                by_team.setdefault(member.team, [0, 0])[kind] += 1
        target = self.ratio_target
        return {
            "supervisor_to_worker": ratio(whole[0], whole[1], target),
            "supervisor_to_worker_by_team": {
                team: ratio(pair[0], pair[1], target) for team, pair in sorted(by_team.items())
            },
        }


def ratio(supervisors: int, workers: int, target: tuple[int, int]) -> Ratio:
    """Practitioners per supervisor, and where that stands against the target."""
    per = workers / supervisors if supervisors else None
    least, most = target
    if per is None:
        band = "unsupervised" if workers else "empty"
    elif per > most:
        band = "stretched"
    elif per < least:
        band = "underused"
    else:
        band = "within"
    return Ratio(
        supervisors=supervisors,
        workers=workers,
        workers_per_supervisor=per,
        target=target,
        band=band,
    )


def _concern(doc: dict[str, Any]) -> ConcernLine:
    return ConcernLine(
        concern_id=str(doc["concern_id"]),
        worker_id=doc.get("worker_id"),
        case_id=doc.get("case_id"),
        raised_by=str(doc.get("raised_by")),
        raised_at=_aware(doc["raised_at"]),
        status=str(doc.get("status")),
        summary=str(doc.get("summary")),
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)

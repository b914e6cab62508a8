"""The cases service's read models: caseloads, case timelines and the site register.

Three projections feed them, each a consumer group of its own:

| projection           | reads            | one document per                 |
|----------------------|------------------|----------------------------------|
| `case_summaries`     | cases topic      | case                             |
| `referral_summaries` | intake topic     | referral                         |
| `timeline`           | both topics      | event of a case or a referral    |

Nothing joins the two topics on write: order across topics is not guaranteed (DESIGN §3), so
the joins (a case with its referral) happen when a query reads them. `ReadModels` holds the
projections and the queries, and applies the case access rule to every answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from casework.access import AccessDenied, NotVisible, require_site
from casework.auth import Principal
from casework.clock import Clock
from casework.eventstore import Document
from casework.projections import APPLIED, Projection

from casework_cases.adapters.read_models.case_summaries import (
    CaseSummaries,
    CaseSummary,
    caseload_order,
)
from casework_cases.adapters.read_models.documents import iso_week, register_keys
from casework_cases.adapters.read_models.referral_summaries import ReferralSummaries
from casework_cases.adapters.read_models.register import (
    SiteRegister,
    register_from_totals,
    week_starts,
)
from casework_cases.adapters.read_models.timeline import (
    CaseTimeline,
    Timeline,
    timeline_order_of_entry,
)
from casework_cases.domain.access import CaseScope, can_reach_case

__all__ = [
    "CaseSummaries",
    "CaseSummary",
    "CaseTimeline",
    "Caseload",
    "ReadModels",
    "ReferralSummaries",
    "SiteRegister",
    "Timeline",
    "build_read_models",
]

# Roles that read other people's caseloads (each case still subject to the access rule).
_READ_ANY_CASELOAD = frozenset({"supervisor", "site_manager", "regional_admin"})


class Caseload(BaseModel):
    """A caseworker's open cases, most pressing first, a page at a time."""

    worker_id: str
    cases: list[CaseSummary] = Field(
        description=(
            "Open cases (not closed): crises first, then by risk (imminent, high, medium, "
            "low, unrated), then by the next activity due"
        )
    )
    next_after: str | None = Field(
        default=None,
        description="More cases follow: pass this as `after` for the next page",
    )


CurrentScopes = Callable[[Sequence[str]], Awaitable[Mapping[str, CaseScope]]]
"""Who holds each case and where, as the cases' streams say now (`Cases.current_scopes`)."""


def _scope(case: Document) -> CaseScope:
    return CaseScope(
        site=case.get("site"), caseworker_id=case.get("caseworker_id"), team=case.get("team")
    )


@dataclass
class ReadModels:
    """The projections to subscribe and the queries the HTTP edge answers with."""

    case_summaries: CaseSummaries
    referral_summaries: ReferralSummaries
    timeline: Timeline
    clock: Clock

    @property
    def projections(self) -> list[Projection]:
        """Every projection, for `ServiceRuntime.consume`."""
        return [self.case_summaries, self.referral_summaries, self.timeline]

    async def caseload(
        self,
        worker_id: str,
        principal: Principal,
        current: CurrentScopes | None = None,
        *,
        limit: int = 100,
        after: str | None = None,
    ) -> Caseload:
        """The worker's open cases the principal may reach, `limit` at a time after the case
        `after` (a page's `next_after`).

        A caseworker reads only their own caseload; supervisors, site managers and regional
        admins read anyone's, seeing the cases the access rule lets them reach (a supervisor:
        their team's). With `current`, each case is checked against who holds it now: a case
        reassigned or transferred a moment ago, which the summaries still list, is left out.
        The worker's open cases are read by equality on one indexed field (as many as a person
        carries, ~25) and put in order here: the order changes with every crisis and risk
        change, so it is not stored.
        """
        own = principal.has_role("caseworker") and principal.sub == worker_id
        if not own and not principal.has_role(*_READ_ANY_CASELOAD):
            raise AccessDenied("a caseworker can read only their own caseload")
        listed = await self.case_summaries.open_cases_of(worker_id)
        scopes = {c["_id"]: _scope(c) for c in listed}
        if current is not None:
            now = await current(list(scopes))
            scopes = {case_id: now[case_id] for case_id in scopes if case_id in now}
        cases = [
            c
            for c in listed
            if (scope := scopes.get(c["_id"])) is not None
            and scope.caseworker_id == worker_id
            and can_reach_case(principal, scope)
        ]
        # Case events may not carry the client's name; the referral does.
        unnamed = [
            c["referral_id"] for c in cases if not c.get("client_name") and c.get("referral_id")
        ]
        if unnamed:
            referrals = await self.referral_summaries.by_ids(unnamed)
            for case in cases:
                if not case.get("client_name"):
                    referral = referrals.get(case.get("referral_id") or "", {})
                    case["client_name"] = referral.get("client_name")
        cases.sort(key=caseload_order)
        if after is not None:
            ids = [c["_id"] for c in cases]
            cases = cases[ids.index(after) + 1 :] if after in ids else []
        page, more = cases[:limit], len(cases) > limit
        return Caseload(
            worker_id=worker_id,
            cases=[CaseSummary.from_document(c) for c in page],
            next_after=page[-1]["_id"] if more and page else None,
        )

    async def case_timeline(
        self,
        case_id: str,
        principal: Principal,
        current: CurrentScopes | None = None,
        *,
        reach_granted: bool = False,
    ) -> CaseTimeline:
        """Every event of the case, its referral's included, oldest first; a case the
        principal does not reach is not found. With `current`, reach is decided on who holds
        the case now, not on what the summary last heard. `reach_granted`: the caller broke
        the glass on this case for this request (its review is already committed)."""
        case = await self.case_summaries.get(case_id)
        if current is not None:
            scope = (await current([case_id])).get(case_id)
            case = case if case is not None else {"_id": case_id} if scope else None
        else:
            scope = _scope(case) if case is not None else None
        reaches = reach_granted or (scope is not None and can_reach_case(principal, scope))
        if case is None or scope is None or not reaches:
            raise NotVisible(f"no case {case_id}")
        referral_id = case.get("referral_id")
        # The streams of the case and of its referral, named by the platform's convention
        # (`Aggregate.stream_id_for`), and any other stream that fed the case's summary.
        streams = [f"case-{case_id}", *case.get(APPLIED, {})]
        if referral_id:
            streams.append(f"referral-{referral_id}")
        entries, contacts = await asyncio.gather(
            self.timeline.of_streams(streams), self.timeline.of_case_contacts(case_id)
        )
        if contacts:
            entries = sorted([*entries, *contacts], key=timeline_order_of_entry)
        return CaseTimeline(case_id=case_id, referral_id=referral_id, entries=entries)

    async def site_register(self, site: str, principal: Principal, weeks: int) -> SiteRegister:
        """The site's cases by phase and risk, open crises, referrals per ISO week over the
        last `weeks` weeks, and the times from referral to acceptance and to first
        assignment; only for a site the principal works at (or a regional admin).

        Read from the partition counters the summaries keep: a query for the site's
        current figures and one per quarter the window touches, each returning a document
        per partition; nothing scans the site's cases.
        """
        require_site(principal, site)
        now = self.clock.now()
        keys = register_keys(site, [iso_week(start) for start in week_starts(now, weeks)])
        cases, referrals = await asyncio.gather(
            self.case_summaries.counters.groups(keys),
            self.referral_summaries.counters.groups(keys[1:]),
        )
        return register_from_totals(site, now=now, weeks=weeks, cases=cases, referrals=referrals)


def build_read_models(database: AsyncDatabase[Document], clock: Clock) -> ReadModels:
    """The read models over the service's database; subscribe `projections` to the broker."""
    return ReadModels(
        case_summaries=CaseSummaries(database),
        referral_summaries=ReferralSummaries(database),
        timeline=Timeline(database),
        clock=clock,
    )

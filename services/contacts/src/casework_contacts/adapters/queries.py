"""The questions the contacts API answers, over the read models and the local case facts,
each answer filtered by the case access rule.

- **Agenda** (a worker's, or a team's at a site): open obligations and scheduled contacts,
  split into `overdue` (due before now), `today` (due before the end of the current UTC day)
  and `upcoming` (the 7 days after today), each ordered by risk (imminent, high, medium,
  low, unrated), then by due time (the latest first among the overdue).
- **History** of a case: every contact, attempts and made contacts told apart, and counts.
- **Compliance** of a case: per rule in force now, made contacts counted in the current
  window against those required, and per rule how its obligations ended (met on time, met
  late, overdue raised, cancelled).
- **Site statistics** over a period of months: contacts per case per month by medium and
  outcome, the share of obligations met on time by risk level, and the median hours from a
  case's opening to its first contact and from a crisis resolved or a discharge to the
  follow-up — read from the partition counters of `obligations_view` (one query per year of
  the period, a document per partition), never from the cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from casework.access import AccessDenied, NotVisible, require_site
from casework.auth import Principal
from casework.clock import Clock
from casework.counters import histogram_percentile
from casework.eventstore import Document

from casework_contacts.adapters.case_facts import CaseFactsStore, scope_of
from casework_contacts.adapters.client_addresses import ClientAddress, ClientAddresses
from casework_contacts.adapters.read_models import (
    ContactHistory,
    ObligationsView,
    OpenObligations,
    statistics_group,
    statistics_key,
)
from casework_contacts.domain.access import READ_ANY_AGENDA, can_reach_case
from casework_contacts.domain.policy import ContactPolicy

RISK_ORDER = {"imminent": 0, "high": 1, "medium": 2, "low": 3}
UPCOMING_DAYS = 7


def _utc(moment: Any) -> datetime:
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class VisitAddress(BaseModel):
    """Where a home visit goes (a sealed token until the HTTP edge opens it)."""

    address: str = Field(
        description=(
            "The client's address, as given with the client's latest accepted referral that "
            "gave one (`[erased]` once the client is erased)"
        )
    )
    given_at: datetime = Field(description="When it was given (the referral's time)")

    @classmethod
    def of(cls, found: ClientAddress | None) -> VisitAddress | None:
        return None if found is None else cls(address=found.address, given_at=found.given_at)


class AgendaItem(BaseModel):
    """An obligation to meet or a scheduled contact to make."""

    kind: str = Field(description="`obligation` or `scheduled_contact`")
    case_id: str
    client_id: str | None = None
    site: str | None = None
    team: str | None = None
    caseworker_id: str | None = None
    risk_level: str | None = None
    due_at: datetime
    overdue_seconds: int = Field(description="How late it is now (0 when not yet due)")
    rule_id: str | None = None
    rule_version: str | None = None
    obligation_id: str | None = None
    media_classes: list[str] | None = None
    contact_id: str | None = None
    medium: str | None = None
    assigned_to: str | None = None
    address: VisitAddress | None = Field(
        default=None, description="A scheduled home visit's: the client's address"
    )


class Agenda(BaseModel):
    """What is late, what is due today, and what comes in the next 7 days."""

    as_of: datetime
    worker_id: str | None = None
    site: str | None = None
    team: str | None = None
    overdue: list[AgendaItem]
    today: list[AgendaItem]
    upcoming: list[AgendaItem]


class ContactRecord(BaseModel):
    """A contact as its history shows it (a struck-through record stays, marked)."""

    contact_id: str
    case_id: str
    status: str = Field(description="scheduled, logged, missed or cancelled")
    medium: str
    medium_class: str
    outcome: str | None = Field(default=None, description="made or attempted, once logged")
    attempt_reason: str | None = None
    occurred_at: datetime | None = None
    planned_for: datetime | None = None
    window_ends_at: datetime | None = None
    assigned_to: str | None = None
    participants: list[dict[str, Any]] = Field(default_factory=list)
    duration_minutes: int | None = None
    travel_minutes: int | None = None
    notes: str | None = None
    wellbeing: str | None = None
    purpose: str | None = None
    safety_plan_reviewed: bool | None = None
    follow_up_needed: bool | None = None
    logged_by: str | None = None
    miss_reason: str | None = None
    cancel_reason: str | None = None
    struck_through: bool = False
    corrections: list[dict[str, Any]] = Field(default_factory=list)
    lone_worker: dict[str, Any] | None = None

    @classmethod
    def from_document(cls, doc: Document) -> ContactRecord:
        fields = {k: v for k, v in doc.items() if k in cls.model_fields}
        return cls(contact_id=str(doc["_id"]), **fields)


class ContactHistoryOut(BaseModel):
    case_id: str
    made: int = Field(description="Logged contacts that were made (struck-through excluded)")
    attempted: int = Field(description="Logged attempts (struck-through excluded)")
    scheduled: int
    missed: int
    cancelled: int
    contacts: list[ContactRecord] = Field(description="Newest first")


class RuleCompliance(BaseModel):
    rule_id: str
    kind: str = Field(description="`standing` (rolling window) or `clock` (one-off)")
    in_force: bool = Field(description="The rule applies to the case now")
    window_seconds: float | None = None
    required_per_window: int | None = None
    made_in_window: int | None = Field(
        default=None, description="Qualifying made contacts counted in the current window"
    )
    open_obligation_due_at: datetime | None = None
    open_obligation_overdue: bool = False
    met_on_time: int = 0
    met_late: int = 0
    overdue_raised: int = 0
    cancelled: int = 0


class Compliance(BaseModel):
    case_id: str
    as_of: datetime
    risk_level: str | None
    phase: str | None
    policy_version: str
    rules: list[RuleCompliance]


class MonthOfContacts(BaseModel):
    month: str = Field(description="`YYYY-MM` (UTC)")
    contacts: dict[str, dict[str, int]] = Field(
        description="Logged contacts by medium, then outcome (made, attempted)"
    )
    total: int
    cases_contacted: int = Field(description="Cases with at least one logged contact")
    contacts_per_case: float | None = Field(
        default=None, description="total / cases_contacted (none without contacts)"
    )


class OnTimeShare(BaseModel):
    due: int = Field(description="Obligations due in the period that were met or went overdue")
    on_time: int = Field(description="Of those, met before an overdue was raised")
    share_on_time: float | None = None


class SiteContactStatistics(BaseModel):
    site: str
    first_month: str
    last_month: str
    months: list[MonthOfContacts]
    obligations_by_risk: dict[str, OnTimeShare] = Field(
        description="By the case's risk when the obligation opened (`unrated`: none yet)"
    )
    median_hours_to_first_contact: float | None = Field(
        default=None, description="From the case opening (or reopening) to its first contact"
    )
    median_hours_crisis_to_follow_up: float | None = None
    median_hours_discharge_to_follow_up: float | None = None
    measured: dict[str, int] = Field(
        description="How many durations each median is taken over (met in the period)"
    )


def months_between(first: str, last: str) -> list[str]:
    """Every `YYYY-MM` from `first` to `last`, both included."""
    year, month = int(first[:4]), int(first[5:])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


@dataclass
class ContactQueries:
    facts: CaseFactsStore
    history: ContactHistory
    obligations: ObligationsView
    open_obligations: OpenObligations
    policy: ContactPolicy
    clock: Clock
    addresses: ClientAddresses | None = None

    async def worker_agenda(self, worker_id: str, principal: Principal) -> Agenda:
        """A worker's agenda: the worker's own, or anyone's for supervisors, site managers
        and regional admins (each item still subject to the access rule)."""
        if principal.sub != worker_id and not principal.has_role(*READ_ANY_AGENDA):
            raise AccessDenied("a worker reads only their own agenda")
        cases, scheduled = await asyncio.gather(
            self.facts.of_worker(worker_id), self.history.scheduled_for(worker_id)
        )
        items = await self._items(cases, scheduled, principal)
        return self._agenda(items, worker_id=worker_id)

    async def team_agenda(self, site: str, team: str, principal: Principal) -> Agenda:
        """A team's agenda at a site: its supervisor's (the token's team at that site), the
        site's managers', or a regional admin's."""
        roles = principal.roles
        allowed = (
            "regional_admin" in roles
            or ("site_manager" in roles and site in principal.sites)
            or ("supervisor" in roles and site in principal.sites and principal.team == team)
        )
        if not allowed:
            raise AccessDenied(f"you do not supervise or manage team {team} at {site}")
        cases = await self.facts.of_team(site, team)
        per_case = await asyncio.gather(*(self.history.of_case(str(c["_id"])) for c in cases))
        scheduled = [d for docs in per_case for d in docs if d.get("status") == "scheduled"]
        items = await self._items(cases, scheduled, principal)
        return self._agenda(items, site=site, team=team)

    async def site_agenda(self, site: str, principal: Principal) -> Agenda:
        """A site's agenda: its open obligations overdue, due today and in the next 7 days
        (from `open_obligations`, by site and due day: not a read of the site's cases), each
        shown with its case's worker, team and risk now, to those who reach the case. For a
        site the principal works at (site managers, supervisors: their teams' cases), or a
        regional admin."""
        require_site(principal, site)
        now = self.clock.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        days = [(today + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(UPCOMING_DAYS + 1)]
        found = await self.open_obligations.of_site(site, days)
        cases = await self.facts.by_ids(sorted({str(d["case_id"]) for d in found}))
        items = []
        for ob in found:
            case = cases.get(str(ob["case_id"]))
            if case is None or case.get("phase") == "closed":
                continue
            if not can_reach_case(principal, scope_of(case)):
                continue
            due = _utc(ob["due_at"])
            items.append(
                AgendaItem(
                    kind="obligation",
                    **_case_fields(str(ob["case_id"]), case),
                    due_at=due,
                    overdue_seconds=max(0, int((now - due).total_seconds())),
                    rule_id=ob.get("rule_id"),
                    rule_version=ob.get("rule_version"),
                    obligation_id=ob.get("obligation_id"),
                    media_classes=ob.get("media_classes"),
                )
            )
        return self._agenda(items, site=site)

    async def _items(
        self, cases: list[Document], scheduled: list[Document], principal: Principal
    ) -> list[AgendaItem]:
        by_id = {str(c["_id"]): c for c in cases}
        missing = sorted({str(d["case_id"]) for d in scheduled} - set(by_id))
        for case_id in missing:
            doc = await self.facts.get(case_id)
            if doc is not None:
                by_id[case_id] = {**doc, "_id": case_id}
        reachable = {
            case_id: doc
            for case_id, doc in by_id.items()
            if doc.get("phase") != "closed" and can_reach_case(principal, scope_of(doc))
        }
        now = self.clock.now()
        views = await self.obligations.of_cases([str(c["_id"]) for c in cases])
        items: list[AgendaItem] = []
        for case_id, view in views.items():
            case = reachable.get(case_id)
            if case is None:
                continue
            for ob in view.get("obligations", {}).values():
                if ob.get("status") != "open":
                    continue
                due = _utc(ob["due_at"])
                items.append(
                    AgendaItem(
                        kind="obligation",
                        **_case_fields(case_id, case),
                        due_at=due,
                        overdue_seconds=max(0, int((now - due).total_seconds())),
                        rule_id=ob.get("rule_id"),
                        rule_version=ob.get("rule_version"),
                        obligation_id=ob.get("obligation_id"),
                        media_classes=ob.get("media_classes"),
                    )
                )
        home_visits = [
            c
            for c in scheduled
            if c.get("medium") == "home_visit" and str(c["case_id"]) in reachable
        ]
        addresses = (
            await self.addresses.of_clients(
                {str(c["client_id"]) for c in home_visits if c.get("client_id")}
            )
            if self.addresses is not None
            else {}
        )
        for contact in scheduled:
            case = reachable.get(str(contact["case_id"]))
            if case is None:
                continue
            due = _utc(contact.get("due_at") or contact["planned_for"])
            items.append(
                AgendaItem(
                    kind="scheduled_contact",
                    **_case_fields(str(contact["case_id"]), case),
                    due_at=due,
                    overdue_seconds=max(0, int((now - due).total_seconds())),
                    contact_id=str(contact["_id"]),
                    medium=contact.get("medium"),
                    assigned_to=contact.get("assigned_to"),
                    address=(
                        VisitAddress.of(addresses.get(str(contact.get("client_id"))))
                        if contact.get("medium") == "home_visit"
                        else None
                    ),
                )
            )
        return items

    def _agenda(self, items: Iterable[AgendaItem], **who: str) -> Agenda:
        now = self.clock.now()
        end_of_today = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        horizon = end_of_today + timedelta(days=UPCOMING_DAYS)
        overdue, today, upcoming = [], [], []
        for item in items:
            if item.due_at < now:
                overdue.append(item)
            elif item.due_at < end_of_today:
                today.append(item)
            elif item.due_at < horizon:
                upcoming.append(item)
        overdue.sort(key=lambda i: (_risk_rank(i.risk_level), i.due_at, i.case_id))
        for section in (today, upcoming):
            section.sort(key=lambda i: (_risk_rank(i.risk_level), i.due_at, i.case_id))
        return Agenda(as_of=now, overdue=overdue, today=today, upcoming=upcoming, **who)

    async def case_history(self, case_id: str, principal: Principal) -> ContactHistoryOut:
        await self._reach(case_id, principal)
        docs = await self.history.of_case(case_id)
        records = [ContactRecord.from_document(d) for d in docs]
        records.sort(key=_newest_first, reverse=True)
        counting = [r for r in records if r.status == "logged" and not r.struck_through]
        return ContactHistoryOut(
            case_id=case_id,
            made=sum(1 for r in counting if r.outcome == "made"),
            attempted=sum(1 for r in counting if r.outcome == "attempted"),
            scheduled=sum(1 for r in records if r.status == "scheduled"),
            missed=sum(1 for r in records if r.status == "missed"),
            cancelled=sum(1 for r in records if r.status == "cancelled"),
            contacts=records,
        )

    async def case_compliance(self, case_id: str, principal: Principal) -> Compliance:
        case = await self._reach(case_id, principal)
        view = (await self.obligations.of_cases([case_id])).get(case_id, {})
        now = self.clock.now()
        site_policy = self.policy.for_site(case.get("site"))
        in_force = {
            r.rule_id: r
            for r in site_policy.standing(case.get("risk_level"), case.get("phase") or "")
        }
        obligations = list(view.get("obligations", {}).values())
        counted = view.get("counted", [])
        rule_ids = dict.fromkeys([*in_force, *(o["rule_id"] for o in obligations)])
        rules = []
        for rule_id in rule_ids:
            of_rule = [o for o in obligations if o["rule_id"] == rule_id]
            rule = in_force.get(rule_id)
            open_ob = next((o for o in of_rule if o.get("status") == "open"), None)
            is_clock = any(o.get("trigger") for o in of_rule)
            window = rule.window.total_seconds() if rule else None
            made = None
            if rule is not None:
                since = now - rule.window
                made = sum(
                    1
                    for c in counted
                    if rule_id in c.get("counted_for", []) and _utc(c["occurred_at"]) > since
                )
            rules.append(
                RuleCompliance(
                    rule_id=rule_id,
                    kind="clock" if is_clock else "standing",
                    in_force=rule is not None or (is_clock and open_ob is not None),
                    window_seconds=window,
                    required_per_window=rule.contacts if rule else None,
                    made_in_window=made,
                    open_obligation_due_at=_utc(open_ob["due_at"]) if open_ob else None,
                    open_obligation_overdue=bool(open_ob and open_ob.get("overdue")),
                    met_on_time=sum(
                        1 for o in of_rule if o.get("status") == "met" and o.get("on_time")
                    ),
                    met_late=sum(
                        1 for o in of_rule if o.get("status") == "met" and not o.get("on_time")
                    ),
                    overdue_raised=sum(1 for o in of_rule if o.get("overdue")),
                    cancelled=sum(1 for o in of_rule if o.get("status") == "cancelled"),
                )
            )
        return Compliance(
            case_id=case_id,
            as_of=now,
            risk_level=case.get("risk_level"),
            phase=case.get("phase"),
            policy_version=site_policy.version,
            rules=rules,
        )

    async def site_statistics(
        self, site: str, principal: Principal, first: str, last: str
    ) -> SiteContactStatistics:
        """A site's contact statistics for the months `first` to `last` (`YYYY-MM`); for a
        site the principal works at, or a regional admin."""
        require_site(principal, site)
        months = months_between(first, last)
        keys = [statistics_key(site, m) for m in months]
        totals = await self.obligations.counters.groups({statistics_group(k) for k in keys})
        per_month: list[MonthOfContacts] = []
        by_risk: dict[str, OnTimeShare] = {}
        hours: dict[str, dict[int, int]] = {}
        for month, key in zip(months, keys, strict=True):
            counts: Mapping[str, int] = totals.get(key, {})
            contacts: dict[str, dict[str, int]] = {}
            for name, n in counts.items():
                kind, *rest = name.split("|")
                if kind == "contacts":
                    medium, outcome = rest
                    contacts.setdefault(medium, {})[outcome] = n
                elif kind in ("due", "on_time"):
                    share = by_risk.setdefault(rest[0], OnTimeShare(due=0, on_time=0))
                    setattr(share, kind, getattr(share, kind) + n)
                elif kind == "hours":
                    trigger, bucket = rest
                    found = hours.setdefault(trigger, {})
                    found[int(bucket)] = found.get(int(bucket), 0) + n
            total = sum(n for outcomes in contacts.values() for n in outcomes.values())
            cases = counts.get("cases_contacted", 0)
            per_month.append(
                MonthOfContacts(
                    month=month,
                    contacts=contacts,
                    total=total,
                    cases_contacted=cases,
                    contacts_per_case=round(total / cases, 2) if cases else None,
                )
            )
        for share in by_risk.values():
            share.share_on_time = round(share.on_time / share.due, 4) if share.due else None

        def median(trigger: str) -> float | None:
            found = hours.get(trigger)
            return round(histogram_percentile(found, 50), 2) if found else None

        return SiteContactStatistics(
            site=site,
            first_month=months[0],
            last_month=months[-1],
            months=per_month,
            obligations_by_risk=dict(sorted(by_risk.items(), key=lambda kv: _risk_rank(kv[0]))),
            median_hours_to_first_contact=median("case_opened"),
            median_hours_crisis_to_follow_up=median("crisis_resolved"),
            median_hours_discharge_to_follow_up=median("inpatient_discharge"),
            measured={trigger: sum(found.values()) for trigger, found in sorted(hours.items())},
        )

    async def _reach(self, case_id: str, principal: Principal) -> Document:
        case = await self.facts.get(case_id)
        if case is None or not can_reach_case(principal, scope_of(case)):
            raise NotVisible(f"no case {case_id}")
        return case


def _case_fields(case_id: str, case: Document) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "client_id": case.get("client_id"),
        "site": case.get("site"),
        "team": case.get("team"),
        "caseworker_id": case.get("caseworker_id"),
        "risk_level": case.get("risk_level"),
    }


def _risk_rank(risk: str | None) -> int:
    return RISK_ORDER.get(risk or "", len(RISK_ORDER))


def _newest_first(record: ContactRecord) -> datetime:
    moment = record.occurred_at or record.planned_for
    return _utc(moment) if moment else datetime.min.replace(tzinfo=UTC)

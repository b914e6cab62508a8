"""Local copies of the organisation directory, kept by any service that needs them.

The supervision service owns the directory and publishes it; other services project the
public events into their own database (DESIGN §2: no synchronous calls to change state,
local projections of what a service needs from others).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from pymongo import ASCENDING

from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.cases import CaseOpened
from casework.contracts.supervision import (
    CaseloadPolicySet,
    OnCallShiftCancelled,
    OnCallShiftScheduled,
    SiteRegistered,
    StaffMemberLeft,
    StaffMemberRegistered,
    StaffProfileChanged,
    SupervisionDelegated,
    SupervisionDelegationEnded,
    SupervisorAssigned,
    TeamRegistered,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic


class KnownSites(Projection):
    """The sites of the organisation directory, keyed by site code: name and timezone (None
    when the site named none: the agency's default applies)."""

    name = "known_sites"
    topics = (events_topic("supervision"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, SiteRegistered):
            return False

        def register(doc: Document) -> Document:
            return {**doc, "name": event.name, "timezone": event.timezone}

        return await self.read_model.apply(event.site, envelope, register)

    async def all(self) -> list[Document]:
        """Every known site, by code."""
        cursor = self.read_model.collection.find({}, {APPLIED: 0}).sort("_id", 1)
        return [dict(d) async for d in cursor]

    async def exists(self, site: str) -> bool:
        """Whether the site is registered (as far as this service has heard)."""
        return await self.read_model.get(site) is not None

    async def timezone(self, site: str) -> str | None:
        """The site's IANA timezone; None when it named none or is not known here (a copy
        kept before sites carried one has none until the projection is rebuilt)."""
        doc = await self.read_model.get(site)
        return doc.get("timezone") if doc else None


class KnownCases(Projection):
    """Open cases as other services need them: site, client, risk, keyed by case id."""

    name = "known_cases"
    topics = (events_topic("cases"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, CaseOpened):
            return False

        def opened(doc: Document) -> Document:
            return {
                **doc,
                "site": event.site,
                "client_id": event.client_id,
                "risk_level": event.risk_level,
                "opened_at": event.opened_at,
            }

        return await self.read_model.apply(event.case_id, envelope, opened)

    async def get(self, case_id: str) -> Document | None:
        """What this service knows of a case."""
        return await self.read_model.get(case_id)


# --- staff and rota ----------------------------------------------------------------------------


def _ms(at: datetime) -> datetime:
    """`at` as MongoDB stores it: UTC, milliseconds (comparisons with stored times agree)."""
    if at.tzinfo is None:
        raise ValueError("a directory query needs a timezone-aware time")
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StaffFacts:
    """A member of staff as the directory last described them."""

    staff_id: str
    name: str
    email: str | None
    sites: tuple[str, ...]
    team: str | None
    roles: tuple[str, ...]
    newly_qualified: bool
    started_on: date
    capacity_points: int | None
    timezone: str | None
    supervisor_id: str | None
    active: bool
    """False once `StaffMemberLeft`."""

    @classmethod
    def from_document(cls, doc: Document) -> StaffFacts:
        return cls(
            staff_id=str(doc["_id"]),
            name=str(doc["name"]),
            email=doc.get("email"),
            sites=tuple(doc.get("sites", ())),
            team=doc.get("team"),
            roles=tuple(doc.get("roles", ())),
            newly_qualified=bool(doc.get("newly_qualified", False)),
            started_on=date.fromisoformat(doc["started_on"]),
            capacity_points=doc.get("capacity_points"),
            timezone=doc.get("timezone"),
            supervisor_id=doc.get("supervisor_id"),
            active=bool(doc.get("active", True)),
        )


def _delegating_at(doc: Document, at: datetime) -> list[str]:
    """The delegates a supervisor's document names as covering for them at `at`: a
    delegation covers `starts_at <= at < ends_at`, cut short by its `ended_at` if ended."""
    found: list[str] = []
    for d in doc.get("delegations", ()):
        end = _aware(d["ends_at"])
        if d.get("ended_at") is not None:
            end = min(end, _aware(d["ended_at"]))
        if _aware(d["starts_at"]) <= at < end and d["delegate_id"] not in found:
            found.append(d["delegate_id"])
    return found


def _supervising(doc: Document | None) -> bool:
    """Whether a staff document describes someone who supervises now: active, and holding
    the `supervisor` role."""
    return doc is not None and doc.get("active", True) and "supervisor" in doc.get("roles", ())


class KnownStaff(Projection):
    """The staff of the organisation directory: profile, supervisor, active, and the
    delegations each supervisor gave (one document per member of staff, `_id` = staff id).

    Invariant: a document is fed by its member's stream `staff-<id>` only (profile events,
    `SupervisorAssigned` on the supervisee's stream, delegations on the supervisor's own),
    so one partition writes it, in stream order; every profile event carries the whole
    profile, so the latest one is the profile. Who supervises whom at a given time is then
    computed at query time from the supervisee's `supervisor_id` and the supervisor's
    delegations (a delegation covers `starts_at <= at < ends_at`, cut short at `ended_at`
    when ended early): nothing needs a clock in the projection, so a query for a past or
    future time answers as of that time, and a rebuild equals the live copy. Only someone
    active who holds the `supervisor` role (as the directory says now) supervises, delegates
    or stands in: a leaver, or someone whose role was taken away, counts for nobody.

    Queries use equality on indexed fields (`supervisor_id`, `delegate_ids`, `sites`):
    a directory is thousands of documents, not hundreds of thousands.
    """

    name = "known_staff"
    concurrent = True  # writes only through its read model, one stream per document
    topics = (events_topic("supervision"),)

    async def ensure_indexes(self) -> None:
        collection = self.read_model.collection
        await collection.create_index([("supervisor_id", ASCENDING)])
        await collection.create_index([("delegate_ids", ASCENDING)])
        await collection.create_index([("sites", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change: Callable[[Document], Document | None]
        match event:
            case StaffMemberRegistered() | StaffProfileChanged():
                profile = {
                    "name": event.name,
                    "email": event.email,
                    "sites": list(event.sites),
                    "team": event.team,
                    "roles": list(event.roles),
                    "newly_qualified": event.newly_qualified,
                    "started_on": event.started_on.isoformat(),
                    "capacity_points": event.capacity_points,
                    "timezone": event.timezone,
                }

                def change(doc: Document) -> Document:
                    return {"supervisor_id": None, "active": True, **doc, **profile}

            case StaffMemberLeft():

                def change(doc: Document) -> Document:
                    return {**doc, "active": False, "left_at": event.left_at}

            case SupervisorAssigned():

                def change(doc: Document) -> Document:
                    return {**doc, "supervisor_id": event.supervisor_id}

            case SupervisionDelegated():
                delegation = {
                    "delegation_id": event.delegation_id,
                    "delegate_id": event.delegate_id,
                    "starts_at": event.starts_at,
                    "ends_at": event.ends_at,
                    "ended_at": None,
                }

                def change(doc: Document) -> Document:
                    delegations = [
                        d
                        for d in doc.get("delegations", [])
                        if d["delegation_id"] != event.delegation_id
                    ]
                    delegations.append(delegation)
                    return {
                        **doc,
                        "delegations": delegations,
                        "delegate_ids": sorted({d["delegate_id"] for d in delegations}),
                    }

            case SupervisionDelegationEnded():

                def change(doc: Document) -> Document:
                    delegations = [
                        {**d, "ended_at": event.ended_at}
                        if d["delegation_id"] == event.delegation_id
                        else d
                        for d in doc.get("delegations", [])
                    ]
                    return {**doc, "delegations": delegations}

            case _:
                return False
        staff_id = event.supervisor_id if isinstance(event, _ON_SUPERVISOR) else event.staff_id
        return await self.read_model.apply(staff_id, envelope, change)

    async def get(self, staff_id: str) -> StaffFacts | None:
        """The member of staff, leavers included (`active` False); None if never heard of."""
        doc = await self.read_model.get(staff_id)
        if doc is None or "name" not in doc:
            return None
        return StaffFacts.from_document(doc)

    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]:
        """Who supervises `staff_id` at `at`: their supervisor first, then whoever that
        supervisor delegates to at `at` (in the order the delegations were given). Empty
        when they have no supervisor or the supervisor has left; never `staff_id` itself
        (nobody supervises themselves, even as a delegate); a delegate who has left is left
        out."""
        at = _ms(at)
        doc = await self.read_model.get(staff_id)
        supervisor_id = doc.get("supervisor_id") if doc else None
        if not supervisor_id:
            return ()
        supervisor = await self.read_model.get(supervisor_id)
        if not _supervising(supervisor):
            return ()
        assert supervisor is not None
        found = [supervisor_id]
        for delegate_id in _delegating_at(supervisor, at):
            if delegate_id in found or delegate_id == staff_id:
                continue
            if _supervising(await self.read_model.get(delegate_id)):
                found.append(delegate_id)
        return tuple(s for s in found if s != staff_id)

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]:
        """Whom `supervisor_id` supervises at `at`: their own active supervisees (sorted),
        then those of active supervisors delegating to them at `at` (sorted), each once,
        never themselves. Empty for a leaver."""
        at = _ms(at)
        if not _supervising(await self.read_model.get(supervisor_id)):
            return ()
        found = await self._active_supervisees(supervisor_id)
        cursor = self.read_model.collection.find({"delegate_ids": supervisor_id}, {APPLIED: 0})
        delegators = sorted(
            [
                str(doc["_id"])
                async for doc in cursor
                if _supervising(doc) and supervisor_id in _delegating_at(doc, at)
            ]
        )
        for delegator in delegators:
            for staff_id in await self._active_supervisees(delegator):
                if staff_id not in found:
                    found.append(staff_id)
        return tuple(s for s in found if s != supervisor_id)

    async def _active_supervisees(self, supervisor_id: str) -> list[str]:
        cursor = self.read_model.collection.find(
            {"supervisor_id": supervisor_id}, {"_id": 1, "active": 1}
        )
        return sorted([str(doc["_id"]) async for doc in cursor if doc.get("active", True)])

    async def with_role(self, site: str, role: str) -> list[StaffFacts]:
        """Active staff working at `site` who hold `role`, by staff id."""
        return [s for s in await self.at_site(site) if role in s.roles]

    async def at_site(self, site: str, team: str | None = None) -> list[StaffFacts]:
        """Active staff working at `site` (in `team`, if given), by staff id."""
        cursor = self.read_model.collection.find({"sites": site}, {APPLIED: 0})
        staff = [
            StaffFacts.from_document(doc)
            async for doc in cursor
            if doc.get("active", True) and "name" in doc
        ]
        return sorted(
            (s for s in staff if team is None or s.team == team), key=lambda s: s.staff_id
        )


_ON_SUPERVISOR = (SupervisionDelegated, SupervisionDelegationEnded)


@dataclass(frozen=True)
class OnCall:
    """Who is on call for crises at a site: the shift's worker, and their backup."""

    site: str
    shift_id: str
    staff_id: str
    backup_id: str | None
    starts_at: datetime
    ends_at: datetime


class KnownRota(Projection):
    """The on-call crisis rota of every site: one document per shift (`_id` =
    `<site>/<shift_id>`), fed by the site's stream `rota-<site>` only.

    Invariant: a shift covers `starts_at <= at < ends_at` (at its end the next shift, if any,
    is on call, never both); a cancelled shift stays as a tombstone (`cancelled`), so that a
    redelivered `OnCallShiftScheduled` cannot bring it back (its `_applied` version is
    already past it). The supervision service's `Rota` refuses overlapping shifts of one
    site, so at most one shift covers any moment: `on_call` reads the earliest live shift of
    the site that ends after `at` and checks that it has begun.
    """

    name = "known_rota"
    concurrent = True  # writes only through its read model, one stream per document
    topics = (events_topic("supervision"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index(
            [("site", ASCENDING), ("cancelled", ASCENDING), ("ends_at", ASCENDING)]
        )

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change: Callable[[Document], Document | None]
        match event:
            case OnCallShiftScheduled():
                shift = {
                    "site": event.site,
                    "shift_id": event.shift_id,
                    "staff_id": event.staff_id,
                    "backup_id": event.backup_id,
                    "starts_at": event.starts_at,
                    "ends_at": event.ends_at,
                    "cancelled": False,
                }

                def change(doc: Document) -> Document:
                    return {**doc, **shift}

            case OnCallShiftCancelled():

                def change(doc: Document) -> Document:
                    return {**doc, "site": event.site, "cancelled": True}

            case _:
                return False
        return await self.read_model.apply(f"{event.site}/{event.shift_id}", envelope, change)

    async def on_call(self, site: str, at: datetime) -> OnCall | None:
        """The shift covering `at` at `site`, or None when nobody is rostered then."""
        at = _ms(at)
        cursor = (
            self.read_model.collection.find(
                {"site": site, "cancelled": False, "ends_at": {"$gt": at}}, {APPLIED: 0}
            )
            .sort("starts_at", ASCENDING)
            .limit(1)
        )
        async for doc in cursor:
            if _aware(doc["starts_at"]) <= at:
                return OnCall(
                    site=doc["site"],
                    shift_id=doc["shift_id"],
                    staff_id=doc["staff_id"],
                    backup_id=doc.get("backup_id"),
                    starts_at=_aware(doc["starts_at"]),
                    ends_at=_aware(doc["ends_at"]),
                )
        return None

    async def shifts(self, site: str, after: datetime, limit: int = 100) -> list[OnCall]:
        """The site's live shifts that end after `after`, earliest first."""
        cursor = (
            self.read_model.collection.find(
                {"site": site, "cancelled": False, "ends_at": {"$gt": _ms(after)}}, {APPLIED: 0}
            )
            .sort("starts_at", ASCENDING)
            .limit(limit)
        )
        return [
            OnCall(
                site=doc["site"],
                shift_id=doc["shift_id"],
                staff_id=doc["staff_id"],
                backup_id=doc.get("backup_id"),
                starts_at=_aware(doc["starts_at"]),
                ends_at=_aware(doc["ends_at"]),
            )
            async for doc in cursor
        ]


class KnownTeams(Projection):
    """The teams of every site (`_id` = `<site>/<team>`), fed by `team-<site>/<team>`."""

    name = "known_teams"
    concurrent = True  # writes only through its read model, one stream per document
    topics = (events_topic("supervision"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("site", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, TeamRegistered):
            return False

        def register(doc: Document) -> Document:
            return {**doc, "site": event.site, "team": event.team, "name": event.name}

        return await self.read_model.apply(f"{event.site}/{event.team}", envelope, register)

    async def of_site(self, site: str) -> list[Document]:
        """The site's teams, by code."""
        cursor = self.read_model.collection.find({"site": site}, {APPLIED: 0})
        return sorted([dict(d) async for d in cursor], key=lambda d: str(d["team"]))

    async def exists(self, site: str, team: str) -> bool:
        return await self.read_model.get(f"{site}/{team}") is not None


class SupervisionReach:
    """`app.state.principal_reach` for a service that keeps `KnownStaff`: a supervisor's
    principal gets `supervisees`, whom they supervise at this moment (their own, and those
    of supervisors delegating to them now), so object-level rules can let a supervisor reach
    their supervisees' work in addition to the token's team.

    Invariant: reach follows this service's copy of the directory (it trails supervision's
    topic by the consumer's lag), and a delegation's reach starts and ends on the clock,
    with no event needed; a principal without the `supervisor` role is left as it is.
    """

    def __init__(self, staff: KnownStaff, clock: Clock) -> None:
        self.staff = staff
        self.clock = clock

    async def __call__(self, principal: Principal, /) -> Principal:
        if not principal.has_role("supervisor"):
            return principal
        supervisees = await self.staff.supervisees_of(principal.sub, self.clock.now())
        if not supervisees:
            return principal
        return replace(principal, supervisees=frozenset(supervisees))


# --- caseload weighting ------------------------------------------------------------------------

RISK_KEYS = ("imminent", "high", "medium", "low", "none")


@dataclass(frozen=True)
class CaseloadPolicy:
    """What `CaseloadPolicySet` says, as a value: a case's points and a load's band. (What to
    do about a band — refuse an assignment into red without a reason — is the cases
    service's rule.)"""

    points_by_risk: tuple[tuple[str, int], ...] = (
        ("imminent", 4),
        ("high", 3),
        ("medium", 2),
        ("low", 1),
        ("none", 1),
    )
    crisis_bonus: int = 2
    default_capacity: int = 20
    amber_at_percent: int = 100
    red_at_percent: int = 110

    def weight(self, risk_level: str | None, in_crisis: bool) -> int:
        """The points one case weighs: by its risk level (`none` when unrated), plus the
        bonus while in crisis."""
        points = dict(self.points_by_risk)
        base = points.get(risk_level or "none", points.get("none", 1))
        return base + (self.crisis_bonus if in_crisis else 0)

    def capacity_of(self, capacity_points: int | None) -> int:
        return capacity_points or self.default_capacity

    def percent(self, load: int, capacity: int) -> float:
        return 100.0 * load / capacity

    def band(self, load: int, capacity: int) -> str:
        """`green`, `amber` (from `amber_at_percent` of capacity) or `red` (from
        `red_at_percent`)."""
        share = self.percent(load, capacity)
        if share >= self.red_at_percent:
            return "red"
        if share >= self.amber_at_percent:
            return "amber"
        return "green"


DEFAULT_CASELOAD_POLICY = CaseloadPolicy()
"""Until the agency sets one: imminent 4, high 3, medium 2, low and unrated 1 point, +2 in
crisis, 20 points of capacity, amber from 100 %, red from 110 %."""


class KnownCaseloadPolicy(Projection):
    """The agency's caseload weighting as last set (`CaseloadPolicySet`, one document fed by
    the stream `caseload_policy-agency`); the defaults until one is set."""

    name = "known_caseload_policy"
    concurrent = True  # writes only through its read model, one stream per document
    topics = (events_topic("supervision"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, CaseloadPolicySet):
            return False

        def set_policy(doc: Document) -> Document:
            return {
                **doc,
                "points_by_risk": dict(event.points_by_risk),
                "crisis_bonus": event.crisis_bonus,
                "default_capacity": event.default_capacity,
                "amber_at_percent": event.amber_at_percent,
                "red_at_percent": event.red_at_percent,
                "set_at": event.set_at,
            }

        return await self.read_model.apply("agency", envelope, set_policy)

    async def current(self) -> CaseloadPolicy:
        doc = await self.read_model.get("agency")
        if doc is None:
            return DEFAULT_CASELOAD_POLICY
        points = doc["points_by_risk"]
        return CaseloadPolicy(
            points_by_risk=tuple((k, int(points[k])) for k in RISK_KEYS if k in points),
            crisis_bonus=int(doc["crisis_bonus"]),
            default_capacity=int(doc["default_capacity"]),
            amber_at_percent=int(doc["amber_at_percent"]),
            red_at_percent=int(doc["red_at_percent"]),
        )

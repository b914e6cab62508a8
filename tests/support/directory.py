"""The organisation directory in tests: put staff, teams, supervision and on-call shifts
where a test needs them.

Over HTTP, against a running supervision service (end-to-end tests; `client` holds a
regional admin's token, or a site manager's for their sites):

- `register_site(client, site)`, `register_team(client, site, team)`: 201, or already there;
- `register_staff(client, staff_id, *roles, sites=..., team=..., supervisor=...)`: registers
  the member (their sites and team too, if missing), or changes their profile to this one if
  they are already registered; then sets their supervisor. Returns the profile (JSON).
- `delegate(client, supervisor_id, delegate_id, starts_at, ends_at)`,
  `schedule_shift(client, site, staff_id, starts_at, ends_at, backup_id=...)`.
- `aregister_staff` etc.: the same with an `httpx.AsyncClient` (an app in process).

Straight to a topic or a projection (integration tests), without a supervision service:

- builders of the directory's events: `site`, `team`, `staff` (a list: registered, and
  `SupervisorAssigned` if `supervisor`), `left`, `supervised_by`, `delegation`,
  `delegation_ended`, `shift`, `shift_cancelled`;
- `await seed_directory(target, *events)`: `target` is a projection or policy (each event
  handled at once, in order), an `EventStore` (appended per stream, as supervision would:
  its relay publishes them), or a `SupervisionTopic(bootstrap, topic)` (produced to Kafka as
  supervision's relay would). Stream ids are supervision's (`staff-<id>`, `rota-<site>`, ...);
  stream versions of the envelopes only increase, across every call (a consumer never takes
  a seeded event for a duplicate).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from casework.contracts.supervision import (
    OnCallShiftCancelled,
    OnCallShiftScheduled,
    SiteRegistered,
    StaffMemberLeft,
    StaffMemberRegistered,
    SupervisionDelegated,
    SupervisionDelegationEnded,
    SupervisionEvent,
    SupervisorAssigned,
    TeamRegistered,
)
from casework.envelope import Envelope
from casework.eventstore import CommitContext, EventStore
from casework.projections import EventHandler

from support.envelopes import envelope_of

STARTED_ON = date(2026, 1, 5)

__all__ = [
    "SupervisionTopic",
    "aregister_staff",
    "delegate",
    "delegation",
    "delegation_ended",
    "left",
    "register_site",
    "register_staff",
    "register_team",
    "schedule_shift",
    "seed_directory",
    "shift",
    "shift_cancelled",
    "site",
    "staff",
    "stream_of",
    "supervised_by",
    "team",
]


# --- over HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    ok: tuple[int, ...] = (200, 201)
    on_conflict: _Call | None = None
    """Sent instead when the answer is 409 (already registered: change it)."""


def _site_calls(site: str, name: str | None) -> list[_Call]:
    body = {"site": site, "name": name or site.title()}
    return [_Call("POST", "/sites", body, ok=(201, 409))]


def _team_calls(site: str, team: str, name: str | None) -> list[_Call]:
    body = {"team": team, "name": name or team.title()}
    return [_Call("POST", f"/sites/{site}/teams", body, ok=(201, 409))]


def _staff_calls(
    staff_id: str,
    roles: Sequence[str],
    *,
    sites: Sequence[str],
    team: str | None,
    supervisor: str | None,
    name: str | None,
    email: str | None,
    newly_qualified: bool,
    started_on: date,
    capacity_points: int | None,
    places: bool,
) -> list[_Call]:
    profile: dict[str, Any] = {
        "name": name or staff_id.title(),
        "email": email,
        "sites": list(sites),
        "team": team,
        "roles": list(roles),
        "newly_qualified": newly_qualified,
        "started_on": started_on.isoformat(),
        "capacity_points": capacity_points,
    }
    calls: list[_Call] = []
    if places:
        for s in sites:
            calls += _site_calls(s, None)
        if team is not None:
            calls += _team_calls(sites[0], team, None)
    change = _Call("PUT", f"/staff/{staff_id}", profile)
    calls.append(_Call("POST", "/staff", {"staff_id": staff_id, **profile}, on_conflict=change))
    if supervisor is not None:
        calls.append(
            _Call(
                "PUT",
                f"/staff/{staff_id}/supervisor",
                {"supervisor_id": supervisor},
                ok=(200, 409),  # 409: already supervised by them
            )
        )
    calls.append(_Call("GET", f"/staff/{staff_id}", ok=(200,)))
    return calls


def _check(call: _Call, response: httpx.Response) -> None:
    if response.status_code not in call.ok:
        raise AssertionError(
            f"{call.method} {call.path} answered {response.status_code}: {response.text}"
        )


def _run(client: httpx.Client, calls: Iterable[_Call]) -> Any:
    last: httpx.Response | None = None
    for call in calls:
        last = client.request(call.method, call.path, json=call.body)
        if last.status_code == 409 and call.on_conflict is not None:
            call = call.on_conflict
            last = client.request(call.method, call.path, json=call.body)
        _check(call, last)
    return last.json() if last is not None else None


async def _arun(client: httpx.AsyncClient, calls: Iterable[_Call]) -> Any:
    last: httpx.Response | None = None
    for call in calls:
        last = await client.request(call.method, call.path, json=call.body)
        if last.status_code == 409 and call.on_conflict is not None:
            call = call.on_conflict
            last = await client.request(call.method, call.path, json=call.body)
        _check(call, last)
    return last.json() if last is not None else None


def register_site(client: httpx.Client, site: str, name: str | None = None) -> None:
    """The site is in the directory (registered now, or already)."""
    _run(client, _site_calls(site, name))


def register_team(client: httpx.Client, site: str, team: str, name: str | None = None) -> None:
    """The team is registered at the site (now, or already); the site must be."""
    _run(client, _team_calls(site, team, name))


def register_staff(
    client: httpx.Client,
    staff_id: str,
    *roles: str,
    sites: Sequence[str] = ("north",),
    team: str | None = None,
    supervisor: str | None = None,
    name: str | None = None,
    email: str | None = None,
    newly_qualified: bool = False,
    started_on: date = STARTED_ON,
    capacity_points: int | None = None,
    places: bool = True,
) -> dict[str, Any]:
    """`staff_id` is in the directory with exactly this profile (registered, or changed to
    it) and, if given, `supervisor` supervises them (who must be registered already). With
    `places`, their sites and team are registered first when missing. Returns the profile as
    `GET /staff/{id}` shows it."""
    calls = _staff_calls(
        staff_id,
        roles or ("caseworker",),
        sites=sites,
        team=team,
        supervisor=supervisor,
        name=name,
        email=email,
        newly_qualified=newly_qualified,
        started_on=started_on,
        capacity_points=capacity_points,
        places=places,
    )
    result: dict[str, Any] = _run(client, calls)
    return result


async def aregister_staff(
    client: httpx.AsyncClient,
    staff_id: str,
    *roles: str,
    sites: Sequence[str] = ("north",),
    team: str | None = None,
    supervisor: str | None = None,
    name: str | None = None,
    email: str | None = None,
    newly_qualified: bool = False,
    started_on: date = STARTED_ON,
    capacity_points: int | None = None,
    places: bool = True,
) -> dict[str, Any]:
    """`register_staff` with an async client."""
    calls = _staff_calls(
        staff_id,
        roles or ("caseworker",),
        sites=sites,
        team=team,
        supervisor=supervisor,
        name=name,
        email=email,
        newly_qualified=newly_qualified,
        started_on=started_on,
        capacity_points=capacity_points,
        places=places,
    )
    result: dict[str, Any] = await _arun(client, calls)
    return result


def delegate(
    client: httpx.Client,
    supervisor_id: str,
    delegate_id: str,
    starts_at: datetime,
    ends_at: datetime,
    delegation_id: str | None = None,
) -> str:
    """`delegate_id` stands in for `supervisor_id` in the window; returns the delegation id."""
    delegation_id = delegation_id or uuid.uuid4().hex
    body = {
        "delegation_id": delegation_id,
        "delegate_id": delegate_id,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
    }
    _run(client, [_Call("POST", f"/staff/{supervisor_id}/delegations", body, ok=(201,))])
    return delegation_id


def schedule_shift(
    client: httpx.Client,
    site: str,
    staff_id: str,
    starts_at: datetime,
    ends_at: datetime,
    backup_id: str | None = None,
    shift_id: str | None = None,
) -> str:
    """An on-call shift at the site (times on whole minutes); returns its id."""
    shift_id = shift_id or uuid.uuid4().hex
    body = {
        "shift_id": shift_id,
        "staff_id": staff_id,
        "backup_id": backup_id,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
    }
    _run(client, [_Call("POST", f"/sites/{site}/rota/shifts", body, ok=(201,))])
    return shift_id


# --- events, for integration tests ---------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def site(code: str, name: str | None = None, timezone: str | None = None) -> SiteRegistered:
    return SiteRegistered(
        site=code, name=name or code.title(), registered_at=_now(), timezone=timezone
    )


def team(site_code: str, code: str, name: str | None = None) -> TeamRegistered:
    return TeamRegistered(
        site=site_code, team=code, name=name or code.title(), registered_at=_now()
    )


def staff(
    staff_id: str,
    *roles: str,
    sites: Sequence[str] = ("north",),
    team: str | None = None,
    supervisor: str | None = None,
    name: str | None = None,
    email: str | None = None,
    newly_qualified: bool = False,
    started_on: date = STARTED_ON,
    capacity_points: int | None = None,
    timezone: str | None = None,
) -> list[SupervisionEvent]:
    """A member of staff registered (and assigned their supervisor, if given)."""
    events: list[SupervisionEvent] = [
        StaffMemberRegistered(
            staff_id=staff_id,
            name=name or staff_id.title(),
            email=email,
            sites=tuple(sites),
            team=team,
            roles=tuple(roles or ("caseworker",)),
            newly_qualified=newly_qualified,
            started_on=started_on,
            capacity_points=capacity_points,
            timezone=timezone,
            registered_at=_now(),
        )
    ]
    if supervisor is not None:
        events.append(supervised_by(staff_id, supervisor))
    return events


def supervised_by(staff_id: str, supervisor_id: str) -> SupervisorAssigned:
    return SupervisorAssigned(
        staff_id=staff_id, supervisor_id=supervisor_id, assigned_by="seed", assigned_at=_now()
    )


def left(staff_id: str) -> StaffMemberLeft:
    return StaffMemberLeft(staff_id=staff_id, left_at=_now())


def delegation(
    supervisor_id: str,
    delegate_id: str,
    starts_at: datetime,
    ends_at: datetime,
    delegation_id: str | None = None,
) -> SupervisionDelegated:
    return SupervisionDelegated(
        supervisor_id=supervisor_id,
        delegation_id=delegation_id or uuid.uuid4().hex,
        delegate_id=delegate_id,
        starts_at=starts_at,
        ends_at=ends_at,
        delegated_by="seed",
        delegated_at=_now(),
    )


def delegation_ended(
    supervisor_id: str, delegation_id: str, ended_at: datetime | None = None
) -> SupervisionDelegationEnded:
    return SupervisionDelegationEnded(
        supervisor_id=supervisor_id,
        delegation_id=delegation_id,
        ended_by="seed",
        ended_at=ended_at or _now(),
    )


def shift(
    site_code: str,
    staff_id: str,
    starts_at: datetime,
    ends_at: datetime,
    backup_id: str | None = None,
    shift_id: str | None = None,
) -> OnCallShiftScheduled:
    return OnCallShiftScheduled(
        site=site_code,
        shift_id=shift_id or uuid.uuid4().hex,
        staff_id=staff_id,
        backup_id=backup_id,
        starts_at=starts_at,
        ends_at=ends_at,
        scheduled_by="seed",
        scheduled_at=_now(),
    )


def shift_cancelled(site_code: str, shift_id: str) -> OnCallShiftCancelled:
    return OnCallShiftCancelled(
        site=site_code, shift_id=shift_id, cancelled_by="seed", cancelled_at=_now()
    )


def stream_of(event: SupervisionEvent) -> str:
    """The supervision stream an event of the directory belongs to."""
    match event:
        case SiteRegistered():
            return f"site-{event.site}"
        case TeamRegistered():
            return f"team-{event.site}/{event.team}"
        case SupervisionDelegated() | SupervisionDelegationEnded():
            return f"staff-{event.supervisor_id}"
        case StaffMemberRegistered() | StaffMemberLeft() | SupervisorAssigned():
            return f"staff-{event.staff_id}"
        case OnCallShiftScheduled() | OnCallShiftCancelled():
            return f"rota-{event.site}"
    staff_id = getattr(event, "staff_id", None)
    if staff_id is not None:  # StaffProfileChanged
        return f"staff-{staff_id}"
    raise ValueError(f"not a directory event: {type(event).__name__}")


@dataclass(frozen=True)
class SupervisionTopic:
    """A (namespaced) supervision topic on a real broker, to seed by producing to it."""

    bootstrap: str
    topic: str


_versions = itertools.count(1)


def _flatten(
    events: Iterable[SupervisionEvent | Iterable[SupervisionEvent]],
) -> list[SupervisionEvent]:
    flat: list[SupervisionEvent] = []
    for item in events:
        if isinstance(item, SupervisionEvent):
            flat.append(item)
        else:
            flat.extend(item)
    return flat


async def seed_directory(
    target: EventHandler | EventStore | SupervisionTopic,
    *events: SupervisionEvent | Iterable[SupervisionEvent],
) -> list[Envelope]:
    """Deliver directory events (single events or lists, as the builders return) to
    `target`, in the order given; returns the envelopes delivered (stored, for a store)."""
    flat = _flatten(events)
    if isinstance(target, EventStore):
        stored: list[Envelope] = []
        for event in flat:
            stream = stream_of(event)
            version = (await target.load_stream(stream)).version
            stored += await target.append(stream, version, [event], CommitContext())
        return stored
    envelopes = [
        envelope_of(event, stream_of(event), next(_versions), _now(), site=_site_of(event))
        for event in flat
    ]
    if isinstance(target, SupervisionTopic):
        producer = AIOKafkaProducer(
            bootstrap_servers=target.bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for envelope in envelopes:
                await producer.send_and_wait(
                    target.topic,
                    envelope.value(),
                    key=envelope.key,
                    headers=envelope.headers(),
                )
        finally:
            await producer.stop()
        return envelopes
    handle: Callable[[Envelope, Any], Awaitable[bool]] = target.handle
    for envelope, event in zip(envelopes, flat, strict=True):
        await handle(envelope, event)
    return envelopes


def _site_of(event: SupervisionEvent) -> str | None:
    site_code = getattr(event, "site", None)
    if isinstance(site_code, str):
        return site_code
    sites = getattr(event, "sites", None)
    return str(sites[0]) if sites else None

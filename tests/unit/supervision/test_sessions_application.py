"""The sessions application with an in-memory directory (a fake of the pinned `KnownStaff`),
in-memory streams and read models: who may run, read and record a session, per the
directory (delegation included); the agenda from the read models; a review and a held
session move the cadences at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar

import pytest

from casework.access import AccessDenied, NotVisible
from casework.aggregate import Aggregate
from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.supervision import (
    AgendaItemKind,
    CaseReviewCadenceSet,
    PracticeTopic,
    SessionKind,
    SupervisionCadenceSet,
)
from casework.directory import StaffFacts
from casework.events import DomainEvent
from casework.eventstore import CommitContext, ConcurrencyConflict

from casework_supervision.application.sessions import Sessions
from casework_supervision.domain.action_item import ActionItem
from casework_supervision.domain.cadence import (
    CadencePolicy,
    CaseReviewCadence,
    SupervisionCadence,
)
from casework_supervision.domain.concern import Concern
from casework_supervision.domain.errors import (
    InvalidSessionRequest,
    NotTheSupervisor,
    NotTheWorkersCase,
)
from casework_supervision.domain.session import SupervisionSession

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CTX = CommitContext()
A = TypeVar("A", bound=Aggregate)


class Streams(Generic[A]):
    """Just enough of `Repository[A]`."""

    def __init__(self, kind: type[A]) -> None:
        self.kind = kind
        self.streams: dict[str, list[DomainEvent]] = {}

    async def find(self, id: str) -> A | None:
        history = self.streams.get(id)
        return self.kind.rehydrate(id, history) if history else None

    def new(self, id: str) -> A:
        return self.kind(id)

    async def save(self, aggregate: A, ctx: CommitContext | None = None) -> list[Any]:
        self.streams.setdefault(aggregate.id, []).extend(aggregate.pending_events)
        aggregate.mark_committed()
        return []


@dataclass
class Directory:
    """A fake of `casework.directory.KnownStaff`: Sue supervises Carl; Dee stands in for Sue
    while `delegating`."""

    delegating: bool = False
    staff: dict[str, StaffFacts] = field(default_factory=dict)

    def add(self, staff_id: str, *roles: str, supervisor: str | None = None) -> None:
        self.staff[staff_id] = StaffFacts(
            staff_id=staff_id,
            name=staff_id,
            email=None,
            sites=("north",),
            team="t1",
            roles=roles,
            newly_qualified=False,
            started_on=date(2026, 1, 5),
            capacity_points=None,
            timezone=None,
            supervisor_id=supervisor,
            active=True,
        )

    async def get(self, staff_id: str) -> StaffFacts | None:
        return self.staff.get(staff_id)

    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]:
        facts = self.staff.get(staff_id)
        if facts is None or facts.supervisor_id is None:
            return ()
        if self.delegating and facts.supervisor_id == "sue":
            return ("sue", "dee")
        return (facts.supervisor_id,)

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]:
        return tuple(s for s in self.staff if supervisor_id in await self.supervisors_of(s, at))

    async def with_role(self, site: str, role: str) -> list[StaffFacts]:
        return [f for f in self.staff.values() if role in f.roles and site in f.sites]


class ReadModels:
    """Fakes of the projections the application reads."""

    def __init__(self) -> None:
        self.cases = {
            "c-1": {
                "_id": "c-1",
                "client_id": "cl-1",
                "site": "north",
                "caseworker_id": "carl",
                "phase": "active",
                "risk_level": "high",
                "crisis_open_since": NOW - timedelta(hours=2),
                "opened_at": NOW - timedelta(days=20),
            },
            "c-other": {
                "_id": "c-other",
                "client_id": "cl-2",
                "site": "north",
                "caseworker_id": "cleo",
                "phase": "active",
                "risk_level": "low",
            },
        }

    async def get(self, case_id: str) -> dict[str, Any] | None:
        return self.cases.get(case_id)

    async def of_worker(self, worker_id: str) -> list[dict[str, Any]]:
        return [c for c in self.cases.values() if c.get("caseworker_id") == worker_id]

    async def of_cases(self, case_ids: list[str]) -> dict[str, Any]:
        return {}

    async def many(self, ids: list[str]) -> dict[str, Any]:
        return {}

    async def waiting_for_cases(self, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        waiting = [
            {
                "approval_id": "c-1:plan:2",
                "kind": "plan",
                "case_id": "c-1",
                "requested_at": NOW - timedelta(hours=30),
            }
        ]
        return [a for a in waiting if a["case_id"] in {c["_id"] for c in cases}]


class NoActionItems:
    async def of_worker(self, worker_id: str) -> list[dict[str, Any]]:
        return []


def who(sub: str, *roles: str, sites: tuple[str, ...] = ("north",)) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset(roles), sites=frozenset(sites), team="t1")


SUE, DEE, SAM = who("sue", "supervisor"), who("dee", "supervisor"), who("sam", "supervisor")
CARL, MO = who("carl", "caseworker"), who("mo", "site_manager")


@pytest.fixture
def world() -> tuple[Sessions, Directory]:
    directory = Directory()
    directory.add("sue", "supervisor")
    directory.add("dee", "supervisor")
    directory.add("sam", "supervisor")
    directory.add("carl", "caseworker", supervisor="sue")
    directory.add("cleo", "caseworker", supervisor="sam")
    read = ReadModels()
    sessions = Sessions(
        sessions=Streams(SupervisionSession),  # type: ignore[arg-type]
        actions=Streams(ActionItem),  # type: ignore[arg-type]
        concerns=Streams(Concern),  # type: ignore[arg-type]
        supervision_cadences=Streams(SupervisionCadence),  # type: ignore[arg-type]
        review_cadences=Streams(CaseReviewCadence),  # type: ignore[arg-type]
        staff=directory,
        caseload=read,  # type: ignore[arg-type]
        obligations=read,  # type: ignore[arg-type]
        cadence_view=read,  # type: ignore[arg-type]
        approvals=read,  # type: ignore[arg-type]
        action_items=NoActionItems(),  # type: ignore[arg-type]
        policy=CadencePolicy(),
        clock=FixedClock(NOW),
    )
    return sessions, directory


async def schedule(sessions: Sessions, by: Principal = SUE, sid: str = "s-1") -> None:
    await sessions.schedule(
        session_id=sid,
        worker_id="carl",
        kind=SessionKind.ONE_TO_ONE,
        planned_for=NOW + timedelta(hours=2),
        principal=by,
        ctx=CTX,
    )


async def test_only_whoever_supervises_the_worker_schedules_and_runs_sessions(
    world: tuple[Sessions, Directory],
) -> None:
    sessions, directory = world
    with pytest.raises(NotTheSupervisor):
        await schedule(sessions, SAM)
    with pytest.raises(NotTheSupervisor):
        await schedule(sessions, DEE)  # not delegated to (yet)
    with pytest.raises(NotTheSupervisor):
        await schedule(sessions, who("sue", "caseworker"))  # the person, not the role
    await schedule(sessions)
    with pytest.raises(AccessDenied):
        await sessions.prepare("s-1", CARL, CTX)  # the worker reads, does not run it
    with pytest.raises(NotVisible):
        await sessions.prepare("s-1", SAM, CTX)  # out of reach: not found
    directory.delegating = True
    session = await sessions.prepare("s-1", DEE, CTX)  # Sue's delegate today
    assert session.agenda


async def test_the_agenda_comes_from_the_read_models(world: tuple[Sessions, Directory]) -> None:
    sessions, _ = world
    await schedule(sessions)
    session = await sessions.prepare("s-1", SUE, CTX)
    kinds = [(i.kind, i.case_id) for i in session.agenda]
    assert kinds == [
        (AgendaItemKind.CRISIS, "c-1"),
        (AgendaItemKind.APPROVAL_PENDING, "c-1"),
    ]
    assert session.agenda[1].snapshot["hours_waiting"] == 30


async def test_a_review_and_a_held_session_move_the_cadences_at_once(
    world: tuple[Sessions, Directory],
) -> None:
    sessions, _ = world
    await schedule(sessions)
    await sessions.prepare("s-1", SUE, CTX)
    with pytest.raises(NotTheWorkersCase):
        await sessions.record_review(
            "s-1",
            case_id="c-other",
            findings="f",
            decision="d",
            reasons="r",
            principal=SUE,
            ctx=CTX,
        )
    await sessions.record_review(
        "s-1", case_id="c-1", findings="f", decision="d", reasons="r", principal=SUE, ctx=CTX
    )
    [review_set] = sessions.review_cadences.streams["c-1"]  # type: ignore[attr-defined]
    assert isinstance(review_set, CaseReviewCadenceSet)
    assert review_set.last_reviewed_at == NOW
    await sessions.hold("s-1", SUE, CTX)
    [held_set] = sessions.supervision_cadences.streams["carl"]  # type: ignore[attr-defined]
    assert isinstance(held_set, SupervisionCadenceSet)
    assert held_set.last_held_at == NOW


async def test_practice_notes_are_for_the_worker_and_their_supervisor_only(
    world: tuple[Sessions, Directory],
) -> None:
    sessions, directory = world
    await schedule(sessions)
    await sessions.prepare("s-1", SUE, CTX)
    await sessions.record_practice_note(
        "s-1", note_id="n", topic=PracticeTopic.LEARNING, text="t", principal=SUE, ctx=CTX
    )
    directory.delegating = True
    assert await sessions.may_read_practice_notes("s-1", CARL)
    assert await sessions.may_read_practice_notes("s-1", SUE)
    assert not await sessions.may_read_practice_notes("s-1", DEE)  # runs it, but no notes
    assert not await sessions.may_read_practice_notes("s-1", MO)  # reads the session only
    with pytest.raises(NotVisible):
        await sessions.may_read_practice_notes("s-1", SAM)


async def test_action_items_and_concerns(world: tuple[Sessions, Directory]) -> None:
    sessions, _ = world
    await schedule(sessions)
    await sessions.prepare("s-1", SUE, CTX)
    with pytest.raises(InvalidSessionRequest):
        await sessions.set_action_item(
            "s-1",
            action_item_id="a",
            owner_id="cleo",
            due_at=NOW + timedelta(days=1),
            description="x",
            case_id=None,
            principal=SUE,
            ctx=CTX,
        )
    with pytest.raises(InvalidSessionRequest):  # in the past
        await sessions.set_action_item(
            "s-1",
            action_item_id="a",
            owner_id="carl",
            due_at=NOW,
            description="x",
            case_id=None,
            principal=SUE,
            ctx=CTX,
        )
    item = await sessions.set_action_item(
        "s-1",
        action_item_id="a",
        owner_id="carl",
        due_at=NOW + timedelta(days=1),
        description="x",
        case_id="c-1",
        principal=SUE,
        ctx=CTX,
    )
    assert item.set is not None
    assert item.set.subject_id == "client:cl-1"
    with pytest.raises(NotVisible):
        await sessions.complete_action_item("a", who("cleo", "caseworker"), CTX)
    with pytest.raises(AccessDenied):
        await sessions.complete_action_item("a", MO, CTX)  # reads it, does not do it
    await sessions.complete_action_item("a", CARL, CTX)

    with pytest.raises(AccessDenied):
        await sessions.escalate_concern(
            concern_id="k",
            site="south",
            worker_id="carl",
            case_id=None,
            summary="s",
            principal=SUE,
            ctx=CTX,
        )
    with pytest.raises(NotTheSupervisor):
        await sessions.escalate_concern(
            concern_id="k",
            site="north",
            worker_id="carl",
            case_id=None,
            summary="s",
            principal=SAM,
            ctx=CTX,
        )
    concern = await sessions.escalate_concern(
        concern_id="k",
        site="north",
        worker_id="carl",
        case_id=None,
        summary="s",
        principal=SUE,
        ctx=CTX,
    )
    assert concern.escalated is not None
    assert concern.escalated.subject_id == "staff:carl"
    with pytest.raises(AccessDenied):
        await sessions.resolve_concern("k", "done", SUE, CTX)  # the raiser does not resolve
    with pytest.raises(NotVisible):
        await sessions.resolve_concern(
            "k", "done", who("mo2", "site_manager", sites=("south",)), CTX
        )
    resolved = await sessions.resolve_concern("k", "done", MO, CTX)
    assert resolved.resolved


async def test_two_commands_on_one_session_at_once_both_land(
    world: tuple[Sessions, Directory],
) -> None:
    sessions, _ = world
    await schedule(sessions)
    await sessions.prepare("s-1", SUE, CTX)
    streams = sessions.sessions
    save = streams.save

    async def racing_save(session: SupervisionSession, ctx: CommitContext | None = None) -> Any:
        # another request's note lands first: this commit meets the stream's key
        other = await streams.find("s-1")
        assert other is not None
        other.record_practice_note(
            note_id="theirs", topic=PracticeTopic.PRACTICE, text="t", recorded_by="sue", now=NOW
        )
        await save(other)
        streams.save = save  # type: ignore[method-assign]
        raise ConcurrencyConflict("session-s-1", session.version)

    streams.save = racing_save  # type: ignore[method-assign]
    await sessions.record_practice_note(
        "s-1", note_id="mine", topic=PracticeTopic.LEARNING, text="t", principal=SUE, ctx=CTX
    )
    stored = await streams.find("s-1")
    assert stored is not None
    assert [n.note_id for n in stored.notes] == ["theirs", "mine"]

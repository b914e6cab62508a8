"""The site manager view's approval and staffing figures on the real Kafka broker and
MongoDB-wire server, from events only: approval turnaround over the last 30 days (median,
90th percentile, longest), approvals waiting per approver (the supervisor and whoever stands in
for them now, each; nobody named: unassigned), and supervisors to practitioners per site and team.

The cases service's events are published on the cases topic as its relay would; the
approvals policy requests, a supervisor decides on a fixed clock, the queue projects. Then
the service stops, `approval_queue` is rebuilt from the supervision topic, and the view read
from the rebuilt documents is the same: the figures are a function of the events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.cases import CaseEvent, CaseOpened, CasePlanProposed, CaseworkerAssigned
from casework.contracts.common import RiskLevel
from casework.directory import KnownStaff
from casework.eventstore import CommitContext, Document
from casework.projections import Projection
from casework.rebuild import rebuild_projection
from casework.runtime import wait_until

from casework_supervision.adapters.approval_queue import ApprovalQueue
from casework_supervision.adapters.board import BoardQueries, SiteSupervisionView
from casework_supervision.bootstrap import build
from casework_supervision.settings import ApprovalSettings
from support.directory import delegation, seed_directory, staff
from support.namespaced import Publisher, dropped_afterwards, namespaced_settings, publisher

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CTX = CommitContext()


def supervisor(sub: str, site: str = "north", team: str = "t1") -> Principal:
    return Principal(
        sub=sub, name=sub, roles=frozenset({"supervisor"}), sites=frozenset({site}), team=team
    )


SUE, SOL = supervisor("sue"), supervisor("sol", "south", "s1")


async def test_turnaround_waiting_per_approver_and_ratios_from_events(
    kafka_bootstrap: str, mongo_url: str
) -> None:
    namespace = f"site{uuid.uuid4().hex[:8]}"
    settings = namespaced_settings("supervision", namespace, kafka_bootstrap, mongo_url)
    clock = FixedClock(T - timedelta(days=40))
    # nothing falls overdue during the test
    wired = build(settings, clock, approval_settings=ApprovalSettings(due=timedelta(days=90)))
    runtime, approvals = wired.runtime, wired.approvals
    relay: Publisher | None = None

    async def publish(event: CaseEvent) -> None:
        assert relay is not None
        case_id: str = getattr(event, "case_id")  # noqa: B009
        await relay.publish("cases", f"case-{case_id}", event)

    async def case(
        case_id: str, worker: str | None, proposed: list[datetime], site: str = "north"
    ) -> None:
        """A case at `site`, held by `worker`, with a plan proposed at each time given."""
        await publish(
            CaseOpened(
                case_id=case_id,
                client_id=f"cl-{case_id}",
                referral_id=str(uuid.uuid4()),
                site=site,
                risk_level=RiskLevel.MEDIUM,
                opened_at=T - timedelta(days=60),
            )
        )
        if worker is not None:
            await publish(
                CaseworkerAssigned(
                    case_id=case_id,
                    caseworker_id=worker,
                    team="s1" if site == "south" else "t1",
                    assigned_by="sam",
                    assigned_at=T - timedelta(days=60),
                )
            )
        for version, at in enumerate(proposed, start=1):
            await publish(
                CasePlanProposed(
                    case_id=case_id,
                    plan_version=version,
                    goals=(),
                    interventions=(),
                    proposed_by=worker or "ivy",
                    proposed_at=at,
                )
            )

    async def requested(*approval_ids: str) -> None:
        async def there() -> bool:
            for approval_id in approval_ids:
                stored = await runtime.store.load(f"approval-{approval_id}")
                if not stored or not stored[-1].type.endswith("ApprovalRequested.v1"):
                    return False
            return True

        await wait_until(there, within=30, every=0.2)

    async with dropped_afterwards(mongo_url, settings):
        async with runtime.running(), publisher(settings) as relay:
            await seed_directory(
                runtime.store,
                staff("sue", "supervisor", team="t1"),
                staff("dan", "supervisor", team="t1"),
                staff("sid", "supervisor", team="t2"),
                # capacities: carl's 7 medium cases (14 points) are red against 12, cat's one
                # (2 points) amber against 2
                staff("carl", "caseworker", team="t1", supervisor="sue", capacity_points=12),
                staff("cat", "caseworker", team="t1", supervisor="sue", capacity_points=2),
                staff("dora", "crisis_worker", team="t2"),
                staff("ivy", "intake_worker"),
                staff("sam", "site_manager"),
                staff("sol", "supervisor", sites=["south"], team="s1"),
                staff("ed", "caseworker", sites=["south"], team="s1", supervisor="sol"),
                delegation("sue", "dan", T - timedelta(days=1), T + timedelta(days=1)),
            )

            async def known() -> bool:
                return await approvals.staff.supervisors_of("carl", T) == ("sue", "dan") and (
                    await approvals.staff.supervisors_of("ed", T) == ("sol",)
                )

            await wait_until(known, within=30, every=0.2)

            # 40 days ago: decided in a day, outside the window now
            await case("old", "carl", [T - timedelta(days=41)])
            await requested("old:plan:1")
            await approvals.grant("old:plan:1", SUE, None, CTX)
            clock.advance(timedelta(days=40))  # now T

            # decided now after 1, 2, 4 and 10 hours; one returned after 3 hours
            hours = {"d1": 1, "d2": 2, "d4": 4, "d10": 10, "r3": 3}
            for case_id, h in hours.items():
                await case(case_id, "carl", [T - timedelta(hours=h)])
            # another site's decision, after 100 hours, is not north's
            await case("far", "ed", [T - timedelta(hours=100)], site="south")
            # superseded (withdrawn: no decision), its revision waits for sue and dan
            await case("w", "carl", [T - timedelta(hours=5), T - timedelta(hours=1)])
            await case("c", "cat", [T - timedelta(hours=6)])  # waits for sue
            await case("nobody", "dora", [T - timedelta(hours=7)])  # no supervisor
            await case("unheld", None, [T - timedelta(hours=8)])  # no caseworker
            await requested(*(f"{c}:plan:1" for c in [*hours, "far", "c", "nobody", "unheld"]))
            await requested("w:plan:2")
            for case_id in ("d1", "d2", "d4", "d10"):
                await approvals.grant(f"{case_id}:plan:1", SUE, "Fine", CTX)
            await approvals.return_("r3:plan:1", SUE, "Add a review date", CTX)
            await approvals.grant("far:plan:1", SOL, None, CTX)

            board = wired.sessions.board

            async def projected() -> bool:
                view = await board.site_view("north")
                south = await board.site_view("south")
                return (
                    view.approval_turnaround.decided == 5
                    and view.approvals_waiting == 4
                    and south.approval_turnaround.decided == 1
                )

            await wait_until(projected, within=60, every=0.3)
            live = await board.site_view("north")
            _check(live)
            assert (await board.site_view("south")).approval_turnaround.longest_hours == 100

        # the service stopped: the queue rebuilt from the topic gives the same figures
        reader: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
        try:
            database = reader[settings.database_name]
            queue = ApprovalQueue(database)
            before = await _documents(queue)
            await rebuild_projection(queue, runtime.registry, settings, progress=lambda _: None)
            assert await _documents(queue) == before
            # the same queries on the stopped service's database (read models opened anew)
            fields = {k: getattr(board, k) for k in board.__dataclass_fields__}
            for name, value in fields.items():
                if isinstance(value, Projection):
                    fields[name] = type(value)(database)
            fields["caseload_policy"] = None  # the stopped service's store: the defaults
            offline = BoardQueries(**{**fields, "approvals": queue})
            assert isinstance(offline.staff, KnownStaff)
            rebuilt = await offline.site_view("north")
            _check(rebuilt)
            keep = {"approval_turnaround", "approvals_waiting_by_approver"}
            assert rebuilt.model_dump(include=keep) == live.model_dump(include=keep)
        finally:
            await reader.close()


def _check(view: SiteSupervisionView) -> None:
    turnaround = view.approval_turnaround
    # sorted 1, 2, 3, 4, 10 hours: median 3, p90 (nearest rank: the 5th of 5) 10, longest 10
    assert (turnaround.days, turnaround.decided) == (30, 5)
    assert (turnaround.median_hours, turnaround.p90_hours, turnaround.longest_hours) == (
        3,
        10,
        10,
    )
    waiting = {
        a.approver_id: (a.waiting, a.oldest_requested_at)
        for a in view.approvals_waiting_by_approver
    }
    # sue supervises carl and cat; dan stands in for her now, so for both
    assert waiting == {
        "sue": (2, T - timedelta(hours=6)),
        "dan": (2, T - timedelta(hours=6)),
    }
    assert (view.approvals_waiting, view.approvals_waiting_unassigned) == (4, 2)
    # north: sue, dan, sid supervise; carl, cat, dora, ivy practise; sam manages (neither)
    ratio = view.supervisor_to_worker
    assert (ratio.supervisors, ratio.workers) == (3, 4)
    assert ratio.workers_per_supervisor == 4 / 3
    assert (ratio.target, ratio.band) == ((5, 10), "underused")  # the default target
    teams = {t: (r.supervisors, r.workers) for t, r in view.supervisor_to_worker_by_team.items()}
    assert teams == {"t1": (2, 2), "t2": (1, 1)}
    # north's caseworkers by the weight of what they hold (the default policy: medium 2)
    assert view.capacity_bands == {"green": 0, "amber": 1, "red": 1}


async def _documents(queue: ApprovalQueue) -> dict[Any, Document]:
    return {d["_id"]: dict(d) async for d in queue.read_model.collection.find({})}

"""The organisation directory on the real Kafka broker and MongoDB-wire server.

Invariants tried here:
- what the supervision routes decide reaches the local copies (`KnownStaff`, `KnownRota`)
  of *another* service, in its own database, through supervision's topic: profiles,
  supervisor, delegations (ended early too), leavers, shifts and cancellations;
- who supervises whom is computed for a time: a delegation covers `starts_at <= at <
  ends_at` (cut at `ended_at`), a leaver supervises and stands in for nobody;
- on call at the boundaries: at a shift's end the next shift is on call, never both, a
  millisecond before it the first; a cancelled shift covers nothing, even when its
  `OnCallShiftScheduled` is delivered again;
- the rules refuse over HTTP with the domain word (409 `StillRostered`, `ShiftOverlaps`,
  422 naming the field).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from casework.auth import mint_dev_token
from casework.directory import KnownRota, KnownStaff
from casework.eventstore import Document
from casework.runtime import ServiceRuntime, events_topic, topic_prefix, wait_until
from casework.settings import Settings

from casework_supervision.bootstrap import create_app
from support.directory import (
    SupervisionTopic,
    aregister_staff,
    delegation,
    delegation_ended,
    left,
    seed_directory,
    shift,
    shift_cancelled,
    staff,
    supervised_by,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


@dataclass
class World:
    supervision: httpx.AsyncClient
    staff: KnownStaff
    rota: KnownRota
    topic: str


@pytest.fixture
async def world(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[World]:
    namespace = f"dir{uuid.uuid4().hex[:10]}"
    common = {
        "namespace": namespace,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "mongo_url": mongo_url,
        "environment": "test",
        "jwt_dev_key_path": tmp_path / "dev.pem",
        "relay_poll_interval_s": 0.2,
    }
    settings = Settings.for_service(
        "supervision", 0, mongo_database=f"{namespace}_supervision", **common
    )
    # another service keeping its own copy of the directory, in its own database
    other = Settings.for_service("notifications", 0, mongo_database=f"{namespace}_other", **common)
    app = create_app(settings)
    runtime = ServiceRuntime.build(other, app.state.runtime.registry)
    known_staff, known_rota = KnownStaff(runtime.database), KnownRota(runtime.database)
    runtime.consume(known_staff, known_rota)
    admin = mint_dev_token(settings, sub="ray", roles=["regional_admin"], sites=[])
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            await stack.enter_async_context(runtime.running())
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://supervision",
                    headers={"Authorization": f"Bearer {admin}"},
                )
            )
            yield World(
                client,
                known_staff,
                known_rota,
                topic_prefix(settings) + events_topic("supervision"),
            )
    finally:
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        for name in (settings.database_name, other.database_name):
            await mongo.drop_database(name)
        await mongo.close()


def _whole_hour_ahead(hours: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=hours)


async def test_the_routes_decisions_reach_another_services_copy(
    world: World, kafka_bootstrap: str
) -> None:
    api = world.supervision
    for member in (("sue", "supervisor"), ("sam", "supervisor"), ("cara", "crisis_worker")):
        await aregister_staff(api, member[0], member[1], team="t1")
    carl = await aregister_staff(api, "carl", "caseworker", team="t1", supervisor="sue")
    assert (carl["supervisor_id"], carl["team"], carl["active"]) == ("sue", "t1", True)
    now = datetime.now(UTC)
    window = (_whole_hour_ahead(2), _whole_hour_ahead(5))
    delegated = await api.post(
        "/staff/sue/delegations",
        json={
            "delegation_id": "away",
            "delegate_id": "sam",
            "starts_at": window[0].isoformat(),
            "ends_at": window[1].isoformat(),
        },
    )
    assert delegated.status_code == 201, delegated.text
    shift_start = _whole_hour_ahead(1)
    handover = shift_start + timedelta(hours=12)
    for shift_id, worker, backup, start in (
        ("s1", "cara", "sue", shift_start),
        ("s2", "sue", "cara", handover),
    ):
        scheduled = await api.post(
            "/sites/north/rota/shifts",
            json={
                "shift_id": shift_id,
                "staff_id": worker,
                "backup_id": backup,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=12)).isoformat(),
            },
        )
        assert scheduled.status_code == 201, scheduled.text
    overlapping = await api.post(
        "/sites/north/rota/shifts",
        json={
            "staff_id": "sam",
            "starts_at": (handover - timedelta(hours=1)).isoformat(),
            "ends_at": (handover + timedelta(hours=1)).isoformat(),
        },
    )
    assert (overlapping.status_code, overlapping.json()["code"]) == (409, "ShiftOverlaps")
    ends_before = await api.post(
        "/sites/north/rota/shifts",
        json={"staff_id": "sam", "starts_at": handover.isoformat(), "ends_at": now.isoformat()},
    )
    assert ends_before.status_code == 422
    assert ends_before.json()["errors"][0]["field"] == "body.ends_at"
    late = handover + timedelta(hours=24)
    for shift_id in ("s3",):
        scheduled = await api.post(
            "/sites/north/rota/shifts",
            json={
                "shift_id": shift_id,
                "staff_id": "sam",
                "starts_at": late.isoformat(),
                "ends_at": (late + timedelta(hours=2)).isoformat(),
            },
        )
        assert scheduled.status_code == 201
    assert (await api.post("/sites/north/rota/shifts/s3/cancel")).status_code == 200
    rostered = await api.post("/staff/sue/leave")
    assert (rostered.status_code, rostered.json()["code"]) == (409, "StillRostered")
    assert (await api.post("/staff/carl/leave")).status_code == 200

    # -- the other service's copy ----------------------------------------------------------
    async def caught_up() -> bool:
        carl = await world.staff.get("carl")
        s3 = await world.rota.read_model.get("north/s3")
        return carl is not None and not carl.active and s3 is not None and s3["cancelled"]

    await wait_until(caught_up, within=30)
    sue = await world.staff.get("sue")
    assert sue is not None
    assert (sue.roles, sue.team, sue.active) == (("supervisor",), "t1", True)
    carl_facts = await world.staff.get("carl")
    assert carl_facts is not None
    assert carl_facts.supervisor_id == "sue"
    # a leaver is still supervised by whom the directory says (for their cases' approvals),
    # but appears among nobody's supervisees
    assert await world.staff.supervisors_of("carl", now) == ("sue",)
    assert await world.staff.supervisors_of("carl", window[0]) == ("sue", "sam")
    assert await world.staff.supervisors_of("carl", window[1] - MS) == ("sue", "sam")
    assert await world.staff.supervisors_of("carl", window[1]) == ("sue",)
    assert await world.staff.supervisees_of("sue", now) == ()
    assert [s.staff_id for s in await world.staff.with_role("north", "supervisor")] == [
        "sam",
        "sue",
    ]
    assert await world.staff.with_role("north", "caseworker") == []  # carl left

    assert await world.rota.on_call("north", shift_start - MS) is None
    first = await world.rota.on_call("north", shift_start)
    assert first is not None
    assert (first.shift_id, first.staff_id, first.backup_id) == (
        "s1",
        "cara",
        "sue",
    )
    just_before = await world.rota.on_call("north", handover - MS)
    assert just_before is not None
    assert just_before.shift_id == "s1"
    at_handover = await world.rota.on_call("north", handover)
    assert at_handover is not None
    assert (at_handover.shift_id, at_handover.staff_id) == (
        "s2",
        "sue",
    )
    assert await world.rota.on_call("north", handover + timedelta(hours=12)) is None
    assert await world.rota.on_call("north", late) is None  # s3 was cancelled
    assert await world.rota.on_call("south", shift_start) is None

    # the supervision service's own rota route says the same
    rota = (await api.get("/sites/north/rota", params={"at": handover.isoformat()})).json()
    assert rota["on_call"]["shift_id"] == "s2"
    assert [s["shift_id"] for s in rota["shifts"]] == ["s2"]

    # -- ended early: the delegation covers nothing after it ended -------------------------
    ended = await api.post("/staff/sue/delegations/away/end")
    assert ended.status_code == 200

    async def delegation_ended_there() -> bool:
        return await world.staff.supervisors_of("carl", window[0]) == ("sue",)

    await wait_until(delegation_ended_there, within=30)

    # -- the test helper's Kafka path reaches the same copy --------------------------------
    await seed_directory(
        SupervisionTopic(kafka_bootstrap, world.topic),
        staff("sol", "crisis_worker", sites=["south"]),
        shift("south", "sol", shift_start, handover, shift_id="x1"),
    )

    async def seeded() -> bool:
        return await world.rota.on_call("south", shift_start) is not None

    await wait_until(seeded, within=30)


# --- the projections' rules, fed directly (no broker) --------------------------------------------


async def test_supervision_at_a_time_with_delegation_windows_and_leavers(
    database: AsyncDatabase[Document],
) -> None:
    known = KnownStaff(database)
    await known.ensure_indexes()
    d1 = delegation("sue", "sam", T0, T0 + timedelta(days=7), delegation_id="d1")
    d2 = delegation("sue", "sid", T0 + timedelta(days=2), T0 + timedelta(days=3), "d2")
    await seed_directory(
        known,
        staff("sue", "supervisor"),
        staff("sam", "supervisor", supervisor="sue"),
        staff("sid", "supervisor"),
        staff("ola", "supervisor", supervisor="sam"),
        staff("carl", "caseworker", supervisor="sue"),
        staff("cole", "caseworker", supervisor="sue"),
        d1,
        d2,
    )
    assert await known.supervisors_of("carl", T0 - MS) == ("sue",)
    assert await known.supervisors_of("carl", T0) == ("sue", "sam")
    assert await known.supervisors_of("carl", T0 + timedelta(days=2)) == ("sue", "sam", "sid")
    assert await known.supervisors_of("carl", T0 + timedelta(days=3)) == ("sue", "sam")
    # sam is supervised by sue and is her delegate: never his own supervisor
    assert await known.supervisors_of("sam", T0) == ("sue",)
    assert await known.supervisees_of("sam", T0 - MS) == ("ola",)
    assert await known.supervisees_of("sam", T0) == ("ola", "carl", "cole")
    assert await known.supervisees_of("sid", T0 + timedelta(days=2, hours=1)) == (
        "carl",
        "cole",
        "sam",
    )
    assert await known.supervisees_of("nobody", T0) == ()
    assert await known.supervisors_of("nobody", T0) == ()

    # ended early, a day in: it covers up to then, not after
    await seed_directory(known, delegation_ended("sue", "d1", T0 + timedelta(days=1)))
    assert await known.supervisors_of("carl", T0 + timedelta(days=1) - MS) == ("sue", "sam")
    assert await known.supervisors_of("carl", T0 + timedelta(days=1)) == ("sue",)

    # a new supervisor; a delegate who left stands in for nobody; a leaver supervises nobody
    await seed_directory(known, supervised_by("cole", "sid"), left("sid"))
    assert await known.supervisors_of("carl", T0 + timedelta(days=2)) == ("sue",)
    assert await known.supervisors_of("cole", T0) == ()
    assert await known.supervisees_of("sid", T0) == ()
    assert await known.supervisees_of("sue", T0) == ("carl", "sam")
    cole = await known.get("cole")
    assert cole is not None
    assert cole.supervisor_id == "sid"
    assert cole.active


async def test_a_redelivered_shift_does_not_come_back_after_its_cancellation(
    database: AsyncDatabase[Document],
) -> None:
    rota = KnownRota(database)
    await rota.ensure_indexes()
    first = shift("north", "cara", T0, T0 + timedelta(hours=8), backup_id="sue", shift_id="a")
    envelopes = await seed_directory(
        rota,
        first,
        shift("north", "sue", T0 + timedelta(hours=8), T0 + timedelta(hours=16), shift_id="b"),
        shift_cancelled("north", "a"),
    )
    assert await rota.on_call("north", T0) is None
    assert await rota.handle(envelopes[0], first) is False  # redelivered: changes nothing
    assert await rota.on_call("north", T0 + timedelta(hours=4)) is None
    on_call = await rota.on_call("north", T0 + timedelta(hours=8))
    assert on_call is not None
    assert on_call.shift_id == "b"
    assert [s.shift_id for s in await rota.shifts("north", T0)] == ["b"]

"""Who may call which route of the organisation directory (the supervision app in process,
on the real MongoDB-wire server and broker).

Writes: `regional_admin` anywhere, `site_manager` at their own sites; a supervisor delegates
(and ends) only their own supervision; every other role 403. Reads (teams, staff, one
profile, the rota): every staff role at their own sites, `regional_admin` anywhere; another
site's directory 403. A refused call changes nothing (the target is read back).
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pymongo import AsyncMongoClient

from casework.auth import mint_dev_token
from casework.eventstore import Document
from casework.settings import Settings

from casework_supervision.bootstrap import create_app
from support.directory import aregister_staff

ROLES = (
    "intake_worker",
    "caseworker",
    "supervisor",
    "crisis_worker",
    "site_manager",
    "regional_admin",
)
WHERE = ("own", "other")
WRITERS = frozenset({"site_manager", "regional_admin"})


@dataclass
class World:
    admin: httpx.AsyncClient
    clients: dict[str, httpx.AsyncClient]
    sites: dict[str, str]
    counter: itertools.count[int]
    shared: dict[tuple[str, ...], str] = field(default_factory=dict)
    fresh_targets: bool = True

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"


@pytest.fixture(scope="module")
async def world(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    namespace = f"da{uuid.uuid4().hex[:10]}"
    settings = Settings.for_service(
        "supervision",
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_supervision",
        environment="test",
        jwt_dev_key_path=tmp_path_factory.mktemp("authz") / "dev.pem",
    )
    app = create_app(settings)

    def client(sub: str, role: str, sites: list[str]) -> httpx.AsyncClient:
        token = mint_dev_token(settings, sub=sub, roles=[role], sites=sites)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://supervision",
            headers={"Authorization": f"Bearer {token}"},
        )

    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            admin = await stack.enter_async_context(client("root", "regional_admin", []))
            clients = {
                role: await stack.enter_async_context(client(f"{role}-x", role, ["home"]))
                for role in ROLES
            }
            # the callers themselves are in the directory (a supervisor delegating their own)
            await aregister_staff(admin, "supervisor-x", "supervisor", sites=["home"], team="t1")
            await aregister_staff(admin, "deputy-home", "supervisor", sites=["home"], team="t1")
            await aregister_staff(admin, "someone-away", "caseworker", sites=["away"], team="t1")
            yield World(admin, clients, {"own": "home", "other": "away"}, itertools.count())
    finally:
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await mongo.drop_database(settings.database_name)
        await mongo.close()


def _minute(days: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=days)


Call = Callable[[World, httpx.AsyncClient, str], Awaitable[httpx.Response]]


async def _staff(world: World, site: str, *roles: str) -> str:
    """A member of staff to act on: a new one for a call that will change them, else one
    kept for refusals (a refused call changes nothing, so they can be shared)."""
    key = (site, *roles)
    if not world.fresh_targets and key in world.shared:
        return world.shared[key]
    staff_id = world.fresh("s")
    await aregister_staff(
        world.admin, staff_id, *(roles or ("caseworker",)), sites=[site], places=False
    )
    if not world.fresh_targets:
        world.shared[key] = staff_id
    return staff_id


async def register_team(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    return await c.post(f"/sites/{site}/teams", json={"team": w.fresh("t"), "name": "T"})


async def register_staff(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    body = {
        "staff_id": w.fresh("n"),
        "name": "New",
        "sites": [site],
        "roles": ["caseworker"],
        "started_on": "2026-01-05",
    }
    return await c.post("/staff", json=body)


async def change_profile(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    staff_id = await _staff(w, site)
    body = {"name": "Changed", "sites": [site], "roles": ["caseworker"], "started_on": "2026-01-05"}
    return await c.put(f"/staff/{staff_id}", json=body)


async def leave(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    return await c.post(f"/staff/{await _staff(w, site)}/leave")


async def set_supervisor(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    staff_id, supervisor = await _staff(w, site), await _staff(w, site, "supervisor")
    return await c.put(f"/staff/{staff_id}/supervisor", json={"supervisor_id": supervisor})


async def delegate(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    supervisor = await _staff(w, site, "supervisor")
    deputy = await _staff(w, site, "supervisor", "crisis_worker")  # another shared one
    body = {"delegate_id": deputy, "ends_at": _minute(3).isoformat()}
    return await c.post(f"/staff/{supervisor}/delegations", json=body)


async def end_delegation(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    supervisor = await _staff(w, site, "supervisor")
    deputy = await _staff(w, site, "supervisor", "crisis_worker")  # another shared one
    body = {"delegation_id": "d", "delegate_id": deputy, "ends_at": _minute(3).isoformat()}
    delegated = await w.admin.post(f"/staff/{supervisor}/delegations", json=body)
    assert delegated.status_code in (201, 409)  # 409: a shared target, delegated before
    return await c.post(f"/staff/{supervisor}/delegations/d/end")


async def schedule_shift(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    worker, day = await _staff(w, site, "crisis_worker"), 1 + next(w.counter)
    body = {
        "staff_id": worker,
        "starts_at": _minute(day).isoformat(),
        "ends_at": (_minute(day) + timedelta(hours=1)).isoformat(),
    }
    return await c.post(f"/sites/{site}/rota/shifts", json=body)


async def cancel_shift(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    key = (site, "shift")
    if w.fresh_targets or key not in w.shared:
        scheduled = await schedule_shift(w, w.admin, site)
        assert scheduled.status_code == 201, scheduled.text
        w.shared[key] = scheduled.json()["shift_id"]
    return await c.post(f"/sites/{site}/rota/shifts/{w.shared[key]}/cancel")


async def list_teams(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    return await c.get(f"/sites/{site}/teams")


async def list_staff(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    return await c.get("/staff", params={"site": site})


async def read_staff(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    return await c.get(f"/staff/{await _staff(w, site)}")


async def read_rota(w: World, c: httpx.AsyncClient, site: str) -> httpx.Response:
    return await c.get(f"/sites/{site}/rota")


WRITES: list[tuple[str, Call, int]] = [
    ("POST /sites/{site}/teams", register_team, 201),
    ("POST /staff", register_staff, 201),
    ("PUT /staff/{id}", change_profile, 200),
    ("POST /staff/{id}/leave", leave, 200),
    ("PUT /staff/{id}/supervisor", set_supervisor, 200),
    ("POST /staff/{id}/delegations", delegate, 201),
    ("POST /staff/{id}/delegations/{d}/end", end_delegation, 200),
    ("POST /sites/{site}/rota/shifts", schedule_shift, 201),
    ("POST /sites/{site}/rota/shifts/{s}/cancel", cancel_shift, 200),
]
READS: list[tuple[str, Call, int]] = [
    ("GET /sites/{site}/teams", list_teams, 200),
    ("GET /staff?site=", list_staff, 200),
    ("GET /staff/{id}", read_staff, 200),
    ("GET /sites/{site}/rota", read_rota, 200),
]


def expected(route: str, role: str, where: str, ok: int) -> int:
    if route in {r for r, _, _ in READS}:
        return ok if role == "regional_admin" or where == "own" else 403
    if role == "regional_admin" or (role == "site_manager" and where == "own"):
        return ok
    return 403


MATRIX = [
    pytest.param(
        call,
        role,
        where,
        expected(route, role, where, ok),
        id=f"{route} | {role} | {where} site -> {expected(route, role, where, ok)}",
    )
    for route, call, ok in [*WRITES, *READS]
    for role in ROLES
    for where in WHERE
]


@pytest.mark.parametrize(("call", "role", "where", "status"), MATRIX)
async def test_who_may_call_which_directory_route(
    world: World, call: Call, role: str, where: str, status: int
) -> None:
    world.fresh_targets = status < 400
    response = await call(world, world.clients[role], world.sites[where])
    assert response.status_code == status, response.text
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_supervisor_delegates_only_their_own_supervision(world: World) -> None:
    sue = world.clients["supervisor"]  # supervisor-x in the directory
    end = _minute(2).isoformat()
    own = await sue.post(
        "/staff/supervisor-x/delegations",
        json={"delegation_id": "mine", "delegate_id": "deputy-home", "ends_at": end},
    )
    assert own.status_code == 201, own.text
    assert (await sue.post("/staff/supervisor-x/delegations/mine/end")).status_code == 200
    other = await world.admin.get("/staff/deputy-home")
    assert other.status_code == 200
    refused = await sue.post(
        "/staff/deputy-home/delegations", json={"delegate_id": "supervisor-x", "ends_at": end}
    )
    assert refused.status_code == 403
    after = (await world.admin.get("/staff/deputy-home")).json()
    assert after["delegations"] == []  # the refused call changed nothing

"""Directory changes reach the cases service and change who may be assigned or read a case
(issue 10), on the real broker and MongoDB-wire server: the supervision and cases apps in
process, each with its own database, talking only through supervision's topic.

- an assignee is in the directory, active, a caseworker at the case's site with a team there;
  the team recorded is the directory's, and follows a profile change;
- a supervisor reaches the cases of whom they supervise per the directory, and a delegate
  while the delegation runs (ended early: no more), beside the token's team rule.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from casework.auth import mint_dev_token
from casework.contracts.intake import ReferralAccepted
from casework.directory import KnownCaseloadPolicy
from casework.envelope import Envelope
from casework.eventstore import Document
from casework.privacy.sealing import Opener
from casework.runtime import events_topic, topic_prefix, wait_until
from casework.settings import Settings

from casework_cases.bootstrap import create_app as cases_app
from casework_supervision.bootstrap import create_app as supervision_app
from support.directory import aregister_staff


@dataclass
class Apps:
    supervision: httpx.AsyncClient
    cases: httpx.AsyncClient
    token: Callable[..., dict[str, str]]
    open_case: Callable[[], Awaitable[str]]
    cases_app: FastAPI


@pytest.fixture
async def apps(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[Apps]:
    namespace = f"dc{uuid.uuid4().hex[:10]}"

    def settings(service: str) -> Settings:
        return Settings.for_service(
            service,
            0,
            namespace=namespace,
            kafka_bootstrap_servers=kafka_bootstrap,
            mongo_url=mongo_url,
            mongo_database=f"{namespace}_{service}",
            environment="test",
            jwt_dev_key_path=tmp_path / "dev.pem",
            relay_poll_interval_s=0.2,
        )

    cases_settings = settings("cases")

    def token(sub: str, *roles: str, team: str | None = None) -> dict[str, str]:
        minted = mint_dev_token(
            cases_settings, sub=sub, roles=list(roles), sites=["north"], team=team
        )
        return {"Authorization": f"Bearer {minted}"}

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)

    async def open_case() -> str:
        """A case opened at north, as intake's accepted referral opens it."""
        referral_id, case_id = uuid.uuid4().hex, uuid.uuid4().hex
        event = ReferralAccepted(
            referral_id=referral_id,
            case_id=case_id,
            client_id=uuid.uuid4().hex,
            site="north",
            accepted_by="ivy",
            accepted_at=datetime.now(UTC),
            received_at=datetime.now(UTC),
            client_name="Alex Morgan",
        )
        envelope = Envelope(
            type=event.type_name(),
            source="/casework/intake",
            subject=f"referral-{referral_id}",
            time=datetime.now(UTC),
            data=event.model_dump(mode="json"),
            stream_version=1,
            site="north",
        )
        await producer.send_and_wait(
            topic_prefix(cases_settings) + events_topic("intake"),
            envelope.value(),
            key=envelope.key,
            headers=envelope.headers(),
        )
        return case_id

    built = [supervision_app(settings("supervision")), cases_app(cases_settings)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = []
            for app, name in zip(built, ("supervision", "cases"), strict=True):
                await stack.enter_async_context(app.router.lifespan_context(app))
                clients.append(
                    await stack.enter_async_context(
                        httpx.AsyncClient(
                            transport=httpx.ASGITransport(app=app), base_url=f"http://{name}"
                        )
                    )
                )
            await producer.start()
            stack.push_async_callback(producer.stop)
            clients[0].headers.update(token("ray", "regional_admin"))
            yield Apps(clients[0], clients[1], token, open_case, built[1])
    finally:
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        for service in ("supervision", "cases"):
            await mongo.drop_database(f"{namespace}_{service}")
        await mongo.close()


async def test_directory_changes_decide_assignment_and_supervisor_reach(apps: Apps) -> None:
    api, cases = apps.supervision, apps.cases
    manager = apps.token("mia", "site_manager")
    for sub, role, team in (("sue", "supervisor", "t9"), ("sam", "supervisor", "t9")):
        await aregister_staff(api, sub, role, team=team)
    await aregister_staff(api, "carl", "caseworker", team="t1")
    await aregister_staff(api, "cara", "caseworker", team="t2")
    await aregister_staff(api, "sid", "caseworker", sites=["south"], team="s1")
    await aregister_staff(api, "ivan", "intake_worker", team="t1")
    case_id = await apps.open_case()

    async def opened() -> bool:
        return (await cases.get(f"/cases/{case_id}", headers=manager)).status_code == 200

    await wait_until(opened, within=30)

    async def assign(worker: str, team: str | None = None) -> httpx.Response:
        body = {"caseworker_id": worker, **({"team": team} if team else {})}
        return await cases.post(f"/cases/{case_id}/assignment", json=body, headers=manager)

    async def refused_with(worker: str, code: str, team: str | None = None) -> None:
        async def says_it() -> bool:
            answer = await assign(worker, team)
            return answer.status_code == 409 and answer.json()["code"] == code

        await wait_until(says_it, within=30)

    await refused_with("nobody", "AssigneeNotInDirectory")
    await refused_with("sid", "AssigneeNotAtSite")  # once cases heard of sid
    await refused_with("ivan", "AssigneeNotCaseworker")
    await refused_with("carl", "AssigneeTeamMismatch", team="t2")
    assigned = await assign("carl")
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["caseworker_id"], assigned.json()["team"]) == ("carl", "t1")

    # -- supervisor reach through the directory (sue's token team is t9, the case's t1) ----
    sue, sam = (
        apps.token("sue", "supervisor", team="t9"),
        apps.token("sam", "supervisor", team="t9"),
    )

    async def reads(who: dict[str, str], expected: int) -> None:
        async def answered() -> bool:
            return (await cases.get(f"/cases/{case_id}", headers=who)).status_code == expected

        await wait_until(answered, within=30)

    await reads(sue, 404)
    assert (
        await api.put("/staff/carl/supervisor", json={"supervisor_id": "sue"})
    ).status_code == 200
    await reads(sue, 200)

    async def in_carls_caseload() -> bool:  # the caseload read model trails the case
        caseload = await cases.get("/caseloads/carl", headers=sue)
        return caseload.status_code == 200 and case_id in caseload.text

    await wait_until(in_carls_caseload, within=30)
    await reads(sam, 404)
    now = datetime.now(UTC)
    delegated = await api.post(
        "/staff/sue/delegations",
        json={
            "delegation_id": "away",
            "delegate_id": "sam",
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert delegated.status_code == 201, delegated.text
    await reads(sam, 200)
    assert (await api.post("/staff/sue/delegations/away/end")).status_code == 200
    await reads(sam, 404)

    # -- a profile change moves the team recorded at the next assignment; a leaver is refused
    assert (
        await api.post("/sites/north/teams", json={"team": "t3", "name": "T3"})
    ).status_code == 201
    moved = await api.put(
        "/staff/cara",
        json={
            "name": "Cara",
            "sites": ["north"],
            "team": "t3",
            "roles": ["caseworker"],
            "started_on": "2026-01-05",
        },
    )
    assert moved.status_code == 200, moved.text

    async def cara_in_t3() -> bool:
        answer = await assign("cara")
        return answer.status_code == 200 and answer.json()["team"] == "t3"

    await wait_until(cara_in_t3, within=30)
    assert (await api.post("/staff/carl/leave")).status_code == 200
    await refused_with("carl", "AssigneeHasLeft")


async def test_the_caseload_policy_set_in_supervision_decides_an_assignment_into_red(
    apps: Apps,
) -> None:
    api, cases = apps.supervision, apps.cases
    manager = apps.token("mia", "site_manager")
    # wes can carry 3 points; a case not yet rated weighs 1 by default, 2 by the new policy
    await aregister_staff(api, "wes", "caseworker", team="t1", capacity_points=3)
    policy = {
        "points_by_risk": {"imminent": 4, "high": 3, "medium": 2, "low": 1, "none": 2},
        "crisis_bonus": 2,
        "default_capacity": 20,
        "amber_at_percent": 100,
        "red_at_percent": 110,
    }
    admin_set = await api.put("/caseload-policy", json=policy)
    assert admin_set.status_code == 200, admin_set.text
    runtime = apps.cases_app.state.runtime
    known = next(h for h in runtime.handlers if isinstance(h, KnownCaseloadPolicy))

    async def policy_heard() -> bool:
        return (await known.current()).weight(None, False) == 2

    await wait_until(policy_heard, within=30)
    first, second = await apps.open_case(), await apps.open_case()

    async def assign(case_id: str, **extra: str) -> httpx.Response:
        body = {"caseworker_id": "wes", **extra}
        return await cases.post(f"/cases/{case_id}/assignment", json=body, headers=manager)

    async def both_opened_and_wes_known() -> bool:
        answer = await assign(first)
        return answer.status_code == 200

    await wait_until(both_opened_and_wes_known, within=30)  # 2 of 3 points: amber
    index = apps.cases_app.state.cases.caseloads

    async def indexed() -> bool:
        return [c.case_id for c in await index.held_by("wes")] == [first]

    await wait_until(indexed, within=30)

    async def second_opened() -> bool:
        return (await cases.get(f"/cases/{second}", headers=manager)).status_code == 200

    await wait_until(second_opened, within=30)
    refused = await assign(second)  # 4 of 3 points: 133 %, red
    assert (refused.status_code, refused.json()["code"]) == (409, "CapacityExceeded"), refused.text
    assert "carries 2 points" in refused.json()["detail"]
    taken = await assign(second, capacity_override_reason="Only Welsh speaker on the team")
    assert taken.status_code == 200, taken.text
    timeline = await cases.get(f"/cases/{second}/timeline", headers=manager)
    assert timeline.status_code == 200
    stored = await runtime.store.load(f"case-{second}")
    [assigned] = [e for e in stored if e.type.endswith("CaseworkerAssigned.v1")]
    # the reason is the client's: stored sealed under their notes key, opened for a reader
    sealed = assigned.data["capacity_override_reason"]
    assert sealed.startswith(f"enc:v1:client:{assigned.data['client_id']}/notes/")
    assert await Opener(runtime.keys).open_value(sealed) == "Only Welsh speaker on the team"

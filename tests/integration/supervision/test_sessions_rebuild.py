"""Every read model of supervision sessions rebuilt from its topics equals the live one
(`casework rebuild supervision NAME`, the case facts too, which have no consumer group of
their own), on real Kafka and FerretDB: case and contact facts,
sessions, action items, cadences, concerns, after a session's whole life."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.contracts.cases import CaseOpened, CaseworkerAssigned, CrisisDeclared
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import ContactObligationOpened, ContactOverdue
from casework.contracts.supervision import PracticeTopic, SessionKind
from casework.eventstore import CommitContext, Document
from casework.projections import Projection
from casework.rebuild import rebuild_projection, run_offline
from casework.runtime import wait_until

from casework_supervision.adapters.case_facts import CaseFactsStore
from casework_supervision.bootstrap import build
from casework_supervision.settings import SessionsSettings
from support.directory import seed_directory, staff
from support.namespaced import dropped_afterwards, namespaced_settings, publisher

MINE = {
    "contact_obligations",
    "supervision_sessions",
    "action_items",
    "cadence_view",
    "concerns",
}
SUE = Principal(
    sub="sue", name="Sue", roles=frozenset({"supervisor"}), sites=frozenset({"north"}), team="t1"
)
CARL = Principal(
    sub="carl", name="Carl", roles=frozenset({"caseworker"}), sites=frozenset({"north"}), team="t1"
)
CTX = CommitContext()


async def _documents(projection: Projection) -> dict[Any, Document]:
    return {d["_id"]: dict(d) async for d in projection.read_model.collection.find({})}


async def test_every_sessions_read_model_rebuilt_equals_the_live_one(
    kafka_bootstrap: str, mongo_url: str
) -> None:
    namespace = f"sesrb{uuid.uuid4().hex[:8]}"
    settings = namespaced_settings("supervision", namespace, kafka_bootstrap, mongo_url)
    wired = build(settings, sessions_settings=SessionsSettings())
    runtime, wiring = wired.runtime, wired.sessions
    sessions = wiring.sessions
    projections = [h for h in runtime.handlers if isinstance(h, Projection) and h.name in MINE]
    assert {p.name for p in projections} == MINE
    # the one copy of the case facts has no consumer group of its own (the approvals policy
    # writes it), yet rebuilds like any read model
    assert not [h for h in runtime.handlers if h.name == "case_facts"]
    assert runtime.embedded["case_facts"][0] is wiring.sessions.caseload
    now = datetime.now(UTC)
    async with dropped_afterwards(mongo_url, settings):
        async with runtime.running(), publisher(settings) as relay:

            async def publish(service: str, stream: str, event: Any) -> None:
                await relay.publish(service, stream, event, time=now)

            await seed_directory(
                runtime.store,
                staff("sue", "supervisor", team="t1"),
                staff("carl", "caseworker", team="t1", supervisor="sue"),
            )
            for i in range(4):
                case_id = f"c{i}"
                await publish(
                    "cases",
                    f"case-{case_id}",
                    CaseOpened(
                        case_id=case_id,
                        client_id=f"cl{i}",
                        referral_id=str(uuid.uuid4()),
                        site="north",
                        risk_level=RiskLevel.HIGH,
                        opened_at=now,
                    ),
                )
                await publish(
                    "cases",
                    f"case-{case_id}",
                    CaseworkerAssigned(
                        case_id=case_id,
                        caseworker_id="carl",
                        team="t1",
                        assigned_by="sue",
                        assigned_at=now,
                    ),
                )
            await publish(
                "cases",
                "case-c0",
                CrisisDeclared(
                    case_id="c0",
                    crisis_id="k",
                    site="north",
                    risk_level=RiskLevel.IMMINENT,
                    summary="enc:v1:client:cl0/clinical/v1:" + "A" * 40,
                    declared_by="carl",
                    declared_at=now,
                    client_id="cl0",
                ),
            )
            for event in (
                ContactObligationOpened(
                    case_id="c1",
                    obligation_id="o-1",
                    rule_id="high-every-3-days",
                    rule_version="v",
                    due_at=now,
                    media_classes=(),
                    opened_at=now - timedelta(days=3),
                ),
                ContactOverdue(
                    case_id="c1",
                    obligation_id="o-1",
                    rule_id="high-every-3-days",
                    rule_version="v",
                    due_at=now,
                    overdue_seconds=1,
                    site="north",
                    raised_at=now,
                ),
            ):
                await publish("contacts", "obligations-c1", event)

            async def known() -> bool:
                carl = await sessions.staff.get("carl")
                cases = await sessions.caseload.of_worker("carl")
                return len(cases) == 4 and carl is not None and carl.supervisor_id == "sue"

            await wait_until(known, within=60, every=0.3)
            await sessions.schedule(
                session_id="s1",
                worker_id="carl",
                kind=SessionKind.ONE_TO_ONE,
                planned_for=now,
                principal=SUE,
                ctx=CTX,
            )
            await sessions.prepare("s1", SUE, CTX)
            await sessions.record_review(
                "s1",
                case_id="c0",
                findings="f",
                decision="d",
                reasons="r",
                principal=SUE,
                ctx=CTX,
            )
            await sessions.record_practice_note(
                "s1", note_id="n", topic=PracticeTopic.PRACTICE, text="t", principal=SUE, ctx=CTX
            )
            await sessions.set_action_item(
                "s1",
                action_item_id="a1",
                owner_id="carl",
                due_at=now + timedelta(days=3),
                description="x",
                case_id="c1",
                principal=SUE,
                ctx=CTX,
            )
            await sessions.hold("s1", SUE, CTX)
            await sessions.acknowledge("s1", CARL, CTX)
            await sessions.complete_action_item("a1", CARL, CTX)
            await sessions.schedule(
                session_id="s2",
                worker_id="carl",
                kind=SessionKind.GROUP,
                planned_for=now + timedelta(days=7),
                principal=SUE,
                ctx=CTX,
            )
            await sessions.cancel(
                "s2",
                reason="ill",
                reschedule_to=now + timedelta(days=8),
                principal=SUE,
                ctx=CTX,
            )
            await sessions.escalate_concern(
                concern_id="k1",
                site="north",
                worker_id="carl",
                case_id=None,
                summary="s",
                principal=SUE,
                ctx=CTX,
            )

            async def settled() -> bool:
                item = await wiring.action_items.get("a1")
                cadence = await wiring.cadence.get("worker:carl")
                review = await wiring.cadence.get("case:c0")
                concern = await wiring.concerns.get("k1")
                s2 = await wiring.session_list.get("s2")
                s1 = await wiring.session_list.get("s1")
                return bool(
                    item
                    and item.get("status") == "done"
                    and cadence
                    and cadence.get("last_held_at")
                    and review
                    and review.get("last_reviewed_at")
                    and concern
                    and s1
                    and s1.get("status") == "acknowledged"
                    and s2
                    and s2.get("status") == "cancelled"
                    and len(await wiring.session_list.of_worker("carl")) == 3
                )

            await wait_until(settled, within=60, every=0.3)
        # the service stopped (rebuild refuses while its groups consume): a client of our own
        reader: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
        try:
            database = reader[settings.database_name]
            offline = [type(p)(database) for p in projections]
            live = {p.name: await _documents(p) for p in offline}
            assert all(live[name] for name in MINE)
            for projection in offline:
                await rebuild_projection(
                    projection, runtime.registry, settings, progress=lambda _: None
                )
                rebuilt = await _documents(projection)
                assert rebuilt == live[projection.name], projection.name
            # the case facts as an operator rebuilds them: `casework rebuild supervision
            # case_facts` on a service built again (not started)
            facts = CaseFactsStore(database)
            kept = await _documents(facts)
            assert len(kept) == 4
            again = build(settings).runtime
            try:
                said: list[str] = []
                assert await run_offline(again, "projections", out=said.append) == 0
                assert any(line.startswith("case_facts ") for line in said), said
                assert await run_offline(again, "rebuild", "case_facts", progress=said.append) == 0
            finally:
                await again.stop()
            assert any("rebuilt case_facts" in line for line in said), said
            assert await _documents(facts) == kept
        finally:
            await reader.close()

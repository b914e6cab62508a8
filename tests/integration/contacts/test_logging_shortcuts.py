"""The reads a contact log skips, tried against two contacts processes (two `build`s, two
repositories with caches of their own) on the real MongoDB-wire server.

- A new contact is committed without reading its stream first: an id used before (a retried
  log, a scheduled contact logged by its id, another case's contact) takes the ordinary path —
  refused, or logged against its schedule, or not found — and never adds a commit it should
  not.
- Counting a logged contact trusts the repository's cache of the case's obligations: when
  another process changed them since (a replan after a risk change), the count conflicts and
  is decided again on what is stored — it counts for the rules in force, never for the old.
- "Nothing to do" decided on a stale cache is decided again on a fresh load: an obligation
  another process opened is found overdue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from casework.access import NotVisible
from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.contacts import (
    ContactCounted,
    ContactObligationOpened,
    ContactOverdue,
    Medium,
    Outcome,
    Participant,
    ParticipantKind,
)
from casework.eventstore import CommitContext, Document
from casework.settings import Settings

from casework_contacts.bootstrap import Wired, build
from casework_contacts.domain.commands import LogContact, ScheduleContact
from casework_contacts.domain.errors import ContactNotScheduled
from casework_contacts.domain.obligations import CaseTrigger, MarkOverdue

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WORKER = Principal(
    sub="w", name="w", roles=frozenset({"crisis_worker"}), sites=frozenset({"north"})
)
ELSEWHERE = Principal(
    sub="x", name="x", roles=frozenset({"crisis_worker"}), sites=frozenset({"south"})
)
CLIENT = (Participant(kind=ParticipantKind.CLIENT),)


@pytest.fixture
async def two(mongo_url: str, kafka_bootstrap: str) -> AsyncIterator[tuple[Wired, Wired]]:
    """Two contacts processes' applications on one database (not started: no consumers)."""
    name = f"test_logging_{uuid.uuid4().hex[:10]}"
    settings = Settings.for_service(
        "contacts", 0, environment="test", mongo_url=mongo_url, mongo_database=name,
        kafka_bootstrap_servers=kafka_bootstrap,
    )  # fmt: skip
    clock = FixedClock(START)
    a, b = build(settings, clock=clock), build(settings, clock=clock)
    try:
        await a.runtime.store.ensure_indexes()
        yield a, b
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(name)
        await client.close()
        await a.runtime.stop()
        await b.runtime.stop()


async def seed_case(wired: Wired, risk: str, site: str = "north") -> str:
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    await wired.runtime.database["case_facts"].insert_one(
        {"_id": case_id, "client_id": f"cl-{case_id}", "site": site, "phase": "active",
         "risk_level": risk, "caseworker_id": "w", "team": "t1"}
    )  # fmt: skip
    return case_id


async def set_risk(wired: Wired, case_id: str, risk: str) -> None:
    await wired.runtime.database["case_facts"].update_one(
        {"_id": case_id}, {"$set": {"risk_level": risk}}
    )


async def log(
    wired: Wired, case_id: str, contact_id: str | None = None, who: Principal = WORKER
) -> Any:
    contacts = wired.contacts
    case = await contacts.case_ref(case_id, who, for_writing=True)
    cmd = LogContact(
        contact_id=contact_id or f"k-{uuid.uuid4().hex[:8]}",
        case=case,
        medium=Medium.HOME_VISIT,
        occurred_at=contacts.clock.now() - timedelta(minutes=1),
        participants=CLIENT,
        outcome=Outcome.MADE,
        logged_by=who.sub,
    )
    return await contacts.execute(cmd, who, CommitContext())


def later(wired: Wired, hours: float) -> None:
    """Both processes' clock (one `FixedClock`) moves on: contacts from before a rule began
    to apply do not count for it."""
    clock = wired.contacts.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=hours))


async def stored(wired: Wired, stream_id: str) -> list[Any]:
    registry = wired.runtime.registry
    return [registry.parse(e.type, dict(e.data)) for e in await wired.runtime.store.load(stream_id)]


async def commits(wired: Wired, stream_id: str) -> int:
    return await wired.runtime.database["events"].count_documents({"stream_id": stream_id})


async def test_an_id_used_before_takes_the_ordinary_path(two: tuple[Wired, Wired]) -> None:
    a, b = two
    case_id = await seed_case(a, "high")
    other_case = await seed_case(a, "high", site="south")
    await a.contacts.replan(case_id, None, CommitContext())

    # logged once; logged again under the same id (a retry) from the other process: refused,
    # and the stream still holds one commit
    logged = await log(a, case_id)
    with pytest.raises(ContactNotScheduled):
        await log(b, case_id, logged.id)
    assert await commits(a, f"contact-{logged.id}") == 1

    # a scheduled contact logged by its id through the unscheduled path: logged against it
    case = await b.contacts.case_ref(case_id, WORKER, for_writing=True)
    planned = ScheduleContact(
        contact_id=f"s-{uuid.uuid4().hex[:8]}", case=case, medium=Medium.HOME_VISIT,
        participants=CLIENT, planned_for=START + timedelta(hours=2), window_ends_at=None,
        assigned_to="w", purpose=None, expected_duration_minutes=45, follow_up_of=None,
        scheduled_by="w",
    )  # fmt: skip
    await b.contacts.execute(planned, WORKER, CommitContext())
    done = await log(a, case_id, planned.contact_id)
    events = await stored(a, f"contact-{planned.contact_id}")
    assert [type(e).__name__ for e in events] == ["ContactScheduled", "ContactLogged"]
    assert events[1].was_scheduled
    assert done.version == 2

    # another case's contact id, used by someone who cannot reach that case: not found
    with pytest.raises(NotVisible):
        await log(b, other_case, logged.id, who=ELSEWHERE)
    assert await commits(a, f"contact-{logged.id}") == 1


async def test_a_count_on_a_stale_cache_is_decided_again_on_what_is_stored(
    two: tuple[Wired, Wired],
) -> None:
    a, b = two
    case_id = await seed_case(a, "high")
    await a.contacts.replan(case_id, None, CommitContext())
    later(a, hours=1)
    await log(a, case_id)  # process a's cache of the obligations is now current
    conflicts_before = a.runtime.metrics.commit_conflicts._value.get()

    # process b replans after a risk change: the high rules cancelled, the imminent opened
    await set_risk(b, case_id, "imminent")
    assert await b.contacts.replan(case_id, None, CommitContext())

    # process a logs the next contact: counted for the rules in force, not a's stale view
    later(a, hours=1)
    second = await log(a, case_id)
    counted = [
        e
        for e in await stored(a, f"obligations-{case_id}")
        if isinstance(e, ContactCounted) and e.contact_id == second.id
    ]
    assert len(counted) == 1
    assert counted[0].counted_for == ("imminent-daily",)
    assert a.runtime.metrics.commit_conflicts._value.get() > conflicts_before  # it was stale


async def test_nothing_to_do_on_a_stale_cache_is_checked_on_a_fresh_load(
    two: tuple[Wired, Wired],
) -> None:
    a, b = two
    case_id = await seed_case(a, "high")
    await a.contacts.replan(case_id, None, CommitContext())
    await a.contacts.obligations.find(case_id)  # cached by process a

    # process b starts the first-contact clock (a's cache does not have it) ...
    trigger = CaseTrigger("case_opened:1", "case_opened", START)
    assert await b.contacts.replan(case_id, trigger, CommitContext())
    opened = [
        e
        for e in await stored(b, f"obligations-{case_id}")
        if isinstance(e, ContactObligationOpened) and e.trigger
    ]
    (clock_rule,) = opened
    # ... and once it is due, a decides on its stale cache first: it must still find it due
    later(a, hours=48)
    facts = await a.contacts._facts(case_id)
    assert facts is not None
    cmd = MarkOverdue(facts, clock_rule.obligation_id, clock_rule.due_at)
    assert await a.contacts._decide(case_id, cmd, trust_cache=True)
    overdue = [
        e for e in await stored(a, f"obligations-{case_id}") if isinstance(e, ContactOverdue)
    ]
    assert [e.obligation_id for e in overdue] == [clock_rule.obligation_id]

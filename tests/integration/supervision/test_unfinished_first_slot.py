"""A new supervision entry whose first slot holds an unfinished write, on the real servers.

A writer that failed between the two inserts of an entry's first commit (a database outage
mid-append; the caller then retries the same id) leaves that slot taken until the relay
fences it. Invariant tried here: such a conflict is never answered as "already exists" or
"already registered" — that would tell the caller an entry was stored that nobody stored —
but as a conflict to retry, and a retry after the fence stores the entry."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from casework.auth import Principal
from casework.contracts.supervision import SessionKind
from casework.eventstore import CommitContext, ConcurrencyConflict, commit_id
from casework.runtime import ServiceRuntime, wait_until

from casework_supervision.bootstrap import Wired, build
from casework_supervision.domain.commands import RegisterSite
from casework_supervision.domain.session import SupervisionSession
from casework_supervision.domain.site import Site
from support.directory import seed_directory, staff
from support.namespaced import dropped_afterwards, namespaced_settings

SUE = Principal(
    sub="sue", name="Sue", roles=frozenset({"supervisor"}), sites=frozenset({"north"}), team="t1"
)
CTX = CommitContext()


@pytest.fixture
async def wired(kafka_bootstrap: str, mongo_url: str) -> AsyncIterator[Wired]:
    namespace = f"slot{uuid.uuid4().hex[:10]}"
    settings = namespaced_settings("supervision", namespace, kafka_bootstrap, mongo_url)
    built = build(settings)
    async with dropped_afterwards(mongo_url, settings), built.runtime.running():
        yield built


async def unfinished_first_write(runtime: ServiceRuntime, stream: str) -> None:
    """What a writer that died after its intent and before its commit leaves behind."""
    await runtime.store.pending.insert_one(
        {
            "_id": commit_id(stream, 1),
            "stream_id": stream,
            "first": 1,
            "attempt": "a-writer-that-died",
            "recorded_at": datetime.now(UTC),
        }
    )


@pytest.mark.timeout(120)
async def test_a_session_whose_first_slot_is_held_is_retried_not_called_existing(
    wired: Wired,
) -> None:
    await seed_directory(
        wired.runtime.store,
        staff("sue", "supervisor", team="t1"),
        staff("carl", "caseworker", team="t1", supervisor="sue"),
    )

    async def carl_supervised_by_sue() -> bool:  # the directory's local copy heard of it
        return "sue" in await wired.sessions.sessions.staff.supervisors_of(
            "carl", datetime.now(UTC)
        )

    await wait_until(carl_supervised_by_sue, within=60)
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await unfinished_first_write(wired.runtime, SupervisionSession.stream_id_for(session_id))

    async def schedule() -> SupervisionSession:
        return await wired.sessions.sessions.schedule(
            session_id=session_id,
            worker_id="carl",
            kind=SessionKind.ONE_TO_ONE,
            planned_for=datetime.now(UTC) + timedelta(days=2),
            principal=SUE,
            ctx=CTX,
        )

    with pytest.raises(ConcurrencyConflict):  # used to be SessionAlreadyExists
        await schedule()

    async def stored() -> bool:
        with contextlib.suppress(ConcurrencyConflict):
            await schedule()
            return True
        return False

    await wait_until(stored, within=90, every=1.0)  # the relay fences the slot, then it goes in
    session = await wired.sessions.sessions.sessions.get(session_id)
    assert session.worker == "carl"


@pytest.mark.timeout(120)
async def test_a_site_whose_first_slot_is_held_is_retried_not_called_registered(
    wired: Wired,
) -> None:
    code = f"site-{uuid.uuid4().hex[:6]}"
    await unfinished_first_write(wired.runtime, Site.stream_id_for(code))
    register = RegisterSite(site=code, name="Riverside")

    with pytest.raises(ConcurrencyConflict):  # used to be SiteAlreadyRegistered
        await wired.supervision.register_site(register, CTX)

    async def stored() -> bool:
        with contextlib.suppress(ConcurrencyConflict):
            await wired.supervision.register_site(register, CTX)
            return True
        return False

    await wait_until(stored, within=90, every=1.0)
    assert (await wired.supervision.sites.get(code)).id == code

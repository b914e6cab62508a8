"""The event store on the real MongoDB-wire server: commits, loading, optimistic concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.eventstore import (
    AggregateNotFound,
    CommitContext,
    ConcurrencyConflict,
    Document,
    EventStore,
    Repository,
    void_commit,
)
from casework.metrics import Metrics

from support.ledger import REGISTRY, AmountCredited, Ledger, LedgerOpened


@pytest.fixture
async def store(database: AsyncDatabase[Document]) -> EventStore:
    s = EventStore(database, source="/casework/test", metrics=Metrics("test"))
    await s.ensure_indexes()
    return s


async def test_a_command_is_one_commit_document_and_loads_in_order(store: EventStore) -> None:
    stream = f"ledger-{uuid.uuid4()}"
    await store.append(stream, 0, [LedgerOpened(ledger_id="l", owner="ann")])
    await store.append(
        stream,
        1,
        [AmountCredited(ledger_id="l", amount=5), AmountCredited(ledger_id="l", amount=7)],
    )

    assert await store.commits.count_documents({"stream_id": stream}) == 2
    loaded = await store.load(stream)
    assert [e.stream_version for e in loaded] == [1, 2, 3]
    assert [e.type for e in loaded] == [
        "casework.test.LedgerOpened.v1",
        "casework.test.AmountCredited.v1",
        "casework.test.AmountCredited.v1",
    ]
    assert loaded[2].data == {"ledger_id": "l", "amount": 7}
    assert all(e.time.tzinfo is not None for e in loaded)


async def test_two_writers_of_the_same_version_one_wins(store: EventStore) -> None:
    stream = f"ledger-{uuid.uuid4()}"
    await store.append(stream, 0, [LedgerOpened(ledger_id="l", owner="ann")])

    results = await asyncio.gather(
        *(store.append(stream, 1, [AmountCredited(ledger_id="l", amount=n)]) for n in range(5)),
        return_exceptions=True,
    )

    conflicts = [r for r in results if isinstance(r, ConcurrencyConflict)]
    winners = [r for r in results if isinstance(r, list)]
    assert len(winners) == 1
    assert len(conflicts) == 4
    assert [e.stream_version for e in await store.load(stream)] == [1, 2]


async def test_a_stale_writer_conflicts_even_after_several_commits(store: EventStore) -> None:
    stream = f"ledger-{uuid.uuid4()}"
    await store.append(stream, 0, [LedgerOpened(ledger_id="l", owner="ann")])
    await store.append(stream, 1, [AmountCredited(ledger_id="l", amount=1)])
    with pytest.raises(ConcurrencyConflict):
        await store.append(stream, 1, [AmountCredited(ledger_id="l", amount=2)])


async def test_repository_round_trip_and_context(store: EventStore) -> None:
    repo = Repository(store, Ledger, REGISTRY)
    ledger = repo.new("abc")
    ledger.open("ann")
    ledger.credit(10)
    envelopes = await repo.save(ledger, CommitContext(correlation_id="corr-1", site="north"))
    assert ledger.version == 2
    assert {e.correlation_id for e in envelopes} == {"corr-1"}
    assert {e.site for e in envelopes} == {"north"}

    again = await repo.get("abc")
    assert (again.owner, again.balance, again.version) == ("ann", 10, 2)
    with pytest.raises(AggregateNotFound):
        await repo.get("nope")


async def test_concurrent_repository_saves_conflict(store: EventStore) -> None:
    repo = Repository(store, Ledger, REGISTRY)
    ledger = repo.new("x")
    ledger.open("ann")
    await repo.save(ledger)
    first, second = await repo.get("x"), await repo.get("x")
    first.credit(1)
    second.credit(2)
    await repo.save(first)
    with pytest.raises(ConcurrencyConflict):
        await repo.save(second)
    assert (await repo.get("x")).balance == 1


async def test_a_void_burns_its_version_and_loading_skips_it(store: EventStore) -> None:
    repo = Repository(store, Ledger, REGISTRY)
    # the first write of this ledger was abandoned and fenced by the relay
    await store.commits.insert_one(void_commit("ledger-v", 1, datetime.now(UTC)))
    assert await repo.find("v") is None
    ledger = repo.new("v")
    assert ledger.version == 1  # past the void
    assert ledger.is_new
    ledger.open("ann")
    await repo.save(ledger)
    await store.commits.insert_one(void_commit("ledger-v", 3, datetime.now(UTC)))
    again = await Repository(store, Ledger, REGISTRY).get("v")
    assert (again.owner, again.version) == ("ann", 3)
    again.credit(4)
    await repo.save(again)
    assert [e.stream_version for e in await store.load("ledger-v")] == [2, 4]
    assert (await repo.get("v")).balance == 4


async def test_the_repository_cache_sees_commits_of_other_processes(store: EventStore) -> None:
    here, there = Repository(store, Ledger, REGISTRY), Repository(store, Ledger, REGISTRY)
    ledger = here.new("c")
    ledger.open("ann")
    await here.save(ledger)
    assert (await here.get("c")).balance == 0  # cached now
    other = await there.get("c")
    other.credit(5)
    other.credit(6)
    await there.save(other)
    other = await there.get("c")
    other.credit(7)
    await there.save(other)
    loaded = await here.get("c")  # two commits after the cached version, found by _id
    assert (loaded.balance, loaded.version) == (18, 4)
    # every load is a fresh aggregate: one command's changes never leak into another's
    first, second = await here.get("c"), await here.get("c")
    assert first is not second
    first.credit(100)
    assert second.balance == 18
    assert (await here.get("c")).balance == 18
    stale = await here.get("c")
    other = await there.get("c")
    other.credit(1)
    await there.save(other)
    stale.credit(2)
    with pytest.raises(ConcurrencyConflict):  # a cached stream is no excuse for a lost update
        await here.save(stale)
    assert (await here.get("c")).balance == 19


async def test_a_trusted_cache_can_be_stale_but_never_commits_on_old_state(
    store: EventStore,
) -> None:
    here, there = Repository(store, Ledger, REGISTRY), Repository(store, Ledger, REGISTRY)
    ledger = here.new("t")
    ledger.open("ann")
    await here.save(ledger)
    assert (await here.get("t")).version == 1  # cached here at version 1
    other = await there.get("t")
    other.credit(5)
    await there.save(other)
    trusted = await here.find("t", trust_cache=True)  # no read: what the cache holds
    assert trusted is not None
    assert (trusted.balance, trusted.version) == (0, 1)
    trusted.credit(2)
    with pytest.raises(ConcurrencyConflict):  # the slot after the cached version is taken
        await here.save(trusted)
    fresh = await here.find("t")  # the probe finds the newer commit
    assert fresh is not None
    assert (fresh.balance, fresh.version) == (5, 2)
    fresh.credit(2)
    await here.save(fresh)
    assert (await there.get("t")).balance == 7


async def test_a_commits_inline_applies_run_together_and_one_failing_fails_nothing(
    store: EventStore,
) -> None:
    """Each inline apply waits until the other two of its commit have begun: one after the
    other (as before), the first would wait alone. One of them failing fails neither the
    command nor the others."""
    begun: list[int] = []
    all_begun = asyncio.Event()
    done: list[int] = []

    async def apply(envelope: Any, event: Any) -> None:
        begun.append(envelope.stream_version)
        if len(begun) == 3:
            all_begun.set()
        await asyncio.wait_for(all_begun.wait(), timeout=5)
        if envelope.stream_version == 2:
            raise RuntimeError("inline apply failed (test)")
        done.append(envelope.stream_version)

    store.apply_inline(apply, LedgerOpened, AmountCredited)
    stream = f"ledger-{uuid.uuid4()}"
    stored = await store.append(
        stream,
        0,
        [
            LedgerOpened(ledger_id="l", owner="ann"),
            AmountCredited(ledger_id="l", amount=5),
            AmountCredited(ledger_id="l", amount=7),
        ],
    )
    assert [e.stream_version for e in stored] == [1, 2, 3]
    assert sorted(begun) == [1, 2, 3]
    assert sorted(done) == [1, 3]
    assert await store.commits.count_documents({"stream_id": stream}) == 1

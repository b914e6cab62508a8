"""The event store on the real MongoDB-wire server: commits, loading, optimistic concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.eventstore import (
    AggregateNotFound,
    CommitContext,
    ConcurrencyConflict,
    Document,
    EventStore,
    Repository,
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

"""Partition counters on the real MongoDB-wire server (`casework.counters`): one document per
(key, partition), idempotent by offset, summed when read; and counted documents whose
contributions move between counts as the entity changes, surviving redelivery, replay from an
older offset and a crash between the counter write and the entity write."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.counters import (
    CountedDocuments,
    CounterTopicMismatch,
    Counts,
    MissingPosition,
    PartitionCounters,
    counter_documents,
    fold_counts,
    is_counter,
)
from casework.envelope import Envelope, Position
from casework.eventstore import Document
from casework.projections import APPLIED

TOPIC = "casework.test.events"


def at(partition: int, offset: int, topic: str = TOPIC) -> Position:
    return Position(topic, partition, offset)


async def test_the_same_offset_twice_counts_once(database: AsyncDatabase[Document]) -> None:
    counters = PartitionCounters(database["board"])
    await counters.ensure_indexes()

    assert await counters.add(at(0, 5), {"north": {"open": 1}}) is True
    assert await counters.add(at(0, 5), {"north": {"open": 1}}) is False

    assert await counters.totals("north") == Counter({"open": 1})


async def test_an_older_offset_changes_nothing(database: AsyncDatabase[Document]) -> None:
    counters = PartitionCounters(database["board"])
    await counters.add(at(0, 7), {"north": {"open": 2}})

    assert await counters.add(at(0, 3), {"north": {"open": 1}}) is False
    assert await counters.add(at(0, 8), {"north": {"open": -1, "closed": 1}}) is True

    assert await counters.totals("north") == Counter({"open": 1, "closed": 1})


async def test_each_partition_owns_its_document_and_the_query_sums_them(
    database: AsyncDatabase[Document],
) -> None:
    counters = PartitionCounters(database["board"])
    await counters.ensure_indexes()
    # the same offset on two partitions is two different events
    await counters.add(at(0, 1), {"north": {"open": 1}})
    await counters.add(at(1, 1), {"north": {"open": 1}, "south": {"open": 1}})
    await counters.add(at(2, 9), {"north": {"open": 3}})
    await counters.add(at(1, 1), {"north": {"open": 1}})  # redelivered

    docs = {d["_id"]: d for d in await counters.documents()}
    assert sorted(docs) == [
        "counter:north:0",
        "counter:north:1",
        "counter:north:2",
        "counter:south:1",
    ]
    assert {k: d["offset"] for k, d in docs.items()} == {
        "counter:north:0": 1,
        "counter:north:1": 1,
        "counter:north:2": 9,
        "counter:south:1": 1,
    }
    assert await counters.totals("north") == Counter({"open": 5})
    assert await counters.totals_of(["north", "south", "west"]) == {
        "north": Counter({"open": 5}),
        "south": Counter({"open": 1}),
        "west": Counter(),
    }


async def test_counter_documents_folded_in_memory_read_like_applied_ones(
    database: AsyncDatabase[Document],
) -> None:
    """A rebuild that folds a partition in memory writes what applying would have."""
    applied = PartitionCounters(database["applied"])
    await applied.add(at(0, 1), {"north": {"open": 1}})
    await applied.add(at(0, 2), {"north": {"open": -1, "closed": 1}, "south": {"open": 1}})
    folded = PartitionCounters(database["folded"])
    totals = fold_counts([{"north": {"closed": 1}}, {"south": {"open": 1}}])
    await folded.collection.insert_many(
        counter_documents(totals, topic=TOPIC, partition=0, offset=2)
    )

    for counters in (applied, folded):
        assert await counters.totals_of(["north", "south"]) == {
            "north": Counter({"closed": 1}),
            "south": Counter({"open": 1}),
        }
        assert await counters.groups(["north"]) == {"north": Counter({"closed": 1})}
    assert await folded.add(at(0, 2), {"north": {"closed": 1}}) is False  # offset remembered


async def test_a_counter_refuses_another_topics_events(database: AsyncDatabase[Document]) -> None:
    counters = PartitionCounters(database["board"])
    await counters.add(at(0, 1), {"north": {"open": 1}})
    with pytest.raises(CounterTopicMismatch):
        await counters.add(at(0, 2, topic="casework.other.events"), {"north": {"open": 1}})


# --- counted documents: an entity whose state moves between counts --------------------------


def contributions(doc: Mapping[str, Any]) -> Counts:
    """A toy board: entities by site and state."""
    return {doc["site"]: {f"state|{doc['state']}": 1}} if doc.get("site") else {}


def event(stream: str, version: int, position: Position, **data: Any) -> Envelope:
    return Envelope(
        type="casework.test.Moved.v1",
        source="/casework/test",
        subject=stream,
        time=datetime(2026, 2, 25, tzinfo=UTC),
        data=data,
        stream_version=version,
        position=position,
    )


def move(envelope: Envelope) -> Any:
    def change(doc: Document) -> Document:
        return {**doc, **envelope.data}

    return change


async def entity_counts(documents: CountedDocuments) -> dict[str, Counter[str]]:
    """What the counters should hold: the fold of every entity's contribution."""
    entities = [d async for d in documents.collection.find({}) if not is_counter(d)]
    return fold_counts(contributions(d) for d in entities)


async def counter_totals(documents: CountedDocuments) -> dict[str, Counter[str]]:
    keys = {d["counter"] for d in await documents.counters.documents()}
    totals = await documents.counters.totals_of(sorted(keys))
    return {k: Counter({n: c for n, c in v.items() if c}) for k, v in totals.items() if +v}


async def test_an_entity_moving_between_states_and_sites_moves_its_count(
    database: AsyncDatabase[Document],
) -> None:
    documents = CountedDocuments(database["cases"], contributions)
    await documents.counters.ensure_indexes()
    steps = [
        event("case-1", 1, at(0, 10), site="north", state="assessment"),
        event("case-1", 2, at(0, 11), state="active"),
        event("case-2", 1, at(1, 4), site="north", state="active"),
        event("case-1", 3, at(0, 12), site="south"),  # transferred
        event("case-2", 2, at(1, 5), state="closed"),
    ]
    for step in steps:
        assert await documents.apply(step.subject.removeprefix("case-"), step, move(step))

    assert await documents.counters.totals("north") == Counter({"state|closed": 1})
    assert await documents.counters.totals("south") == Counter({"state|active": 1})
    assert await counter_totals(documents) == await entity_counts(documents)

    # everything again, as after a consumer restart from offset 0: nothing changes
    for step in steps:
        assert not await documents.apply(step.subject.removeprefix("case-"), step, move(step))
    assert await documents.counters.totals("north") == Counter({"state|closed": 1})


async def test_a_crash_between_the_counters_and_the_entity_counts_once_on_redelivery(
    database: AsyncDatabase[Document],
) -> None:
    documents = CountedDocuments(database["cases"], contributions)
    opened = event("case-1", 1, at(0, 1), site="north", state="assessment")
    await documents.apply("1", opened, move(opened))
    moved = event("case-1", 2, at(0, 2), state="active")

    # the consumer dies after the counter write, before the entity write
    await documents.counters.add(at(0, 2), {"north": {"state|assessment": -1, "state|active": 1}})
    # Kafka delivers the record again; the entity is still at version 1
    assert await documents.apply("1", moved, move(moved)) is True

    assert await documents.counters.totals("north") == Counter({"state|active": 1})
    entity = await documents.collection.find_one({"_id": "1"})
    assert entity is not None
    assert (entity["state"], entity[APPLIED]) == ("active", {"case-1": 2})


async def test_a_counted_projection_needs_the_consumers_position(
    database: AsyncDatabase[Document],
) -> None:
    documents = CountedDocuments(database["cases"], contributions)
    bare = Envelope(
        type="casework.test.Moved.v1",
        source="/casework/test",
        subject="case-1",
        time=datetime(2026, 2, 25, tzinfo=UTC),
        data={"site": "north", "state": "active"},
        stream_version=1,
    )
    with pytest.raises(MissingPosition):
        await documents.apply("1", bare, move(bare))


class Crash(Exception):
    """The consumer died."""


class DiesBeforeEntityWrite:
    """The entity collection of a consumer that dies, when told, right after its counters
    were written and before the entity is."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def insert_one(self, doc: Document) -> Any:
        self._die()
        return await self._collection.insert_one(doc)

    async def replace_one(self, query: Document, doc: Document) -> Any:
        self._die()
        return await self._collection.replace_one(query, doc)

    def _die(self) -> None:
        if self.armed:
            self.armed = False
            raise Crash


async def test_counters_equal_the_entities_under_redelivery_replay_and_crashes(
    database: AsyncDatabase[Document],
) -> None:
    """Randomized: entities spread over three partitions change state and site; each
    partition's consumer sometimes dies between its counter write and its entity write, and
    restarts from an older committed offset, redelivering; after it all, the summed counters
    equal the fold of the entities' contributions."""
    rng = random.Random(17)
    documents = CountedDocuments(database["cases"], contributions)
    await documents.counters.ensure_indexes()
    dying = DiesBeforeEntityWrite(documents.collection)
    documents.collection = dying  # type: ignore[assignment]
    partitions = 3
    logs: list[list[Envelope]] = [[] for _ in range(partitions)]
    versions: dict[int, int] = {}
    for _ in range(45):
        entity = rng.randrange(9)
        partition = entity % partitions  # the stream key picks the partition
        versions[entity] = versions.get(entity, 0) + 1
        data: dict[str, Any] = {"state": rng.choice(["assessment", "active", "review", "closed"])}
        if versions[entity] == 1 or rng.random() < 0.3:
            data["site"] = rng.choice(["north", "south", "east"])
        offset = len(logs[partition])
        logs[partition].append(
            event(f"case-{entity}", versions[entity], at(partition, offset), **data)
        )

    crashes = 0
    for log in logs:
        committed = 0
        while committed < len(log):
            end = min(len(log), committed + rng.randint(1, 6))
            dying.armed = rng.random() < 0.5
            try:
                for envelope in log[committed:end]:
                    entity_id = envelope.subject.removeprefix("case-")
                    await documents.apply(entity_id, envelope, move(envelope))
            except Crash:
                crashes += 1
                committed = max(0, committed - rng.randint(0, 3))  # redelivered from here
                continue
            dying.armed = False
            committed = end

    assert crashes > 5
    expected = await entity_counts(documents)
    assert await counter_totals(documents) == expected
    assert sum(sum(c.values()) for c in expected.values()) == 9  # each entity counted once

"""`ReadModel.get_many` on the real database: what it returns, and that every query it sends
is one the server answers without reading the whole collection.

FerretDB v1.24 pushes an exact `_id` filter down to SQL but decodes every document in Go for
`_id: {$in: …}` (measured at 20,000 documents: 465 ms against 6.6 ms). The test captures the
`find` commands the method sends with a command listener and asks the server to `explain`
each one: on FerretDB, `filterPushdown` must be true; on MongoDB (no such key) the winning
plan must go through the `_id` index.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from casework.eventstore import Document
from casework.projections import APPLIED, ReadModel

COLLECTION = "things"


class Finds(monitoring.CommandListener):
    """The `find` commands sent on `COLLECTION`, and how many were in flight at most."""

    def __init__(self) -> None:
        self.filters: list[Document] = []
        self.in_flight: set[int] = set()
        self.most_in_flight = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == COLLECTION:
            self.filters.append(dict(event.command["filter"]))
            self.in_flight.add(event.request_id)
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.in_flight.discard(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.in_flight.discard(event.request_id)


@dataclass
class Store:
    db: AsyncDatabase[Document]
    finds: Finds
    read_model: ReadModel


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[Store]:
    finds = Finds()
    # the pool may open as many connections at once as the reads ask for (pymongo's default
    # is 2 at a time), so reads past a missing bound are in flight together, not queued
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[finds], maxConnecting=64
    )
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    await db[COLLECTION].insert_many(
        [{"_id": f"t{i}", "n": i, APPLIED: {f"thing-{i}": 1}} for i in range(60)]
    )
    try:
        yield Store(db, finds, ReadModel(db[COLLECTION]))
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_get_many_returns_each_stored_document_once_without_bookkeeping(
    store: Store,
) -> None:
    found = await store.read_model.get_many(["t3", "t1", "t3", "missing", "t1"])
    assert found == {"t3": {"_id": "t3", "n": 3}, "t1": {"_id": "t1", "n": 1}}
    assert len(store.finds.filters) == 3  # one read per distinct id, none for the repeats

    store.finds.filters.clear()
    assert await store.read_model.get_many([]) == {}
    assert await store.read_model.get_many(["missing", "absent"]) == {}
    assert len(store.finds.filters) == 2


async def test_get_many_reads_more_ids_than_its_bound_a_bounded_number_at_a_time(
    store: Store,
) -> None:
    ids = [f"t{i}" for i in range(50)]
    found = await store.read_model.get_many([*ids, "missing"], in_flight=4)
    assert found == {f"t{i}": {"_id": f"t{i}", "n": i} for i in range(50)}
    assert len(store.finds.filters) == 51
    assert 1 < store.finds.most_in_flight <= 4  # concurrent, never past the bound


async def test_every_query_of_get_many_is_answered_without_a_collection_scan(
    store: Store,
) -> None:
    await store.read_model.get_many(["t7", "t8", "t9", "missing", "t8"])
    assert store.finds.filters
    for query in store.finds.filters:
        explained = await store.db.command({"explain": {"find": COLLECTION, "filter": query}})
        if "filterPushdown" in explained:  # FerretDB
            assert explained["filterPushdown"] is True, query
        else:  # MongoDB
            plan = explained["queryPlanner"]["winningPlan"]
            stages = list(_stages(plan))
            assert "COLLSCAN" not in {s.get("stage") for s in stages}, query
            assert any(_by_id_index(s) for s in stages), query


def _stages(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A plan stage and every stage under it (classic and slot-based plans)."""
    yield plan
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), dict):
            yield from _stages(plan[key])
    for child in plan.get("inputStages", ()):
        yield from _stages(child)


def _by_id_index(stage: dict[str, Any]) -> bool:
    return stage.get("stage") in {"IDHACK", "EXPRESS_IDHACK"} or (
        stage.get("stage") == "IXSCAN" and stage.get("indexName") == "_id_"
    )
